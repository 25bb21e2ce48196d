//! The API's calls as the core's jobs: `copy` is a `SyncMachine` with one rule, `diff` a
//! `DiffMachine` over two repositories or two whole registries, `listTags` and `inspect` a `DiffMachine` reading
//! one side alone. Each runs on the core's driver until it finishes or the caller aborts.

use ferry_core::config::{DestinationSpec, Rule, SourceSpec, TagSelector};
use ferry_core::copy::{Job, Plan, SyncMachine, SyncOptions};
use ferry_core::diff::{DiffJob, DiffMachine, DiffReport, Target};
use ferry_core::driver;
use ferry_core::machine::Machine;
use ferry_core::manifest::PlatformFilter;
use ferry_core::progress::Event;
use ferry_core::referrers::ReferrerFilter;
use ferry_core::retry::RetryPolicy;
use ferry_core::transport::Clock as _;
use futures_util::future::{select, Either};
use serde::Deserialize;
use wasm_bindgen::JsValue;
use web_sys::AbortSignal;

use crate::abort::AbortWait;
use crate::clock::BrowserClock;
use crate::errors::ApiError;
use crate::input::{self, Repo};
use crate::js;
use crate::transport::{BrowserOptions, BrowserTransport};

/// Blob transfers at once, across a job. Each holds up to one chunk, so this times
/// [`BrowserOptions::chunk_size`] bounds a copy's memory; browsers open at most six
/// HTTP/1.1 connections per host anyway.
pub const DEFAULT_MAX_TRANSFERS: usize = 4;

/// `copy`'s options; `onProgress` and `signal` are read from the object itself.
#[derive(Default, Deserialize)]
struct CopyInput {
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    platforms: Option<Vec<String>>,
    /// `all` (the default), `none`, or kinds, as `ferry sync --referrers`.
    #[serde(default)]
    referrers: Option<String>,
}

const COPY_OPTIONS: [&str; 5] = ["tags", "platforms", "referrers", "onProgress", "signal"];

const DIFF_OPTIONS: [&str; 5] = ["details", "referrers", "repositories", "onEvent", "signal"];

/// `diff`'s options; `onEvent` and `signal` are read from the object itself.
#[derive(Default, Deserialize)]
struct DiffInput {
    #[serde(default)]
    details: bool,
    #[serde(default)]
    referrers: bool,
    /// With a whole-registry `src`: these repositories instead of the catalogs'.
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

/// What `read` runs, beside its repositories.
#[derive(Default)]
struct Reading {
    destination: Option<Target>,
    reference: Option<String>,
    repositories: Vec<String>,
    details: bool,
    referrers: bool,
}

/// `copy(src, dst, opts)` with transport options of the caller's choosing (a small chunk
/// size, in tests).
pub async fn copy_with(
    src: JsValue,
    dst: JsValue,
    opts: JsValue,
    options: BrowserOptions,
) -> Result<JsValue, JsValue> {
    copy(src, dst, opts, options).await.map_err(JsValue::from)
}

pub(crate) async fn copy(
    src: JsValue,
    dst: JsValue,
    opts: JsValue,
    options: BrowserOptions,
) -> Result<JsValue, ApiError> {
    let src = input::repo("src", &src)?;
    let dst = input::repo("dst", &dst)?;
    let CopyInput { tags, platforms, referrers } = input::options("copy options", &opts, &COPY_OPTIONS)?;
    let referrers = match referrers {
        Some(value) => {
            value.parse::<ReferrerFilter>().map_err(|e| ApiError::input(format!("referrers: {e}")))?
        }
        None => ReferrerFilter::All,
    };
    let on_progress = input::callback("copy options", &opts, "onProgress")?;
    let signal = input::signal("copy options", &opts)?;
    let selector = match input::tags(tags)? {
        Some(tags) => TagSelector::List(tags),
        None => TagSelector::All,
    };
    let platforms = PlatformFilter::new(&[], &[], &platforms.unwrap_or_default())
        .map_err(|e| ApiError::input(format!("platforms: {e}")))?;
    let access = input::access(&[&src, &dst])?;
    let rule = Rule {
        source_text: format!("{}/{}", src.base, src.repository),
        source: SourceSpec { registry: src.name, repository: Some(src.repository), selector },
        destinations: vec![DestinationSpec {
            registry: dst.name,
            repository: Some(dst.repository),
            tags: Vec::new(),
        }],
        tags: Default::default(),
        platforms: Vec::new(),
        immutable: None,
        referrers: None,
    };
    let job =
        Job { plan: Plan::Rules(vec![rule]), credentials: access.credentials, endpoints: access.endpoints };
    let sync = SyncOptions {
        max_transfers: DEFAULT_MAX_TRANSFERS,
        seed: jitter_seed(),
        platforms,
        referrers,
        ..SyncOptions::default()
    };
    let transport = BrowserTransport::with_access(options, access.bases, access.tokens);
    let clock = BrowserClock::new();
    let mut machine = SyncMachine::new(job, sync, clock.now(), clock.wall_now());
    let on_event = |event: Event| {
        if let (Some(callback), Ok(value)) = (&on_progress, js::to_js(&event)) {
            // A callback that throws must not stop the copy.
            let _ = callback.call1(&JsValue::NULL, &value);
        }
    };
    drive(&mut machine, &transport, &clock, signal.as_ref(), on_event).await?;
    let report = machine.report();
    let value = js::to_js(&report)?;
    if report.summary.failed > 0 {
        if let Some(error) = network_error(&transport, Some(value.clone())) {
            return Err(error);
        }
    }
    Ok(value)
}

/// Two repositories, or two whole registries (`src` without a repository; `dst`'s is then
/// a prefix) over their catalogs or a typed list. `onEvent` gets each repository pair's
/// `repository_diffed` as soon as it is compared.
pub(crate) async fn diff(src: JsValue, dst: JsValue, opts: JsValue) -> Result<JsValue, ApiError> {
    let src = input::side("src", &src)?;
    let dst = input::side("dst", &dst)?;
    let DiffInput { details, referrers, repositories } =
        input::options("diff options", &opts, &DIFF_OPTIONS)?;
    let repositories = input::repositories(repositories)?;
    let on_event = input::callback("diff options", &opts, "onEvent")?;
    let signal = input::signal("diff options", &opts)?;
    if !src.repository.is_empty() && dst.repository.is_empty() {
        return Err(ApiError::input(
            "dst.repository is missing: src names a repository, so dst must name one too",
        ));
    }
    if !src.repository.is_empty() && !repositories.is_empty() {
        return Err(ApiError::input(
            "repositories lists repositories of a whole registry: leave src.repository out",
        ));
    }
    let optional = |path: &str| (!path.is_empty()).then(|| path.to_owned());
    let reading = Reading {
        destination: Some(Target { registry: dst.name.clone(), repository: optional(&dst.repository) }),
        repositories,
        details,
        referrers,
        ..Reading::default()
    };
    let on_event = |event: Event| {
        if let (Some(callback), Ok(value)) = (&on_event, js::to_js(&event)) {
            // A callback that throws must not stop the diff.
            let _ = callback.call1(&JsValue::NULL, &value);
        }
    };
    let report = read(&[&src, &dst], reading, signal.as_ref(), on_event).await?;
    Ok(js::to_js(&report)?)
}

pub(crate) async fn list_tags(repo: JsValue) -> Result<JsValue, ApiError> {
    let repo = input::repo("repo", &repo)?;
    let report = read(&[&repo], Reading::default(), None, |_| {}).await?;
    let tags: Vec<&str> = report.rows.iter().map(|row| row.tag.as_str()).collect();
    Ok(js::to_js(&tags)?)
}

pub(crate) async fn inspect(repo: JsValue, reference: String) -> Result<JsValue, ApiError> {
    let repo = input::repo("repo", &repo)?;
    let reference = input::reference(&reference)?;
    let reading = Reading { reference: Some(reference.clone()), details: true, ..Reading::default() };
    let report = read(&[&repo], reading, None, |_| {}).await?;
    let Some(row) = report.rows.first() else {
        return Err(ApiError::failed(format!(
            "{}/{}: no image {reference} (listTags shows the tags)",
            repo.base, repo.repository
        )));
    };
    let value = serde_json::json!({
        "reference": reference,
        "digest": row.source_digest,
        "mediaType": row.media_type.clone().unwrap_or_default(),
        "size": row.size.unwrap_or(0),
        "platforms": row.platforms,
    });
    Ok(js::to_js(&value)?)
}

/// Runs a `DiffMachine` with `repos[0]` as its source (a whole registry when it names no
/// repository). A listing of one side fails on its first error; a comparison reports its
/// errors, unless a registry could not be reached.
async fn read(
    repos: &[&Repo],
    reading: Reading,
    signal: Option<&AbortSignal>,
    on_event: impl FnMut(Event),
) -> Result<DiffReport, ApiError> {
    let access = input::access(repos)?;
    let repository = (!repos[0].repository.is_empty()).then(|| repos[0].repository.clone());
    let source = Target { registry: repos[0].name.clone(), repository };
    let Reading { destination, reference, repositories, details, referrers } = reading;
    let one_sided = destination.is_none();
    let job = DiffJob {
        source,
        destination,
        reference,
        repositories,
        details,
        referrers,
        credentials: access.credentials,
        endpoints: access.endpoints,
        retry: RetryPolicy::default(),
        seed: jitter_seed(),
    };
    let transport = BrowserTransport::with_access(BrowserOptions::default(), access.bases, access.tokens);
    let clock = BrowserClock::new();
    let mut machine = DiffMachine::new(job, clock.now(), clock.wall_now());
    drive(&mut machine, &transport, &clock, signal, on_event).await?;
    let report = machine.report();
    if let Some(first) = report.errors.first() {
        if let Some(error) = network_error(&transport, None) {
            return Err(error);
        }
        if one_sided {
            return Err(first.clone().into());
        }
    }
    Ok(report)
}

/// Runs `machine` on the core's driver until it finishes, or until `signal` fires: then
/// the run is dropped, which aborts every request in flight.
async fn drive<M: Machine>(
    machine: &mut M,
    transport: &BrowserTransport,
    clock: &BrowserClock,
    signal: Option<&AbortSignal>,
    on_event: impl FnMut(Event),
) -> Result<(), ApiError> {
    if signal.is_some_and(AbortSignal::aborted) {
        return Err(ApiError::Aborted);
    }
    let run = Box::pin(driver::run(machine, transport, clock, on_event));
    match select(run, AbortWait::new(signal)).await {
        Either::Left((Ok(()), _)) => Ok(()),
        Either::Left((Err(misuse), _)) => Err(ApiError::failed(format!("ferry's driver stopped: {misuse}"))),
        Either::Right(_) => Err(ApiError::Aborted),
    }
}

/// A `NetworkError` when `fetch` could not reach one of the job's registries.
fn network_error(transport: &BrowserTransport, report: Option<JsValue>) -> Option<ApiError> {
    let (registry, reason) = transport.unreachable()?;
    let message = format!(
        "could not reach {registry} ({reason}): it is down or unreachable, or it does not allow this origin by CORS"
    );
    Some(ApiError::Network { message, registry, report })
}

/// A jitter seed that differs between runs, so that many pages retrying one registry
/// spread out.
fn jitter_seed() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64
}
