//! What every request handler shares: the configuration, the store, upload sessions,
//! the authenticator, the notifier and the web page's directory.

use std::net::SocketAddr;
use std::sync::OnceLock;

use http::HeaderMap;

use crate::access::Authenticator;
use crate::config::Config;
use crate::notify::Notifier;
use crate::store::uploads::Uploads;
use crate::store::Store;
use crate::ui::UiDir;

/// Everything a request handler needs.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub uploads: Uploads,
    /// `None` when auth is off.
    pub auth: Option<Authenticator>,
    /// The address actually bound, once known (for URLs built without a `Host`).
    pub local_addr: OnceLock<SocketAddr>,
    /// The web page's directory, served at `/ui/`; `None` when `ui` is unset.
    pub ui: Option<UiDir>,
    /// The job relay at `/jobs`; `None` unless `relay.enabled`.
    pub relay: Option<crate::relay::Relay>,
    /// Tells the notification endpoints; `None` when there are none.
    pub notifier: Option<Notifier>,
    /// The pull-through cache; `None` when no upstream is configured.
    pub cache: Option<crate::cache::Cache>,
    /// Names this process in events' `source.instanceID`.
    pub instance_id: String,
}

impl AppState {
    /// The URL clients reach the registry at: `public_url`, else `http[s]://<Host>`.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.config.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.config.tls.enabled() { "https" } else { "http" };
        match headers.get(http::header::HOST).and_then(|h| h.to_str().ok()) {
            Some(host) if !host.is_empty() => format!("{scheme}://{host}"),
            _ => match self.local_addr.get() {
                Some(addr) => format!("{scheme}://{addr}"),
                None => format!("{scheme}://{}", self.config.addr),
            },
        }
    }
}
