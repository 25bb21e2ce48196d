//! Which scheme a registry is spoken to over: the decision behind `insecure` and loopback.
//!
//! image-syncer, containers/image, skopeo and Docker agree on what `insecure` means:
//! speak HTTPS **without verifying the certificate**, and fall back to plain HTTP only when
//! the endpoint does not speak TLS at all. Docker treats loopback registries the same way
//! (`127.0.0.0/8` is an insecure registry by default). ferry probes loopback registries too,
//! so a TLS registry on `127.0.0.1` works, but it still verifies their certificates unless
//! they are marked insecure: a certificate ferry was told to trust costs nothing to check.
//!
//! The core decides; a driver probes. The URLs the core builds for such a registry are
//! its plain-HTTP form ([`crate::api::Endpoint::new`]), which is what a browser can reach
//! (a page has no say in TLS). A native driver asks [`policy`] for each `http://` URL it
//! is handed; when the answer is [`Policy::Probe`], it checks **once per registry per run**
//! whether the endpoint completes a TLS handshake, reports the typed [`ProbeOutcome`], and
//! speaks the scheme [`SchemeMemo::record`] decides from then on. The probe is a bare
//! handshake, not an HTTP request, so a plain-HTTP registry sees exactly the requests it
//! saw before, plus one refused handshake.

use std::collections::BTreeMap;

use crate::reference::is_localhost;

/// A URL scheme ferry speaks to registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    /// TLS: `https://`.
    Https,
    /// Plain HTTP: `http://`.
    Http,
}

impl Scheme {
    /// The scheme as URLs write it: `https` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// How a driver treats a URL the core built for a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Use the URL as it is: HTTPS with verification, or a scheme the caller chose
    /// explicitly (a base URL, a redirect target).
    AsGiven,
    /// Try HTTPS first; plain HTTP only if the endpoint does not speak TLS.
    Probe {
        /// Whether the certificate is checked when the endpoint speaks TLS.
        verify: bool,
    },
}

/// The policy for `host` (`host[:port]`, as a URL or a reference writes it) reached by a
/// URL of `scheme`: registries marked `insecure` and loopback registries are probed when
/// the core built a plain-HTTP URL for them; everything else is used as given.
pub fn policy(scheme: Scheme, host: &str, insecure: bool) -> Policy {
    match scheme {
        Scheme::Http if insecure => Policy::Probe { verify: false },
        Scheme::Http if is_localhost(host) => Policy::Probe { verify: true },
        _ => Policy::AsGiven,
    }
}

/// What a driver learnt when it opened a TLS handshake to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The endpoint answered in TLS: a handshake completed, or a TLS alert came back (a
    /// server that wants a client certificate still speaks TLS).
    SpeaksTls,
    /// The endpoint answered, but not in TLS (an HTTP `400`, or it closed the connection
    /// on the `ClientHello`).
    NotTls,
    /// Nothing listens on the port probed: the connection was refused.
    Refused,
    /// Nothing answered (unreachable, timed out, the name did not resolve): no evidence
    /// either way.
    Unreachable,
}

/// The scheme to speak to a probed endpoint, and whether the decision holds for the rest
/// of the run. `default_port`: the URL names no port, so the probe went to HTTPS's 443
/// while plain HTTP would go to 80; a refusal there settles it for plain HTTP, as Docker
/// falls back. Otherwise an endpoint that did not answer keeps the URL's plain-HTTP form
/// and is probed again on the next request, since a registry that is still starting may
/// come up speaking either.
pub fn decide(outcome: ProbeOutcome, default_port: bool) -> (Scheme, bool) {
    match outcome {
        ProbeOutcome::SpeaksTls => (Scheme::Https, true),
        ProbeOutcome::NotTls => (Scheme::Http, true),
        ProbeOutcome::Refused => (Scheme::Http, default_port),
        ProbeOutcome::Unreachable => (Scheme::Http, false),
    }
}

/// The decisions of one run, per endpoint (`host:port`). A driver keeps one for the whole
/// run and serialises probes per endpoint, so each registry is probed at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemeMemo {
    decided: BTreeMap<String, Scheme>,
}

impl SchemeMemo {
    /// The scheme decided for `endpoint`, if a probe settled it.
    pub fn get(&self, endpoint: &str) -> Option<Scheme> {
        self.decided.get(endpoint).copied()
    }

    /// Records a probe's outcome and returns the scheme to use now; `default_port` as for
    /// [`decide`].
    pub fn record(&mut self, endpoint: &str, outcome: ProbeOutcome, default_port: bool) -> Scheme {
        let (scheme, settled) = decide(outcome, default_port);
        if settled {
            self.decided.insert(endpoint.to_owned(), scheme);
        }
        scheme
    }
}

/// `url` with its scheme replaced by `scheme`. An `http://` URL without a port names
/// port 80, so moving it to HTTPS keeps the default port of the new scheme (443), as
/// Docker's fallback does; an explicit port is kept.
pub fn with_scheme(url: &str, scheme: Scheme) -> String {
    match url.split_once("://") {
        Some((_, rest)) => format!("{}://{rest}", scheme.as_str()),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let cases = [
            (Scheme::Http, "quay.io", true, Policy::Probe { verify: false }),
            (Scheme::Http, "127.0.0.1:5000", false, Policy::Probe { verify: true }),
            (Scheme::Http, "localhost", false, Policy::Probe { verify: true }),
            (Scheme::Http, "[::1]:5000", true, Policy::Probe { verify: false }),
            (Scheme::Http, "registry.test:5000", false, Policy::AsGiven),
            (Scheme::Https, "127.0.0.1:5000", true, Policy::AsGiven),
            (Scheme::Https, "quay.io", false, Policy::AsGiven),
        ];
        for (scheme, host, insecure, want) in cases {
            assert_eq!(policy(scheme, host, insecure), want, "{scheme:?} {host} {insecure}");
        }
    }

    #[test]
    fn a_settled_probe_is_remembered_and_an_unreachable_one_is_not() {
        let mut memo = SchemeMemo::default();
        assert_eq!(memo.record("a:1", ProbeOutcome::Unreachable, false), Scheme::Http);
        assert_eq!(memo.get("a:1"), None);
        assert_eq!(memo.record("a:1", ProbeOutcome::Refused, false), Scheme::Http);
        assert_eq!(memo.get("a:1"), None, "a registry that is down may come up speaking TLS");
        assert_eq!(memo.record("a:1", ProbeOutcome::SpeaksTls, false), Scheme::Https);
        assert_eq!(memo.get("a:1"), Some(Scheme::Https));
        assert_eq!(memo.record("b:2", ProbeOutcome::NotTls, false), Scheme::Http);
        assert_eq!(memo.get("b:2"), Some(Scheme::Http));
        assert_eq!(memo.record("c:443", ProbeOutcome::Refused, true), Scheme::Http);
        assert_eq!(memo.get("c:443"), Some(Scheme::Http), "no TLS on 443: port 80 speaks plain HTTP");
        assert_eq!(memo.record("d:443", ProbeOutcome::Unreachable, true), Scheme::Http);
        assert_eq!(memo.get("d:443"), None);
    }

    #[test]
    fn schemes_are_rewritten() {
        assert_eq!(with_scheme("http://h:1/v2/?a=b", Scheme::Https), "https://h:1/v2/?a=b");
        assert_eq!(with_scheme("https://h/v2/", Scheme::Http), "http://h/v2/");
        assert_eq!(with_scheme("nonsense", Scheme::Http), "nonsense");
    }
}
