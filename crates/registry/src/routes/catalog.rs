//! `GET /v2/_catalog?n=&last=`: the repositories, sorted, paginated like tags. With auth
//! on, it needs a user (or a token with `registry:catalog:*`), and lists only the
//! repositories the caller may pull.

use std::sync::Arc;

use axum::response::Response;

use super::tags::{json_page, paginate};
use crate::access::Identity;
use crate::error::Result;
use crate::state::AppState;

pub(super) async fn list(state: &Arc<AppState>, identity: &Identity, uri: &http::Uri) -> Result<Response> {
    let mut repos = state.store.catalog().await?;
    if let Some(auth) = &state.auth {
        repos.retain(|repo| auth.lists(identity, repo));
    }
    let (page, link) = paginate(repos, uri, "/v2/_catalog")?;
    Ok(json_page(serde_json::json!({ "repositories": page }), link))
}
