//! What a request asks to do, in the terms of distribution's token scopes.

use crate::config::Verb;
use crate::store::layout::Repo;

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GET /v2/`: any authenticated client.
    Base,
    /// `GET /v2/_catalog`: scope `registry:catalog:*`.
    Catalog,
    /// `repository:<repo>:<verb>`, verb one of `pull`, `push`, `delete`.
    Repo { repo: Repo, verb: Verb },
}

impl Action {
    pub fn is_pull(&self) -> bool {
        matches!(self, Action::Repo { verb: Verb::Pull, .. })
    }

    /// The scope a Bearer challenge asks for. Pushes ask for `pull,push`, as Docker
    /// clients do, since a push also checks for existing blobs.
    pub fn scope(&self) -> Option<String> {
        match self {
            Action::Base => None,
            Action::Catalog => Some("registry:catalog:*".into()),
            Action::Repo { repo, verb: Verb::Push } => Some(format!("repository:{repo}:pull,push")),
            Action::Repo { repo, verb } => Some(format!("repository:{repo}:{}", verb.as_str())),
        }
    }
}
