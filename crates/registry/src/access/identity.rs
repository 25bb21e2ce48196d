//! Who is asking, as the registry decided it from the request's credentials.

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
