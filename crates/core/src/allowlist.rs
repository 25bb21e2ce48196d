//! Which registries a relay may reach.
//!
//! A relay runs jobs for whoever it authenticated, against registries they name. Without
//! a list it would be an open proxy, and worse, a door into the network it runs in (a
//! cloud's metadata service at `169.254.169.254`, an admin port on `127.0.0.1`). So an
//! operator lists hosts and patterns, and:
//!
//! - a host is reached only when an entry matches it (and its port, when the entry has one);
//! - an IP address written in a URL must be listed itself: no pattern matches an address;
//! - a name that resolves to a loopback, private, link-local or otherwise special-purpose
//!   address (RFC 6890) is refused unless that name was listed exactly, not by a pattern,
//!   or the address itself is listed. A public pattern cannot be turned into a private door
//!   by a DNS record.
//!
//! The same checks apply to every hop of a redirect and to a token realm, since the
//! driver checks every URL it is about to open and every address it is about to dial.
//!
//! Entries: `host`, `host:port`, `*.example.com` (any name below example.com, not
//! example.com itself), `*.example.com:443`, IPv4 addresses, and `[v6]` addresses.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::fmt;

/// The hosts a relay may reach. Empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    /// A host name or an IP address, exactly (lower case, IPv6 without brackets).
    Exact(String),
    /// `*.suffix`: the suffix with its leading dot, `.example.com`.
    Below(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: Name,
    port: Option<u16>,
}

/// An entry that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relay allowlist entry {entry:?}: {reason}")]
pub struct AllowlistError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it and how to write it.
    pub reason: String,
}

/// Why a host or an address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No entry matches the host (and port).
    NotListed {
        /// `host:port`.
        host: String,
    },
    /// The host resolved to a special-purpose address, which only an exact entry allows.
    SpecialAddress {
        /// `host`.
        host: String,
        /// The address it resolved to.
        address: IpAddr,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotListed { host } => {
                write!(f, "{host} is not on the relay's allowlist; an operator can add it to relay.allow")
            }
            Refusal::SpecialAddress { host, address } => write!(
                f,
                "{host} resolves to {address}, a loopback, private or link-local address, which the \
                 relay reaches only when relay.allow lists the name or the address exactly"
            ),
        }
    }
}

impl Allowlist {
    /// Reads the entries; the first that cannot be read is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Allowlist, AllowlistError> {
        let entries = entries.iter().map(|e| parse_entry(e.as_ref())).collect::<Result<_, _>>()?;
        Ok(Allowlist { entries })
    }

    /// Whether no host at all may be reached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a URL's `host` and `port` may be opened. An IP address must be listed
    /// itself; a name may match an exact entry or a pattern.
    pub fn check_host(&self, host: &str, port: u16) -> Result<(), Refusal> {
        let host = bare(host);
        let is_address = host.parse::<IpAddr>().is_ok();
        let listed = self.entries.iter().any(|entry| {
            entry.port.is_none_or(|p| p == port)
                && match &entry.name {
                    Name::Exact(name) => *name == host,
                    Name::Below(suffix) => !is_address && host.ends_with(suffix.as_str()),
                }
        });
        if listed {
            Ok(())
        } else {
            Err(Refusal::NotListed { host: format!("{}:{port}", display_host(&host)) })
        }
    }

    /// Whether `address`, which `host` resolved to, may be dialled: any public address; a
    /// special-purpose one only when the name or the address is listed exactly.
    pub fn check_address(&self, host: &str, address: IpAddr) -> Result<(), Refusal> {
        let address = canonical(address);
        if !is_special(address) {
            return Ok(());
        }
        let host = bare(host);
        let exact = self.entries.iter().any(|entry| match &entry.name {
            Name::Exact(name) => *name == host || name.parse::<IpAddr>().ok().map(canonical) == Some(address),
            Name::Below(_) => false,
        });
        if exact {
            Ok(())
        } else {
            Err(Refusal::SpecialAddress { host, address })
        }
    }
}

/// `[::1]` -> `::1`, lower case.
fn bare(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

fn display_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is the IPv4 address it carries.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// Addresses a relay must not reach by accident: loopback, RFC 1918 private, link-local
/// (cloud metadata services live at 169.254.169.254), shared CGNAT space, unspecified,
/// broadcast, multicast, and IPv6 unique-local and link-local (RFC 6890's registries).
pub fn is_special(address: IpAddr) -> bool {
    match canonical(address) {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0
        // 100.64.0.0/10, shared address space (RFC 6598).
        || (a == 100 && (64..128).contains(&b))
}

fn special_v6(v6: Ipv6Addr) -> bool {
    let first = v6.segments()[0];
    v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        // fc00::/7 unique local (RFC 4193), fe80::/10 link-local.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}

fn parse_entry(text: &str) -> Result<Entry, AllowlistError> {
    let fail = |reason: &str| AllowlistError { entry: text.to_owned(), reason: reason.to_owned() };
    let trimmed = text.trim().to_ascii_lowercase();
    if trimmed.is_empty() {
        return Err(fail("it is empty; write a host, host:port or *.domain"));
    }
    if trimmed.contains("://") || trimmed.contains('/') {
        return Err(fail("write the host alone (host or host:port), without a scheme or a path"));
    }
    let (host, port) =
        split_port(&trimmed).ok_or_else(|| fail("the port must be a number from 1 to 65535"))?;
    if let Some(suffix) = host.strip_prefix("*.") {
        if !valid_name(suffix) || !suffix.contains('.') {
            return Err(fail(
                "a pattern is *. followed by a domain with at least two labels, like *.example.com",
            ));
        }
        return Ok(Entry { name: Name::Below(format!(".{suffix}")), port });
    }
    if host.contains('*') {
        return Err(fail("`*` may only start a pattern, as in *.example.com"));
    }
    if host.parse::<IpAddr>().is_err() && !valid_name(&host) {
        return Err(fail("not a host name or an IP address (write IPv6 addresses in brackets: [::1]:5000)"));
    }
    Ok(Entry { name: Name::Exact(host), port })
}

/// `host[:port]`, `[v6][:port]` or a bare IPv6 address; `None` for a bad port.
fn split_port(text: &str) -> Option<(String, Option<u16>)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
    if let Some(rest) = text.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((address.to_owned(), Some(port(p)?))),
            None if after.is_empty() => Some((address.to_owned(), None)),
            None => None,
        };
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Some((text.to_owned(), None));
    }
    match text.rsplit_once(':') {
        Some((host, p)) => Some((host.to_owned(), Some(port(p)?))),
        None => Some((text.to_owned(), None)),
    }
}

/// Letters, digits, `-` and `.`, no empty label.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::parse(entries).unwrap()
    }

    #[test]
    fn entries_that_cannot_be_read() {
        let cases = [
            ("", "empty"),
            ("http://a.example", "without a scheme"),
            ("a.example/v2", "without a scheme"),
            ("a.example:0", "port"),
            ("a.example:http", "port"),
            ("*.com", "two labels"),
            ("a.*.example", "may only start"),
            ("bad_host", "not a host name"),
            ("[::1", "port"),
        ];
        for (entry, want) in cases {
            let error = Allowlist::parse(&[entry]).unwrap_err();
            assert!(error.to_string().contains(want), "{entry:?}: {error}");
        }
    }

    #[test]
    fn hosts_table() {
        let allow =
            list(&["registry.example", "127.0.0.1:5000", "*.corp.example", "[::1]:5001", "ghcr.io:443"]);
        let cases = [
            ("registry.example", 443, true),
            ("REGISTRY.example", 80, true),
            ("other.example", 443, false),
            ("127.0.0.1", 5000, true),
            ("127.0.0.1", 5001, false),
            ("localhost", 5000, false),
            ("a.corp.example", 443, true),
            ("a.b.corp.example", 8443, true),
            ("corp.example", 443, false),
            ("evilcorp.example", 443, false),
            ("[::1]", 5001, true),
            ("::1", 5001, true),
            ("[::1]", 5000, false),
            ("ghcr.io", 443, true),
            ("ghcr.io", 80, false),
            ("169.254.169.254", 80, false),
        ];
        for (host, port, want) in cases {
            assert_eq!(allow.check_host(host, port).is_ok(), want, "{host}:{port}");
        }
        assert_eq!(allow.check_host("10.0.0.1", 80), Err(Refusal::NotListed { host: "10.0.0.1:80".into() }));
    }

    #[test]
    fn a_pattern_never_matches_an_address() {
        let allow = list(&["*.0.0.1"]);
        assert!(allow.check_host("127.0.0.1", 80).is_err());
    }

    #[test]
    fn addresses_table() {
        let allow = list(&["localhost", "*.corp.example", "registry.example", "10.1.2.3"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases = [
            // Public addresses are fine for any listed name.
            ("a.corp.example", "93.184.216.34", true),
            ("registry.example", "2606:4700::1", true),
            // A pattern cannot reach a special address...
            ("a.corp.example", "127.0.0.1", false),
            ("a.corp.example", "10.0.0.8", false),
            ("a.corp.example", "169.254.169.254", false),
            ("a.corp.example", "100.64.0.1", false),
            ("a.corp.example", "::ffff:127.0.0.1", false),
            ("a.corp.example", "fd00::1", false),
            ("a.corp.example", "fe80::1", false),
            ("a.corp.example", "0.0.0.0", false),
            // ...but an exact name can, and so can a listed address.
            ("localhost", "127.0.0.1", true),
            ("localhost", "::1", true),
            ("registry.example", "192.168.1.1", true),
            ("a.corp.example", "10.1.2.3", true),
        ];
        for (host, address, want) in cases {
            assert_eq!(allow.check_address(host, ip(address)).is_ok(), want, "{host} -> {address}");
        }
    }

    #[test]
    fn refusals_name_the_host_and_the_fix() {
        let allow = list(&["*.corp.example"]);
        let refusal = allow.check_host("evil.example", 443).unwrap_err().to_string();
        assert!(refusal.contains("evil.example:443") && refusal.contains("relay.allow"), "{refusal}");
        let refusal = allow.check_address("a.corp.example", "127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(refusal.to_string().contains("127.0.0.1"), "{refusal}");
        assert!(Allowlist::default().check_host("a.example", 443).is_err());
    }
}
