//! The tokens of the Docker token flow: scopes, claims, signing and checking. The
//! endpoint that hands them out is [`crate::middleware::token`].
//!
//! distribution's "Token Authentication Specification": a request without a token gets
//! `401` with `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`; the client asks
//! `GET <realm>?service=…&scope=…` with its Basic credentials and receives
//! `{"token": …, "access_token": …, "expires_in": …}`; it retries with
//! `Authorization: Bearer <token>`.
//!
//! ferry's tokens are `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`:
//! signed, expiring, and scoped per repository and action. They are only ever checked by
//! the registry that issued them, so they need no public-key machinery.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::action::Action;

/// One grant: `repository:library/alpine:pull,push` or `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Grant {
    /// Parses a `scope` parameter entry: `type:name:actions`, where the name may itself
    /// hold `:` (a registry with a port), so the type is before the first `:` and the
    /// actions after the last.
    pub fn parse_scope(scope: &str) -> Option<Grant> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let actions = actions.split(',').filter(|a| !a.is_empty()).map(str::to_owned).collect();
        Some(Grant { kind: kind.to_owned(), name: name.to_owned(), actions })
    }

    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.kind == kind && self.name == name && self.actions.iter().any(|a| a == action || a == "*")
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user, empty for anonymous.
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub access: Vec<Grant>,
    /// A refresh token (OAuth2 `grant_type=refresh_token`): it grants nothing on `/v2/`,
    /// and is traded at the token endpoint for an access token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh: bool,
}

impl Claims {
    /// Whether the token allows an action.
    pub fn allows(&self, action: &Action) -> bool {
        match action {
            Action::Base => true,
            Action::Catalog => self.access.iter().any(|g| g.allows("registry", "catalog", "*")),
            Action::Repo { repo, verb } => {
                self.access.iter().any(|g| g.allows("repository", repo.as_str(), verb.as_str()))
            }
        }
    }
}

/// RFC 3339 in UTC, as distribution writes `issued_at` in tokens and `timestamp` in events.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Signs and checks tokens.
pub struct TokenIssuer {
    key: Vec<u8>,
    pub service: String,
    pub ttl_secs: u64,
    /// Lifetime of refresh tokens.
    pub refresh_ttl_secs: u64,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token signature does not match")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token was issued for another service")]
    WrongAudience,
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TokenIssuer {
    pub fn new(key: Vec<u8>, service: String, ttl_secs: u64) -> Self {
        TokenIssuer { key, service, ttl_secs, refresh_ttl_secs: 24 * 3600 }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    pub fn issue(&self, sub: &str, access: Vec<Grant>, now: u64) -> String {
        self.sign(Claims {
            iss: self.service.clone(),
            aud: self.service.clone(),
            sub: sub.to_owned(),
            iat: now,
            exp: now + self.ttl_secs,
            access,
            refresh: false,
        })
    }

    /// A refresh token for `sub`, valid `ttl_secs`.
    pub fn issue_refresh(&self, sub: &str, now: u64) -> String {
        let ttl_secs = self.refresh_ttl_secs;
        self.sign(Claims {
            iss: self.service.clone(),
            aud: self.service.clone(),
            sub: sub.to_owned(),
            iat: now,
            exp: now + ttl_secs,
            access: Vec::new(),
            refresh: true,
        })
    }

    fn sign(&self, claims: Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if claims.aud != self.service {
            return Err(TokenError::WrongAudience);
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Builds the issuer from the configuration, generating a key if none is set.
pub fn issuer_from_config(config: &crate::config::TokenConfig) -> TokenIssuer {
    let key = match &config.key {
        Some(key) if !key.is_empty() => key.as_bytes().to_vec(),
        _ => crate::random::random_hex(32).into_bytes(),
    };
    let mut issuer = TokenIssuer::new(key, config.service.clone(), config.ttl_secs);
    issuer.refresh_ttl_secs = config.refresh_ttl_secs;
    issuer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_table() {
        let cases = [
            ("repository:a/b:pull,push", Some(("repository", "a/b", vec!["pull", "push"]))),
            ("repository:host:5000/a:pull", Some(("repository", "host:5000/a", vec!["pull"]))),
            ("registry:catalog:*", Some(("registry", "catalog", vec!["*"]))),
            ("nonsense", None),
        ];
        for (input, want) in cases {
            let got = Grant::parse_scope(input);
            let want = want.map(|(k, n, a)| Grant {
                kind: k.into(),
                name: n.into(),
                actions: a.into_iter().map(String::from).collect(),
            });
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn tokens_are_signed_scoped_and_expire() {
        let issuer = TokenIssuer::new(b"k".to_vec(), "ferry".into(), 60);
        let grant = Grant::parse_scope("repository:a:pull").unwrap();
        let token = issuer.issue("u", vec![grant], 1000);
        let claims = issuer.verify(&token, 1001).unwrap();
        assert_eq!(claims.sub, "u");
        assert_eq!(issuer.verify(&token, 1060), Err(TokenError::Expired));
        let other = TokenIssuer::new(b"other".to_vec(), "ferry".into(), 60);
        assert_eq!(other.verify(&token, 1001), Err(TokenError::BadSignature));
        let (payload, sig) = token.split_once('.').unwrap();
        let forged = format!("{}x.{sig}", payload);
        assert!(issuer.verify(&forged, 1001).is_err());
        assert_eq!(issuer.verify("garbage", 1001), Err(TokenError::Malformed));
    }
}
