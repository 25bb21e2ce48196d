//! Who may do what: Basic auth from an htpasswd file, and Bearer tokens from the
//! built-in token endpoint ([`super::token`], served by [`crate::middleware::token`]).
//!
//! What each caller may do is the [`Policy`]'s to say (`auth.access`; without it, users
//! in the htpasswd file may do everything and anonymous clients may pull when
//! `auth.anonymous_pull` is set); the catalog and `/v2/` itself need a user (or a token).
//! Missing or wrong credentials get 401; a known caller the policy refuses gets 403
//! `DENIED` (distribution spec: "DENIED: requested access to the resource is denied").
//! Distribution spec: "If the registry requires authentication, it MUST return a 401
//! Unauthorized response" on `/v2/`, which is how clients discover that they must log in.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ferry_core::digest::Digest;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use super::action::Action;
use super::identity::Identity;
use super::policy::{Policy, Subject};
use super::token::{self, TokenIssuer};
use crate::config::{AuthConfig, Verb};
use crate::error::{ErrorCode, RegistryError};

/// Why the auth configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("cannot read htpasswd file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "htpasswd file {path}, line {line}: {reason}; expected `user:$2y$...` bcrypt entries \
         (create them with `htpasswd -B`)"
    )]
    BadLine { path: PathBuf, line: usize, reason: &'static str },
    #[error("htpasswd file {path} has no users; add one with `htpasswd -B {path} <user>`")]
    NoUsers { path: PathBuf },
}

pub struct Authenticator {
    /// user -> bcrypt hash.
    users: HashMap<String, String>,
    /// user -> sha256 of the password that last verified, so bcrypt (deliberately slow)
    /// runs once per user rather than once per request.
    verified: Mutex<HashMap<String, Digest>>,
    realm: String,
    policy: Policy,
    token: Option<TokenIssuer>,
    /// In token mode, also take Basic credentials on `/v2/` (`auth.token.allow_basic`).
    allow_basic: bool,
}

/// The credentials of an `Authorization` value if its scheme is `scheme`. RFC 7235, 2.1:
/// the scheme is "a case-insensitive token" (`bearer`, `BASIC` are fine).
pub fn credentials<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = value.trim_start().split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Parses `user:hash` lines; blank lines and `#` comments are skipped. Only bcrypt
/// (`$2y$`, `$2b$`, `$2a$`) is accepted: distribution's htpasswd support is bcrypt-only too.
pub fn parse_htpasswd(text: &str, path: &std::path::Path) -> Result<HashMap<String, String>, AuthError> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason| AuthError::BadLine { path: path.to_owned(), line: i + 1, reason };
        let (user, hash) = line.split_once(':').ok_or_else(|| bad("no `:` between user and hash"))?;
        if user.is_empty() {
            return Err(bad("empty user name"));
        }
        if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
            return Err(bad("the hash is not bcrypt"));
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    if users.is_empty() {
        return Err(AuthError::NoUsers { path: path.to_owned() });
    }
    Ok(users)
}

impl Authenticator {
    pub fn from_config(config: &AuthConfig) -> Result<Self, AuthError> {
        let path = config.htpasswd.clone().unwrap_or_default();
        let text = std::fs::read_to_string(&path)
            .map_err(|source| AuthError::Read { path: path.clone(), source })?;
        let users = parse_htpasswd(&text, &path)?;
        let token = config.token.enabled.then(|| token::issuer_from_config(&config.token));
        Ok(Authenticator {
            users,
            verified: Mutex::new(HashMap::new()),
            realm: config.realm.clone(),
            policy: Policy::from_config(config.access.as_ref(), config.anonymous_pull),
            token,
            allow_basic: config.token.allow_basic,
        })
    }

    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.token.as_ref()
    }

    pub fn basic_challenge(&self) -> String {
        format!("Basic realm=\"{}\"", self.realm)
    }

    fn challenge(&self, base: &str, action: &Action, error: Option<&str>) -> String {
        let Some(issuer) = &self.token else { return self.basic_challenge() };
        let mut challenge = format!("Bearer realm=\"{base}/token\",service=\"{}\"", issuer.service);
        if let Some(scope) = action.scope() {
            challenge.push_str(&format!(",scope=\"{scope}\""));
        }
        if let Some(error) = error {
            challenge.push_str(&format!(",error=\"{error}\""));
        }
        challenge
    }

    /// The user named by valid Basic credentials.
    pub async fn basic_user(&self, header: &HeaderValue) -> Option<String> {
        let encoded = credentials(header.to_str().ok()?, "Basic")?;
        let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        self.check_password(user, password).await
    }

    /// Whether the htpasswd file still has this user (a refresh token outlives nothing).
    pub fn has_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The user, if the password is theirs.
    pub async fn check_password(&self, user: &str, password: &str) -> Option<String> {
        let hash = self.users.get(user)?.clone();
        let fingerprint = Digest::sha256(password.as_bytes());
        if self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(user) == Some(&fingerprint) {
            return Some(user.to_owned());
        }
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !ok {
            tracing::warn!(user, "wrong password");
            return None;
        }
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).insert(user.to_owned(), fingerprint);
        Some(user.to_owned())
    }

    /// Decides a request: its identity, or the answer that refuses it. 401 when the
    /// credentials are missing or wrong (or a token lacks a scope the policy would grant,
    /// so the client fetches a better one); 403 `DENIED` when the caller is known and
    /// the policy refuses the action.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        action: &Action,
        base: &str,
    ) -> Result<Identity, RegistryError> {
        let identity = self.identify(headers, action, base).await?;
        self.authorize(&identity, action, base)?;
        Ok(identity)
    }

    /// Who the credentials say is asking; 401 when they are wrong.
    async fn identify(
        &self,
        headers: &HeaderMap,
        action: &Action,
        base: &str,
    ) -> Result<Identity, RegistryError> {
        let header = headers.get(AUTHORIZATION);
        let text = header.and_then(|h| h.to_str().ok()).unwrap_or_default();
        if let (Some(bearer), Some(issuer)) = (credentials(text, "Bearer"), &self.token) {
            return match issuer.verify(bearer, token::now_secs()) {
                Ok(claims) if claims.refresh => Err(RegistryError::unauthorized(
                    self.challenge(base, action, Some("invalid_token")),
                    "a refresh token is not an access token; trade it at the token endpoint",
                )),
                Ok(claims) => Ok(Identity::Token(claims)),
                Err(e) => Err(RegistryError::unauthorized(
                    self.challenge(base, action, Some("invalid_token")),
                    format!("{e}; request a new token"),
                )),
            };
        }
        if credentials(text, "Basic").is_some() {
            if self.token.is_some() && !self.allow_basic {
                return Err(RegistryError::unauthorized(
                    self.challenge(base, action, None),
                    "this registry takes Bearer tokens on /v2/, not passwords: trade the Basic \
                     credentials for a token at the realm of the challenge (or set \
                     auth.token.allow_basic)",
                ));
            }
            return match self.basic_user(header.unwrap_or(&HeaderValue::from_static(""))).await {
                Some(user) => Ok(Identity::User(user)),
                None => Err(RegistryError::unauthorized(
                    self.challenge(base, action, None),
                    "invalid username or password",
                )),
            };
        }
        Ok(Identity::Anonymous)
    }

    /// Whether the identity may do `action`, by its credentials and the policy.
    pub fn permits(&self, identity: &Identity, action: &Action) -> bool {
        match identity {
            Identity::Open => true,
            Identity::Anonymous => self.policy_allows(Subject::Anonymous, action),
            Identity::User(user) => self.policy_allows(Subject::User(user), action),
            // Any valid token may ask for `/v2/`: clients that pull anonymously hold a
            // token with no access at all.
            Identity::Token(claims) => {
                claims.allows(action)
                    && (*action == Action::Base || self.policy_allows(Subject::of_token(&claims.sub), action))
            }
        }
    }

    /// What the policy says of `who` doing `action`; `/v2/` and the catalog need a user.
    fn policy_allows(&self, who: Subject<'_>, action: &Action) -> bool {
        match action {
            Action::Base | Action::Catalog => matches!(who, Subject::User(_)),
            Action::Repo { repo, verb } => self.policy.allows(who, repo.as_str(), *verb),
        }
    }

    /// Whether the catalog lists `repo` to this identity: what it may pull. A token's
    /// holder is asked about, not the token, which grants only `registry:catalog:*`.
    pub fn lists(&self, identity: &Identity, repo: &str) -> bool {
        let who = match identity {
            Identity::Open => return true,
            Identity::Anonymous => Subject::Anonymous,
            Identity::User(user) => Subject::User(user),
            Identity::Token(claims) => Subject::of_token(&claims.sub),
        };
        self.policy.allows(who, repo, Verb::Pull)
    }

    fn authorize(&self, identity: &Identity, action: &Action, base: &str) -> Result<(), RegistryError> {
        if self.permits(identity, action) {
            return Ok(());
        }
        let scope = serde_json::json!({ "scope": action.scope() });
        let user = match identity {
            Identity::Open => return Ok(()),
            Identity::Anonymous => {
                return Err(RegistryError::unauthorized(
                    self.challenge(base, action, None),
                    "authentication required",
                )
                .with_detail(scope))
            }
            Identity::User(user) => user,
            Identity::Token(claims) => {
                let who = Subject::of_token(&claims.sub);
                if who == Subject::Anonymous || self.policy_allows(who, action) {
                    return Err(RegistryError::unauthorized(
                        self.challenge(base, action, Some("insufficient_scope")),
                        "the token does not grant this action",
                    )
                    .with_detail(scope));
                }
                &claims.sub
            }
        };
        Err(RegistryError::new(ErrorCode::Denied, denied_message(user, action)).with_detail(scope))
    }

    /// The policy, for the token endpoint's grants.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// What a 403 says: who was refused what.
fn denied_message(user: &str, action: &Action) -> String {
    match action {
        Action::Repo { repo, verb } => {
            format!("user {user:?} may not {} repository {repo:?} (auth.access)", verb.as_str())
        }
        Action::Base | Action::Catalog => format!("user {user:?} may not do this"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layout::Repo;
    use axum::response::IntoResponse;
    use std::path::Path;

    #[test]
    fn htpasswd_table() {
        let p = Path::new("h");
        let ok = "# comment\n\nalice:$2y$05$abc\nbob:$2b$05$def\n";
        assert_eq!(parse_htpasswd(ok, p).unwrap().len(), 2);
        let cases = [
            ("alice", "no `:`"),
            (":$2y$05$x", "empty user"),
            ("alice:{SHA}abc", "not bcrypt"),
            ("alice:$apr1$x", "not bcrypt"),
        ];
        for (text, want) in cases {
            let err = parse_htpasswd(text, p).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        assert!(matches!(parse_htpasswd("# none\n", p), Err(AuthError::NoUsers { .. })));
    }

    fn authenticator(anonymous_pull: bool, token: bool) -> Authenticator {
        let hash = bcrypt::hash("secret", 4).unwrap();
        Authenticator {
            users: HashMap::from([("alice".to_string(), hash)]),
            verified: Mutex::new(HashMap::new()),
            realm: "ferry".into(),
            policy: Policy::from_config(None, anonymous_pull),
            token: token.then(|| TokenIssuer::new(b"k".to_vec(), "ferry".into(), 60)),
            allow_basic: false,
        }
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        h.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        h
    }

    #[tokio::test]
    async fn decisions_table() {
        let pull = Action::Repo { repo: Repo::parse("a").unwrap(), verb: Verb::Pull };
        let push = Action::Repo { repo: Repo::parse("a").unwrap(), verb: Verb::Push };
        let none = HeaderMap::new();
        let good = basic("alice", "secret");
        let bad = basic("alice", "wrong");
        let mut lower = HeaderMap::new();
        lower.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("bAsIc {}", STANDARD.encode("alice:secret"))).unwrap(),
        );
        type Case<'a> = (bool, bool, &'a HeaderMap, &'a Action, Result<(), &'a str>);
        let cases: Vec<Case> = vec![
            (false, false, &none, &pull, Err("Basic realm=\"ferry\"")),
            (true, false, &none, &pull, Ok(())),
            (true, false, &none, &push, Err("Basic realm=\"ferry\"")),
            (false, false, &good, &push, Ok(())),
            (false, false, &good, &push, Ok(())), // second time from the cache
            (false, false, &bad, &pull, Err("Basic")),
            (false, false, &lower, &push, Ok(())),
            // Token mode: Basic on the API is refused unless allowed.
            (false, true, &good, &push, Err("Bearer realm")),
            (
                false,
                true,
                &none,
                &push,
                Err("Bearer realm=\"http://r/token\",service=\"ferry\",scope=\"repository:a:pull,push\""),
            ),
            (true, true, &none, &Action::Base, Err("Bearer realm=\"http://r/token\",service=\"ferry\"")),
            (false, true, &none, &Action::Catalog, Err("scope=\"registry:catalog:*\"")),
        ];
        for (anonymous_pull, token, headers, action, want) in cases {
            let auth = authenticator(anonymous_pull, token);
            let got = auth.authenticate(headers, action, "http://r").await;
            match (got, want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(challenge)) => {
                    assert_eq!(e.status, http::StatusCode::UNAUTHORIZED);
                    let resp = e.into_response();
                    let header = resp.headers()[http::header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
                    assert!(header.contains(challenge), "{header} lacks {challenge}");
                }
                (got, want) => panic!("{action:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// Under a policy: 401 when credentials are missing or wrong, or when a token lacks a
    /// scope the policy would grant; 403 `DENIED` when a known caller is refused.
    #[tokio::test]
    async fn policy_decisions_table() {
        let config = crate::config::Config::from_yaml(
            "auth: {htpasswd: /h, access: {repositories: {'team/*': {policies: [{users: [alice], actions: [pull]}], \
             anonymous: [pull]}}}}",
        )
        .unwrap();
        let mut auth = authenticator(false, true);
        auth.policy = Policy::from_config(config.auth.access.as_ref(), false);
        auth.allow_basic = true;
        let issuer = auth.token_issuer().unwrap();
        let bearer = |sub: &str, scope: &str| {
            let token = issuer.issue(sub, vec![token::Grant::parse_scope(scope).unwrap()], token::now_secs());
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
            h
        };
        let action = |repo: &str, verb| Action::Repo { repo: Repo::parse(repo).unwrap(), verb };
        let none = HeaderMap::new();
        let good = basic("alice", "secret");
        let bad = basic("alice", "wrong");
        let alice_pull = bearer("alice", "repository:team/a:pull");
        let alice_push = bearer("alice", "repository:team/a:pull,push");
        let anon_pull = bearer("", "repository:team/a:pull");
        // (credentials, action, expected status: 200 allowed, else the refusal's)
        let cases: Vec<(&HeaderMap, Action, u16)> = vec![
            (&none, action("team/a", Verb::Pull), 200),
            (&none, action("team/a", Verb::Push), 401),
            (&none, action("other", Verb::Pull), 401),
            (&good, action("team/a", Verb::Pull), 200),
            (&good, action("team/a", Verb::Push), 403),
            (&good, action("other", Verb::Pull), 403),
            (&bad, action("team/a", Verb::Pull), 401),
            (&alice_pull, action("team/a", Verb::Pull), 200),
            (&alice_pull, action("team/b", Verb::Pull), 401), // allowed, but not by this token
            (&alice_push, action("team/a", Verb::Push), 403), // the token says push; the policy does not
            (&alice_pull, action("other", Verb::Pull), 403),
            (&anon_pull, action("team/a", Verb::Pull), 200),
            (&anon_pull, action("team/a", Verb::Delete), 401),
            (&good, Action::Catalog, 200),
            (&none, Action::Catalog, 401),
        ];
        for (headers, action, want) in cases {
            let got = match auth.authenticate(headers, &action, "http://r").await {
                Ok(_) => 200,
                Err(e) => {
                    if e.status == http::StatusCode::FORBIDDEN {
                        assert_eq!(e.code, crate::error::ErrorCode::Denied);
                    }
                    e.status.as_u16()
                }
            };
            assert_eq!(got, want, "{action:?} with {headers:?}");
        }
    }

    #[test]
    fn schemes_are_case_insensitive() {
        let cases = [
            ("Bearer abc", "Bearer", Some("abc")),
            ("bearer abc", "Bearer", Some("abc")),
            ("BEARER  abc ", "Bearer", Some("abc")),
            ("Basic abc", "Bearer", None),
            ("Bearerabc", "Bearer", None),
            ("", "Basic", None),
        ];
        for (value, scheme, want) in cases {
            assert_eq!(credentials(value, scheme), want, "{value:?}");
        }
    }

    #[tokio::test]
    async fn bearer_tokens_are_checked_against_the_action() {
        let auth = authenticator(false, true);
        let issuer = auth.token_issuer().unwrap();
        let grant = token::Grant::parse_scope("repository:a:pull").unwrap();
        let token = issuer.issue("alice", vec![grant], token::now_secs());
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        let pull = Action::Repo { repo: Repo::parse("a").unwrap(), verb: Verb::Pull };
        let push = Action::Repo { repo: Repo::parse("a").unwrap(), verb: Verb::Push };
        let other = Action::Repo { repo: Repo::parse("b").unwrap(), verb: Verb::Pull };
        assert!(auth.authenticate(&headers, &pull, "http://r").await.is_ok());
        assert!(auth.authenticate(&headers, &Action::Base, "http://r").await.is_ok());
        for action in [push, other] {
            let err = auth.authenticate(&headers, &action, "http://r").await.unwrap_err();
            let resp = err.into_response();
            let header = resp.headers()[http::header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
            assert!(header.contains("insufficient_scope"), "{header}");
        }
    }
}
