//! The allowlist of a relay's transport ([`ferry_core::allowlist`] decides): every URL is
//! checked before it is opened (each redirect hop too), and every address a name resolves
//! to is checked before it is dialled, so a DNS answer cannot lead past the list.

use std::net::SocketAddr;
use std::sync::Arc;

use ferry_core::allowlist::Allowlist;
use ferry_core::transport::{Side, TransportError};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Refuses `url` when the allowlist does not list its host and port.
pub(crate) fn check_url(allowlist: Option<&Allowlist>, side: Side, url: &Url) -> Result<(), TransportError> {
    let Some(allowlist) = allowlist else { return Ok(()) };
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(0);
    allowlist
        .check_host(host, port)
        .map_err(|refusal| TransportError::NotAllowed { side, message: refusal.to_string() })
}

/// Resolves `host` and keeps only the addresses the allowlist lets be dialled; an error
/// names the host and the refused address when none is left.
pub(crate) async fn resolve(allowlist: &Allowlist, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut refusal = None;
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|addr| match allowlist.check_address(host, addr.ip()) {
            Ok(()) => true,
            Err(why) => {
                refusal.get_or_insert(why);
                false
            }
        })
        .collect();
    match (allowed.is_empty(), refusal) {
        (true, Some(why)) => Err(why.to_string()),
        (true, None) => Err(format!("{host} resolves to no address")),
        (false, _) => Ok(allowed),
    }
}

/// reqwest's resolver under the allowlist.
#[derive(Debug)]
pub(crate) struct GuardedResolver {
    pub(crate) allowlist: Arc<Allowlist>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowlist = self.allowlist.clone();
        Box::pin(async move {
            let addrs = resolve(&allowlist, name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
