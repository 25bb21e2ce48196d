//! Access control, below the HTTP layer: what a request asks to do ([`Action`]), who is
//! asking ([`Identity`]), what the policy lets them do ([`policy`]), how credentials are checked ([`Authenticator`]: htpasswd Basic
//! auth and Bearer tokens) and what a token says ([`token`]).
//!
//! The middleware that applies it to requests ([`crate::middleware::auth`]) and the token
//! endpoint ([`crate::middleware::token`]) sit above; the routes read the [`Identity`] the
//! middleware recorded. Nothing here imports them.

pub mod action;
pub mod authenticator;
pub mod identity;
pub mod policy;
pub mod token;

pub use action::Action;
pub use authenticator::{AuthError, Authenticator};
pub use identity::Identity;
