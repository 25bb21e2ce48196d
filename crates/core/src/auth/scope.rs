//! Token scopes: what a Bearer token lets its holder do.
//!
//! distribution, "Token Scope Documentation", resource scope grammar:
//!
//! ```text
//! scope         := resourcescope [ ' ' resourcescope ]*
//! resourcescope := resourcetype  ":" resourcename  ":" action [ ',' action ]*
//! resourcetype  := resourcetypevalue [ '(' resourcetypevalue ')' ]
//! ```
//!
//! "Note that the `resourcename` may contain one `:` due to a possible port number in the
//! hostname component", so the type ends at the first `:` and the actions start after the
//! last one. "Resource Class is deprecated and ignored. `repository` and
//! `repository(plugin)` are considered equal", so ferry drops the class when parsing.

use std::fmt;
use std::str::FromStr;

use super::AuthError;

/// The resource a scope is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `repository:NAME`, one repository.
    Repository(String),
    /// `registry:catalog`, the `/v2/_catalog` listing.
    Catalog,
}

/// A set of actions on a resource: `pull`, `push`, `delete`, or `*` (all of them and any
/// others the registry knows).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Actions(u8);

const NAMES: [(Actions, &str); 4] =
    [(Actions::PULL, "pull"), (Actions::PUSH, "push"), (Actions::DELETE, "delete"), (Actions::ALL, "*")];

impl Actions {
    /// `pull`: read manifests, blobs and tags.
    pub const PULL: Actions = Actions(1);
    /// `push`: upload blobs and put manifests. A cross-repository mount also needs `pull` on
    /// the repository it mounts from.
    pub const PUSH: Actions = Actions(2);
    /// `delete`: remove manifests, tags and blobs.
    pub const DELETE: Actions = Actions(4);
    /// `*`: every action, as in `registry:catalog:*`.
    pub const ALL: Actions = Actions(8);

    /// Every action in `self` or in `other`; anything with `*` is just `*`.
    pub const fn union(self, other: Actions) -> Actions {
        let bits = self.0 | other.0;
        Actions(if bits & Actions::ALL.0 != 0 { Actions::ALL.0 } else { bits })
    }

    /// Whether a token granting `self` allows everything `other` asks for.
    pub const fn contains(self, other: Actions) -> bool {
        self.0 == Actions::ALL.0 || self.0 & other.0 == other.0
    }

    /// Whether the set holds no action (the default).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Actions {
    /// `pull,push` in a fixed order; `*` alone when `*` is present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Actions::ALL {
            return f.write_str("*");
        }
        let mut names = NAMES.iter().filter(|(action, _)| self.0 & action.0 != 0).map(|(_, name)| name);
        if let Some(first) = names.next() {
            f.write_str(first)?;
        }
        names.try_for_each(|name| write!(f, ",{name}"))
    }
}

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actions({self})")
    }
}

/// One resource scope, such as `repository:library/nginx:pull`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// What the actions apply to.
    pub resource: Resource,
    /// What the token must allow on it.
    pub actions: Actions,
}

impl Scope {
    /// `repository:REPO:pull`.
    pub fn pull(repository: impl Into<String>) -> Scope {
        Scope { resource: Resource::Repository(repository.into()), actions: Actions::PULL }
    }

    /// `repository:REPO:pull,push`. Pushing needs pull too: the client checks which blobs
    /// already exist before uploading.
    pub fn push_pull(repository: impl Into<String>) -> Scope {
        Scope {
            resource: Resource::Repository(repository.into()),
            actions: Actions::PULL.union(Actions::PUSH),
        }
    }

    /// `registry:catalog:*`, needed to list repositories.
    pub fn catalog() -> Scope {
        Scope { resource: Resource::Catalog, actions: Actions::ALL }
    }

    /// Whether a token granted for `self` also serves a request that needs `other`.
    pub fn covers(&self, other: &Scope) -> bool {
        self.resource == other.resource && self.actions.contains(other.actions)
    }
}

/// The scopes for a cross-repository blob mount from `src_repo` into `dst_repo` on one
/// registry: push and pull on the destination, pull on the source, as docker requests them.
/// A token without pull on the source makes the registry refuse the mount; OCI distribution
/// spec v1.1: "if a registry does not support cross-repository mounting or is unable to mount
/// the requested blob, it SHOULD return a `202`", and the blob has to be uploaded after all.
pub fn scopes_for_mount(dst_repo: &str, src_repo: &str) -> Vec<Scope> {
    let mut scopes = vec![Scope::push_pull(dst_repo)];
    if src_repo != dst_repo {
        scopes.push(Scope::pull(src_repo));
    }
    scopes
}

/// Parses a space-separated list of scopes, such as a challenge's `scope` parameter.
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, AuthError> {
    list.split_whitespace().map(str::parse).collect()
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Resource::Repository(name) => write!(f, "repository:{name}:{}", self.actions),
            Resource::Catalog => write!(f, "registry:catalog:{}", self.actions),
        }
    }
}

impl FromStr for Scope {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Scope, AuthError> {
        let bad = |problem| AuthError::MalformedScope { scope: s.to_owned(), problem };
        let (kind, rest) = s.split_once(':').ok_or_else(|| bad("it has no `:`"))?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(|| bad("it has no actions after the name"))?;
        let kind = match kind.split_once('(') {
            Some((base, class)) if class.ends_with(')') => base,
            Some(_) => return Err(bad("the resource class has no closing `)`")),
            None => kind,
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad("the resource name is empty or contains spaces"));
        }
        let resource = match (kind, name) {
            ("repository", name) => Resource::Repository(name.to_owned()),
            ("registry", "catalog") => Resource::Catalog,
            ("registry", _) => return Err(bad("the only registry resource ferry knows is `catalog`")),
            _ => return Err(bad("the resource type is neither `repository` nor `registry`")),
        };
        let mut set = Actions::default();
        for action in actions.split(',') {
            let (known, _) = NAMES
                .iter()
                .find(|(_, name)| *name == action)
                .ok_or_else(|| bad("it names an action other than pull, push, delete or *"))?;
            set = set.union(*known);
        }
        Ok(Scope { resource, actions: set })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str, actions: Actions) -> Scope {
        Scope { resource: Resource::Repository(name.to_owned()), actions }
    }

    fn bad(scope: &str, problem: &'static str) -> Result<Scope, AuthError> {
        Err(AuthError::MalformedScope { scope: scope.to_owned(), problem })
    }

    const PULL_PUSH: Actions = Actions::PULL.union(Actions::PUSH);

    #[test]
    fn display_table() {
        let cases = [
            (Scope::pull("library/nginx"), "repository:library/nginx:pull"),
            (Scope::push_pull("team/app"), "repository:team/app:pull,push"),
            (Scope::catalog(), "registry:catalog:*"),
            (repo("a", Actions::DELETE.union(Actions::PULL)), "repository:a:pull,delete"),
            (repo("a", Actions::ALL.union(Actions::PULL)), "repository:a:*"),
            (repo("localhost:5000/a", Actions::PUSH), "repository:localhost:5000/a:push"),
        ];
        for (scope, text) in cases {
            assert_eq!(scope.to_string(), text);
            assert_eq!(text.parse::<Scope>(), Ok(scope), "{text}");
        }
    }

    #[test]
    fn parse_table() {
        let cases = [
            ("repository:samalba/my-app:push,pull", Ok(repo("samalba/my-app", PULL_PUSH))),
            ("repository:a:pull,pull", Ok(repo("a", Actions::PULL))),
            ("repository(plugin):a:pull", Ok(repo("a", Actions::PULL))),
            ("repository:host:5000/ns/a:pull", Ok(repo("host:5000/ns/a", Actions::PULL))),
            ("registry:catalog:*", Ok(Scope::catalog())),
            ("", bad("", "it has no `:`")),
            ("repository", bad("repository", "it has no `:`")),
            ("repository:a", bad("repository:a", "it has no actions after the name")),
            (
                "repository(plugin:a:pull",
                bad("repository(plugin:a:pull", "the resource class has no closing `)`"),
            ),
            ("repository::pull", bad("repository::pull", "the resource name is empty or contains spaces")),
            (
                "registry:other:*",
                bad("registry:other:*", "the only registry resource ferry knows is `catalog`"),
            ),
            ("blob:a:pull", bad("blob:a:pull", "the resource type is neither `repository` nor `registry`")),
            ("repository:a:", bad("repository:a:", "it names an action other than pull, push, delete or *")),
            (
                "repository:a:pull,metadata_read",
                bad(
                    "repository:a:pull,metadata_read",
                    "it names an action other than pull, push, delete or *",
                ),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<Scope>(), expected, "{text}");
        }
    }

    #[test]
    fn parse_lists() {
        assert_eq!(
            parse_scopes(" repository:a:pull,push  repository:b:pull "),
            Ok(vec![repo("a", PULL_PUSH), repo("b", Actions::PULL)])
        );
        assert_eq!(parse_scopes(""), Ok(vec![]));
        assert_eq!(parse_scopes("repository:a:pull x"), bad("x", "it has no `:`").map(|s| vec![s]));
    }

    #[test]
    fn covers_table() {
        let cases = [
            (Scope::push_pull("a"), Scope::pull("a"), true),
            (Scope::push_pull("a"), Scope::push_pull("a"), true),
            (Scope::pull("a"), Scope::push_pull("a"), false),
            (Scope::pull("a"), Scope::pull("b"), false),
            (repo("a", Actions::ALL), repo("a", PULL_PUSH.union(Actions::DELETE)), true),
            (repo("a", PULL_PUSH.union(Actions::DELETE)), repo("a", Actions::ALL), false),
            (Scope::catalog(), Scope::catalog(), true),
            (repo("catalog", Actions::ALL), Scope::catalog(), false),
        ];
        for (granted, needed, expected) in cases {
            assert_eq!(granted.covers(&needed), expected, "{granted} covers {needed}");
        }
    }

    #[test]
    fn mount_scopes() {
        assert_eq!(
            scopes_for_mount("dst/app", "src/app"),
            vec![Scope::push_pull("dst/app"), Scope::pull("src/app")]
        );
        assert_eq!(scopes_for_mount("same", "same"), vec![Scope::push_pull("same")]);
    }

    #[test]
    fn actions_debug_and_empty() {
        assert_eq!(format!("{PULL_PUSH:?}"), "Actions(pull,push)");
        assert!(Actions::default().is_empty());
        assert_eq!(Actions::default().to_string(), "");
    }

    #[test]
    fn error_message_shows_the_expected_form() {
        assert_eq!(
            "blob:a:pull".parse::<Scope>().unwrap_err().to_string(),
            "malformed scope \"blob:a:pull\": the resource type is neither `repository` nor \
             `registry`; expected `repository:NAME:ACTION[,ACTION]` (actions pull, push, delete, \
             *) or `registry:catalog:*`"
        );
    }
}
