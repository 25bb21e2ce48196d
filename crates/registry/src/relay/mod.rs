//! The job relay (`ferry serve --relay`): a page whose registries send no CORS headers
//! asks the relay to diff or copy for it, and reads the core's events as NDJSON.
//!
//! - `POST /jobs` with a job request ([`request`]) answers `200 application/x-ndjson` at
//!   once and streams the job's lines: `job_started` (with the job's id), the core's
//!   events (a diff's `repository_diffed`, one per repository pair as soon as it is
//!   compared, with that pair's rows and errors), and last the final status: a copy's
//!   `job_finished`, a diff's `diff_finished` (with the whole report), or `{"event": "error", "kind": "cancelled"}` when
//!   it was cancelled or ran out of time. `Location` names the job.
//! - `GET /jobs/<id>/events?offset=N` reads the same lines again from line `N` (0 is the
//!   first), then follows the job until its last line.
//! - `DELETE /jobs/<id>` cancels a running job (202); its stream then ends with the
//!   cancelled line.
//!
//! A relay is not an open proxy: its transport reaches only the hosts of `relay.allow`
//! ([`ferry_core::allowlist`]), every route needs one of the registry's own users
//! (htpasswd, or a token from its `/token`), at most `relay.max_jobs` run at once, and
//! each runs at most `relay.max_job_secs`. The registry credentials a job carries live
//! in that job's memory only; no log line, event or error holds them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use ferry_core::allowlist::Allowlist;
use ferry_native::{NativeOptions, NativeTransport};
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::access::Action;
use crate::config::RelayConfig;
use crate::state::AppState;

pub mod job;
pub mod request;

use job::JobRecord;

/// The largest job request accepted.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// The relay's jobs and limits.
pub struct Relay {
    config: RelayConfig,
    allowlist: Allowlist,
    jobs: Mutex<HashMap<String, Arc<JobRecord>>>,
}

impl Relay {
    pub fn new(config: RelayConfig) -> Result<Relay, ferry_core::allowlist::AllowlistError> {
        let allowlist = Allowlist::parse(&config.allow)?;
        Ok(Relay { config, allowlist, jobs: Mutex::new(HashMap::new()) })
    }

    fn job(&self, id: &str) -> Option<Arc<JobRecord>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    fn running(&self) -> usize {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner).values().filter(|j| !j.is_finished()).count()
    }
}

/// The relay's routes, added to the app when `relay.enabled`.
pub fn routes(router: Router<Arc<AppState>>) -> Router<Arc<AppState>> {
    router
        .route("/jobs", post(create))
        .route("/jobs/{id}", delete(cancel))
        .route("/jobs/{id}/events", get(events))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() }).to_string() + "\n";
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The relay, for one of its own users; else the 401 that asks for one (or 404 when the
/// relay is off). Boxed: an answer is large beside a reference.
async fn admit<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a Relay, Box<Response>> {
    let (Some(auth), Some(relay)) = (&state.auth, &state.relay) else {
        // `relay.enabled` needs auth.htpasswd (Config::validate): never run jobs for anyone.
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "the relay is off (relay.enabled, auth.htpasswd)",
        )));
    };
    let base = state.base_url(headers);
    match auth.authenticate(headers, &Action::Base, &base).await {
        Ok(_) => Ok(relay),
        Err(refused) => Err(Box::new(refused.into_response())),
    }
}

fn ndjson(job: Arc<JobRecord>, offset: usize, status: StatusCode) -> Response {
    let mut response = Response::new(Body::from_stream(job.clone().lines_from(offset)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(location) = HeaderValue::from_str(&format!("/jobs/{}", job.id)) {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// `POST /jobs`.
async fn create(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let relay = match admit(&state, &headers).await {
        Ok(relay) => relay,
        Err(refused) => return *refused,
    };
    if body.len() > MAX_REQUEST_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a job request is at most {MAX_REQUEST_BYTES} bytes"),
        );
    }
    let seed = u64::from_str_radix(&crate::random::random_hex(8), 16).unwrap_or(0);
    let work = match request::parse(&body, seed) {
        Ok(work) => work,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    // Refused before it starts: a host the list does not name.
    for registry in work.registries() {
        let (host, port) = host_port(&registry, &work);
        if let Err(refusal) = relay.allowlist.check_host(&host, port) {
            return error(StatusCode::FORBIDDEN, refusal.to_string());
        }
    }
    let options = NativeOptions::default().with_allowlist(relay.allowlist.clone());
    let transport = match NativeTransport::with_options(options) {
        Ok(transport) => transport,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("the relay's HTTP client: {e}")),
    };
    let job = {
        let mut jobs = relay.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let running = jobs.values().filter(|j| !j.is_finished()).count();
        if running >= relay.config.max_jobs {
            drop(jobs);
            let mut answer = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("the relay runs {running} jobs, its limit (relay.max_jobs); try again when one ends"),
            );
            answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return answer;
        }
        let job = JobRecord::new(crate::random::random_hex(16));
        jobs.insert(job.id.clone(), job.clone());
        job
    };
    tracing::info!(job = %job.id, kind = work.kind(), registries = ?work.registries(), "relay job started");
    let lifetime = Duration::from_secs(relay.config.max_job_secs);
    let keep = Duration::from_secs(relay.config.keep_finished_secs);
    let (running, state_for_cleanup) = (job.clone(), state.clone());
    tokio::spawn(async move {
        running.clone().run(work, transport, lifetime).await;
        tokio::time::sleep(keep).await;
        if let Some(relay) = &state_for_cleanup.relay {
            relay.jobs.lock().unwrap_or_else(PoisonError::into_inner).remove(&running.id);
        }
    });
    tracing::debug!(running = relay.running(), "relay jobs running");
    ndjson(job, 0, StatusCode::OK)
}

/// The host and port a registry name is reached at, by the job's base URL.
fn host_port(registry: &str, work: &request::Work) -> (String, u16) {
    let base = match work {
        request::Work::Diff(job) => job.endpoints.bases.get(registry),
        request::Work::Copy(job, _) => job.endpoints.bases.get(registry),
    };
    let https = base.is_none_or(|b| b.starts_with("https://"));
    let default = if https { 443 } else { 80 };
    match registry.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (host.to_owned(), port.parse().unwrap_or(default)),
        _ => (registry.to_owned(), default),
    }
}

/// `offset=N` from a query string; 0 when absent, `None` when it is not a number.
fn offset(query: Option<&str>) -> Option<usize> {
    let value = query.unwrap_or_default().split('&').find_map(|pair| pair.strip_prefix("offset="));
    match value {
        None => Some(0),
        Some(n) => n.parse().ok(),
    }
}

/// `GET /jobs/<id>/events?offset=N`.
async fn events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: http::Uri,
) -> Response {
    let relay = match admit(&state, &headers).await {
        Ok(relay) => relay,
        Err(refused) => return *refused,
    };
    let Some(offset) = offset(uri.query()) else {
        return error(StatusCode::BAD_REQUEST, "offset must be a line number, 0 or more");
    };
    match relay.job(&id) {
        Some(job) => ndjson(job, offset, StatusCode::OK),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no job {id:?}: it never ran, or ended long enough ago to be forgotten"),
        ),
    }
}

/// `DELETE /jobs/<id>`.
async fn cancel(State(state): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let relay = match admit(&state, &headers).await {
        Ok(relay) => relay,
        Err(refused) => return *refused,
    };
    match relay.job(&id) {
        Some(job) if job.is_finished() => error(StatusCode::CONFLICT, format!("job {id} has already ended")),
        Some(job) => {
            job.cancel();
            tracing::info!(job = %id, "relay job cancelled");
            (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], "{\"cancelled\":true}\n")
                .into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("no job {id:?}")),
    }
}
