//! Who is asking, as the registry decided it from the request's credentials.

use super::action::Action;
use super::token::Claims;

/// Who is asking, as far as the registry could tell.
#[derive(Debug, Clone)]
pub enum Identity {
    /// Auth is off: everything is allowed.
    Open,
    Anonymous,
    User(String),
    Token(Claims),
}

impl Identity {
    /// Whether this identity may do `action`; used for checks beyond the request's own
    /// (the source repository of a cross-repository mount).
    pub fn allows(&self, action: &Action, anonymous_pull: bool) -> bool {
        match self {
            Identity::Open | Identity::User(_) => true,
            Identity::Anonymous => anonymous_pull && action.is_pull(),
            Identity::Token(claims) => claims.allows(action),
        }
    }
}
