//! Prometheus metrics over HTTP, for `ferry sync --watch` and `ferry serve`.
//!
//! The process's metrics go through the `metrics` facade into one recorder of
//! `metrics-exporter-prometheus`, installed once; `/metrics` renders it in Prometheus's
//! text format (version 0.0.4, which `promtool check metrics` lints). Histograms get
//! explicit buckets, so they are real Prometheus histograms, not summaries.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The text format's media type, as the Prometheus exposition formats document names it.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Installs the process's recorder; `buckets` gives histograms (by name suffix) their
/// bucket bounds.
pub(crate) fn install(buckets: &[(&str, &[f64])]) -> anyhow::Result<PrometheusHandle> {
    let mut builder = PrometheusBuilder::new();
    for (suffix, bounds) in buckets {
        builder = builder
            .set_buckets_for_metric(Matcher::Suffix((*suffix).to_owned()), bounds)
            .context("setting histogram buckets")?;
    }
    builder.install_recorder().context("installing the metrics recorder")
}

/// `/metrics` over `handle`, plus the routes in `extra`.
pub(crate) fn router(handle: PrometheusHandle, extra: Router) -> Router {
    extra.route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                handle.run_upkeep();
                ([(CONTENT_TYPE, TEXT_FORMAT)], handle.render())
            }
        }),
    )
}

/// Binds `addr` and serves `router` on it in the background; returns the bound address
/// (port 0 picks a free one).
pub(crate) async fn spawn(addr: SocketAddr, router: Router) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics address {addr}: is another process using it?"))?;
    let bound = listener.local_addr().context("reading the metrics address")?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the metrics server stopped: {e}");
        }
    });
    Ok(bound)
}
