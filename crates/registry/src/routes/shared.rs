//! What the handlers share: the API's header names and the delete switch.

use http::HeaderName;

use crate::error::{RegistryError, Result};
use crate::state::AppState;

pub(super) const DIGEST_HEADER: HeaderName = HeaderName::from_static("docker-content-digest");
pub(super) const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub(super) const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
pub(super) const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub(super) const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

/// Deletes may be switched off; distribution spec: "If the registry does not support
/// deletion, it MUST return a 405 Method Not Allowed".
pub(super) fn check_delete_enabled(state: &AppState) -> Result<()> {
    if state.config.delete {
        Ok(())
    } else {
        Err(RegistryError::unsupported("deletes are disabled on this registry (config `delete: false`)"))
    }
}
