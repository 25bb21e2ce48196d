//! Registry authentication: challenges, scopes, tokens and credentials.
//!
//! The exchange follows distribution's "Token Authentication Specification":
//!
//! 1. A request comes back `401 Unauthorized` with a `WWW-Authenticate` header. Parse it
//!    with [`parse_www_authenticate`] and pick one challenge with [`select`].
//! 2. For `Basic`, retry with [`Credential::basic_authorization`]. For `Bearer`, send
//!    [`token_request`] (with the [`Scope`]s the operation needs) to the challenge's realm.
//! 3. Turn the token service's answer into a [`Token`] with [`parse_token_response`],
//!    passing the monotonic time at which the answer arrived, and retry with
//!    [`Token::authorization`].
//! 4. Reuse the token while [`Token::is_fresh`] says so.
//!
//! Nothing here reads a clock, a file or the network: the caller passes time and bytes in.
//! No error message ever contains a password or a token.

mod challenge;
mod credentials;
mod scope;
mod token;

pub use challenge::{parse_www_authenticate, select, Challenge, ChallengeProblem, Scheme};
pub use credentials::{Credential, CredentialStore};
pub use scope::{parse_scopes, scopes_for_mount, Actions, Resource, Scope};
pub use token::{parse_token_response, token_request, Token, FRESHNESS_MARGIN};

/// Why authentication could not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The `WWW-Authenticate` header breaks RFC 7235's grammar.
    #[error(
        "malformed WWW-Authenticate header {header:?}: {problem} (at byte {at}); the registry's \
         challenge does not follow RFC 7235, report it to the registry's operator"
    )]
    MalformedChallenge {
        /// The header value.
        header: String,
        /// The byte offset where parsing stopped.
        at: usize,
        /// What is wrong there.
        problem: ChallengeProblem,
    },
    /// No challenge offers Basic or Bearer.
    #[error(
        "the registry asks for {scheme:?} authentication; ferry speaks Bearer (token) and Basic: \
         use a registry endpoint that offers one of them"
    )]
    UnsupportedScheme {
        /// The scheme offered.
        scheme: String,
    },
    /// docker's token spec: the Bearer challenge's `realm` is the token service's URL; without
    /// it there is nowhere to ask.
    #[error(
        "the registry's Bearer challenge has no `realm`, so ferry does not know where to get a \
         token; report it to the registry's operator"
    )]
    MissingRealm,
    /// A realm that is not an absolute http(s) URL without credentials: ferry sends the
    /// user's credentials there, so it must plainly be a web service.
    #[error(
        "token realm URL {realm:?} is not an absolute http(s) URL without credentials; the \
         registry's WWW-Authenticate header must name its token service as `https://host/path`"
    )]
    RealmNotHttp {
        /// The realm as given.
        realm: String,
    },
    /// docker's token scope grammar: `scope := resourcetype ":" resourcename ":" action
    /// [',' action]*`.
    #[error(
        "malformed scope {scope:?}: {problem}; expected `repository:NAME:ACTION[,ACTION]` \
         (actions pull, push, delete, *) or `registry:catalog:*`"
    )]
    MalformedScope {
        /// The scope as given.
        scope: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// An auth file's key that names no registry.
    #[error(
        "credential key {key:?}: {problem}; use `registry`, `registry/namespace` or a URL such \
         as `https://index.docker.io/v1/`"
    )]
    InvalidCredentialKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The token service answered something that is not JSON: often an HTML login page.
    #[error(
        "the token service's response is not valid JSON ({reason} at line {line} column \
         {column}); check that the realm URL points at a token service"
    )]
    TokenResponseJson {
        /// Where parsing stopped, from 1.
        line: usize,
        /// Where parsing stopped, from 1.
        column: usize,
        /// What the parser found.
        reason: &'static str,
    },
    /// JSON, but not the object docker's token spec describes.
    #[error(
        "the token service's response is not a JSON object; check that the realm URL points at \
         a token service"
    )]
    TokenResponseNotObject,
    /// docker's token spec: "`token`: An opaque Bearer token", and "For compatibility with
    /// OAuth 2.0, we will also accept `token` under the name `access_token`". One of them
    /// must be there.
    #[error(
        "the token service's response has neither `token` nor `access_token`; the credentials \
         may lack access, or the realm URL is not a token service"
    )]
    TokenMissing,
    /// A field of the token response has the wrong type.
    #[error("the token service's response field `{field}` must be {expected}")]
    TokenResponseField {
        /// The field.
        field: &'static str,
        /// The type it must have.
        expected: &'static str,
    },
    /// A 401 to a request made with the best credentials there were: retrying cannot help.
    #[error("access to {repository} on {registry} was refused (401 Unauthorized): {hint}")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// The repository asked for.
        repository: String,
        /// What to fix: the credentials, or their absence.
        hint: String,
    },
}

impl AuthError {
    /// The registry answered `401` to a request made with the best credentials ferry had.
    ///
    /// `credentials_sent` says whether a credential was configured for the repository; the
    /// hint tells the user to fix it, or to add one.
    pub fn unauthorized(registry: &str, repository: &str, credentials_sent: bool) -> AuthError {
        let hint = if credentials_sent {
            format!("check the username/password for {registry} in your auth file")
        } else {
            format!("no credentials configured for {registry}: add them to the auth file")
        };
        AuthError::Unauthorized { registry: registry.to_owned(), repository: repository.to_owned(), hint }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_hints_name_the_registry() {
        let cases = [
            (
                true,
                "access to team/app on quay.io was refused (401 Unauthorized): check the \
                 username/password for quay.io in your auth file",
            ),
            (
                false,
                "access to team/app on quay.io was refused (401 Unauthorized): no credentials \
                 configured for quay.io: add them to the auth file",
            ),
        ];
        for (sent, message) in cases {
            assert_eq!(AuthError::unauthorized("quay.io", "team/app", sent).to_string(), message);
        }
    }
}
