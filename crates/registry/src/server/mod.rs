//! Serving connections: accept under a cap, one hyper HTTP/1.1 connection per socket, and
//! a watchdog per connection that closes it when a timeout passes
//! ([`crate::config::HttpConfig`]).
//!
//! Why not `axum::serve`: it sets none of these, so a connection that sends nothing, half
//! a request head, or a body that stops coming stays open forever, and connections are
//! unbounded. hyper's own `header_read_timeout` starts when it waits for a head, idle
//! keep-alive included, so the idle and header timeouts are kept here instead, after Go's
//! `IdleTimeout` and `ReadHeaderTimeout`:
//!
//! - idle: no request in flight and no byte of a next one (fresh or keep-alive);
//! - header read: from the first byte of a request head to its end;
//! - body: a request body that sends nothing while the app reads it ([`body`]), or an
//!   answer the client does not read ([`io`]). Progress resets it, so a slow but steady
//!   transfer of any size goes through.

use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower_service::Service as _;

use crate::config::HttpConfig;
use crate::tls::ServerTls;

mod activity;
mod body;
mod io;

use activity::Activity;
use body::{ProgressBody, TrackedBody};
use io::WatchedIo;

/// How long a shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets the
/// connections finish their requests, and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    config: HttpConfig,
    in_flight: Arc<AtomicUsize>,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // Waiting for a slot before accepting leaves extra connections in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset while queued: not fatal.
                    tracing::warn!(%e, "accepting a connection failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new(in_flight.clone()));
        let (app, config, stop) = (app.clone(), config.clone(), stop_rx.clone());
        match &tls {
            None => {
                tokio::spawn(connection(stream, app, config, activity, stop, slot));
            }
            // The handshake runs in the connection's task, under its slot: a client that
            // never finishes one holds a slot only until the header timeout.
            Some(tls) => {
                let acceptor = tls.acceptor();
                let wait =
                    HttpConfig::duration(config.header_read_timeout_secs).unwrap_or(Duration::from_secs(10));
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(wait, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => return tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => return tracing::debug!("TLS handshake timed out"),
                    };
                    if crate::tls::is_h2(&stream) {
                        crate::tls::serve_h2(stream, app, stop, slot).await;
                    } else {
                        connection(stream, app, config, activity, stop, slot).await;
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends. Idle ones close at once; requests in
    // flight get a grace period, then the rest are dropped with the server.
    let drained = slots.acquire_many(config.max_connections as u32);
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::warn!(
            open = config.max_connections - slots.available_permits(),
            "connections still open {}s after shutdown began; closing them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}

async fn connection<S>(
    stream: S,
    app: Router,
    config: Arc<HttpConfig>,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let body_timeout = HttpConfig::duration(config.body_timeout_secs);
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: http::Request<Incoming>| {
            // Dropped with this future if the client goes away before the answer.
            let in_flight = activity.request_started();
            let request = request.map(|incoming| Body::new(ProgressBody::new(incoming, body_timeout)));
            let answer = app.clone().call(request);
            async move {
                let response = answer.await?;
                Ok::<_, std::convert::Infallible>(response.map(|b| Body::new(TrackedBody::new(b, in_flight))))
            }
        })
    };
    let io = TokioIo::new(WatchedIo::new(stream, activity.clone()));
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).max_headers(config.max_headers).max_buf_size(config.max_buf_bytes);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let (deadline, expired) = activity.check(&config);
        if let Some(why) = expired {
            tracing::debug!(?why, "closing a connection: timeout");
            return;
        }
        let wake = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%e, "connection ended with an error");
                }
                return;
            }
            () = wake => {}
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
