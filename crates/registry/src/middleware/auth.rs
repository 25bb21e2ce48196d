//! The auth layer: decides who is asking for every `/v2/` request and what the route
//! needs ([`crate::access`]), answers 401 when that is not enough, and records the
//! [`Identity`] for the handlers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access::{Action, Identity};
use crate::routes::Route;
use crate::state::AppState;

/// Authenticates every `/v2/` request and records the [`Identity`] in its extensions.
pub async fn middleware(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/v2") {
        return next.run(request).await;
    }
    let identity = match &state.auth {
        None => Identity::Open,
        Some(auth) => {
            // A path that does not parse is answered by the router, but only to a client
            // that could have made a valid request: it needs as much as `/v2/`.
            let action = match Route::parse(request.uri().path()) {
                Ok(route) => route.action(request.method()),
                Err(_) => Action::Base,
            };
            let base = state.base_url(request.headers());
            match auth.authenticate(request.headers(), &action, &base).await {
                Ok(identity) => identity,
                Err(err) => return err.into_response(),
            }
        }
    };
    request.extensions_mut().insert(identity);
    next.run(request).await
}
