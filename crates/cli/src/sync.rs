//! `ferry sync`: image-syncer's command line, run by the core's `SyncMachine`.
//!
//! The flags are image-syncer's (`--auth`, `--images`, `--config`, `--proc`, `--retries`,
//! `--os`, `--arch`, `--force`) and read its files unchanged; ferry adds `--dry-run`,
//! `--report`, `--progress`, `--docker-config`, `--max-transfers`, `--immutable` and the
//! shard flags `--shard` and `--shards` (with `JOB_COMPLETION_INDEX` and `FERRY_SHARDS`),
//! and `--state` (see [`crate::state`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use ferry_core::auth::CredentialStore;
use ferry_core::config::{
    parse_auth_file, parse_config_file, parse_images_file, JobConfig, Rule, TagPattern, TagSelector,
};
use ferry_core::copy::{Job, SyncMachine, SyncOptions};
use ferry_core::manifest::PlatformFilter;
use ferry_core::progress::{Event, Report};
use ferry_core::reference::api_host;
use ferry_core::referrers::ReferrerFilter;
use ferry_core::retry::RetryPolicy;
use ferry_core::shard::Shard;
use ferry_core::transport::Clock as _;
use ferry_native::{run_sync_until, RegistryTls, TlsOptions, TokioClock};

use crate::common::{self, bad_input};
use crate::progress::{summary_text, write_report, Progress, ProgressArgs};
use crate::state::StateFile;
use crate::watch::WatchArgs;

const AFTER_HELP: &str = "\
Files are JSON or YAML by their extension (.json, .yaml, .yml), as image-syncer reads them:
  auth.json    {\"registry.example.com\": {\"username\": \"me\", \"password\": \"${PASSWORD}\", \"insecure\": true}}
  images.json  {\"quay.io/coreos/etcd:v3.5.0\": \"registry.example.com/coreos/etcd\"}
  config.yaml  auth: {...}, images: {...}, and ferry's rules, proc, retries, os, arch, tls
\"insecure\": true means what it means to image-syncer and skopeo: HTTPS without verifying
the certificate, plain HTTP only if the registry does not speak TLS. CAs and client
certificates: the platform's roots (or SSL_CERT_FILE), certs.d/HOST:PORT/ under
/etc/docker and /etc/containers (or FERRY_CERTS_D), --cert-dir, and the config's
tls: {HOST:PORT: {ca, cert, key, certDir}}.
${VAR} in usernames, passwords and destinations comes from the environment.
Flags override the config file's proc, retries, os and arch.

Retries, as image-syncer counts them: --retries N (or the config file's `retries`) lets
each request and blob transfer try N more times, and then runs the images and listings
that still failed transiently (rate limited, unavailable) again, as fresh attempts, in up
to N more rounds; blobs already moved are not moved again. A permanent failure (not found,
rejected credentials, a digest mismatch) is never run again. The summary says how many
rounds ran.

Immutable tags, for warm syncs: --immutable PATTERN (or a rule's `immutable: PATTERN` in
ferry's config, which wins) names tags that never move once pushed. A rule that lists tags
then also lists each destination repository's tags, once, and a listed tag that matches
and that the destination already holds is skipped without a request on either side: with
every tag immutable, a sync with nothing new costs one tags/list per repository per side.
A tag that moved at the source is only caught when it does not match. Rules that name
their tags are checked as always.

Shards, for a registry too big for one machine: --shard INDEX/COUNT (from 0, e.g. 0/4 to
3/4) makes this process plan and copy only its share of the source repositories, chosen
by a stable hash (FNV-1a of registry/repository, mod COUNT). COUNT processes with the same
files and every INDEX copy disjoint shares whose union is the whole job; every tag of a
repository goes to one shard. In a Kubernetes Indexed Job give --shards COUNT (or set
FERRY_SHARDS=COUNT) and the index comes from JOB_COMPLETION_INDEX; --shard wins over
both. The job's completions must equal the count. Each shard still lists the catalogs of
whole-registry rules, but only its own repositories' tags. See deploy/ in the repository.

Resume across runs: --state FILE (or the config's `state: FILE`) keeps the upload sessions
this run opens and the blobs it sees at each destination. A run killed in the middle of a
blob leaves its session at the registry; the next run with the same --state asks the
registry how much it holds and sends only the rest. A file that is not ferry's, was
written for other rules, or is older than 7 days is ignored with a warning. The file is
never trusted blindly: every manifest and blob is still checked at the destination
before a manifest is pushed; a blob the file saw in another repository is mounted from
there, which the registry does only if it holds it.

One read, many writes: a rule with a list of destinations starts an image's copies to all
of them together and reads each blob they lack from the source once, streaming it to
every destination at the pace of the slowest; a destination that fails fails only its own
images.

Referrers, for full-fidelity mirrors: --referrers all (the default; or a rule's
`referrers:` key in ferry's config, which wins) copies every image's signatures, SBOMs and
attestations after it, byte for byte: those the source's referrers API lists (OCI 1.1), or
its tag-schema index (sha256-<hex>) where it has no API, and cosign's sha256-<hex>.sig,
.att and .sbom tags, with their own referrers in turn. At a destination without the API,
ferry keeps the sha256-<hex> index up to date and every entry already in it. --referrers
none copies images alone (sha256-* tags then copy as plain tags, as image-syncer does);
--referrers sig,att,sbom,TYPE/SUBTYPE picks cosign kinds and artifact types. What it costs
a sync with nothing new: one more request per tag at the source (the referrers API, or
the tag-schema index once the API answered 404), one HEAD per referrer at the destination
(two for a cosign tag), one tags/list per repository a rule names tags of, one probe of
each destination's API and, without it, one read of each subject's index. --dry-run's
per-registry forecast counts all of these, and the referrers' copies, as the real run
makes them: it reads what the real run reads and counts each tag-schema index it would
push as a PUT and a read back (exact when nothing fails and no one else writes the
destination meanwhile). Reading a referrer's manifest, a cosign tag or a sha256-<hex>
index is a manifest GET, counted against a pull budget like any other. An index that
a platform filter rewrites loses its own signatures (they sign the full index's digest):
the plan, the report and --dry-run say so per image; the platforms' images keep theirs.

As a service, --watch: the sync runs every --interval (default 5m) and/or on a cron
--schedule (UTC), one run at a time; the config files are reloaded when they change or on
SIGHUP (a config that does not load is reported and the old one keeps running); SIGTERM
lets the images in flight finish for --drain-timeout, starts nothing new and exits 0.
--listen serves /healthz, /readyz (503 after --unready-after failed runs in a row) and
Prometheus /metrics. --report-dir keeps each run's report. See deploy/deployment.yaml.

Credentials from docker's config (~/.docker/config.json, or --docker-config, with its
credsStore and credHelpers) are used for registries the auth file does not name.

Exit codes: 0 every image copied or already in sync, 1 some image failed, 2 bad usage
or configuration.

Examples:
  ferry sync --auth auth.json --images images.json
  ferry sync --images images.json --immutable '^v?[0-9]+[.][0-9]+[.][0-9]+$'   # releases never move
  ferry sync --config config.yaml --proc 10 --arch amd64,arm64
  ferry sync --images images.json --dry-run            # what would move, the requests per registry; nothing written
  ferry sync --images images.json --referrers none     # images without their signatures
  ferry sync --images images.json --progress json --report report.json
  ferry sync --config config.yaml --shard 1/4          # the second of four shares
  ferry sync --images images.json --state ferry-state.json   # killed? run it again
  JOB_COMPLETION_INDEX=1 ferry sync --config config.yaml --shards 4   # the same
  ferry sync --config config.yaml --watch --interval 15m --listen 0.0.0.0:9090";

/// Options of `ferry sync`.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct SyncArgs {
    /// image-syncer's auth file: registry or registry/namespace -> username, password,
    /// insecure
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub auth: Option<PathBuf>,

    /// image-syncer's images file: source -> destination(s)
    #[arg(long, value_name = "FILE", required_unless_present = "config", conflicts_with = "config")]
    pub images: Option<PathBuf>,

    /// image-syncer's combined file (auth and images), or ferry's superset (rules, proc,
    /// retries, os, arch)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Images copied at once [default: 5, or the config file's `proc`]
    #[arg(long, value_name = "N", value_parser = common::at_least_one)]
    pub proc: Option<usize>,

    /// Retries of a failed request or transfer, and rounds that run transiently failed
    /// images and listings again [default: 2, or the config file's `retries`]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,

    /// Only copy these operating systems from multi-platform images (comma-separated,
    /// repeatable), e.g. linux
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub os: Vec<String>,

    /// Only copy these architectures from multi-platform images (comma-separated,
    /// repeatable), e.g. amd64,arm64
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub arch: Vec<String>,

    /// Push manifests even when the destination already has the same digest
    #[arg(long)]
    pub force: bool,

    /// Which referrers (signatures, SBOMs, attestations) travel with the images: all,
    /// none, or cosign kinds and artifact types, e.g. sig,application/spdx+json (see
    /// below for what each costs) [default: all, or a rule's `referrers`]
    #[arg(long, value_name = "all|none|TYPE,...")]
    pub referrers: Option<ReferrerFilter>,

    /// Look at both sides and print what would be copied or skipped, with bytes, and per
    /// registry the requests the real run will make and those counting against a pull
    /// limit; write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// docker's config file to take credentials from [default: $DOCKER_CONFIG/config.json
    /// or ~/.docker/config.json, if present]
    #[arg(long, value_name = "PATH")]
    pub docker_config: Option<PathBuf>,

    /// Do not read docker's config: only the auth file's credentials are used
    #[arg(long, conflicts_with = "docker_config")]
    pub no_docker_config: bool,

    /// A registry's certificate folder, REGISTRY=DIR (repeatable): DIR holds its ca.crt
    /// (and client.cert/client.key for mutual TLS) and replaces its certs.d folder; the
    /// config file's `tls` key does the same
    #[arg(long = "cert-dir", value_name = "REGISTRY=DIR", value_parser = registry_dir)]
    pub cert_dirs: Vec<(String, PathBuf)>,

    /// Tags that never move once pushed (a regular expression): one the destination
    /// already lists is not checked again. For rules that list tags, and without their
    /// own `immutable`
    #[arg(long, value_name = "PATTERN")]
    pub immutable: Option<String>,

    /// Blob transfers at once, across all images
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = common::at_least_one)]
    pub max_transfers: usize,

    /// Keep --proc images and --max-transfers transfers in flight even when a registry
    /// pushes back. By default each registry's manifest reads, blob reads, uploads, mounts
    /// and listings run in their own window: a 429 or 503 halves it (and a Retry-After
    /// holds the whole class until then), a second of answers grows it by one, up to the
    /// larger of --proc and --max-transfers. Pushback is retried either way
    #[arg(long)]
    pub fixed_concurrency: bool,

    /// Copy only this shard's share of the source repositories: INDEX/COUNT, from 0
    /// (e.g. 0/4 to 3/4). Wins over --shards and JOB_COMPLETION_INDEX
    #[arg(long, value_name = "INDEX/COUNT", conflicts_with = "shards")]
    pub shard: Option<String>,

    /// Split the job into N shards and copy the one JOB_COMPLETION_INDEX names (set by a
    /// Kubernetes Indexed Job) [env: FERRY_SHARDS]
    #[arg(long, value_name = "N")]
    pub shards: Option<String>,

    /// Keep upload sessions and blobs seen at the destinations in FILE, so that a run
    /// killed mid-blob is resumed by the next run with the same FILE [default: the config
    /// file's `state`]
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    #[command(flatten)]
    pub output: ProgressArgs,

    #[command(flatten)]
    pub service: WatchArgs,
}

impl SyncArgs {
    /// The arguments of `ferry sync --images <images>` with everything else at its default.
    pub(crate) fn for_images(images: &Path) -> SyncArgs {
        SyncArgs {
            auth: None,
            images: Some(images.to_owned()),
            config: None,
            proc: None,
            retries: None,
            os: Vec::new(),
            arch: Vec::new(),
            force: false,
            referrers: None,
            dry_run: false,
            docker_config: None,
            no_docker_config: false,
            cert_dirs: Vec::new(),
            max_transfers: 8,
            fixed_concurrency: false,
            immutable: None,
            shard: None,
            shards: None,
            state: None,
            output: ProgressArgs { progress: crate::progress::Mode::Auto, report: None },
            service: WatchArgs::default(),
        }
    }
}

pub(crate) fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    if args.service.watch {
        return crate::watch::run(args);
    }
    let runtime = common::runtime()?;
    let report = runtime.block_on(sync(&args))?;
    Ok(common::job_exit(&report))
}

/// Reads the files, runs the job and prints its summary; the report says how it went.
pub(crate) async fn sync(args: &SyncArgs) -> anyhow::Result<Report> {
    let prepared = prepare(load(args)?, args)?;
    execute_until(prepared, &args.output, std::future::pending(), |_| {}).await
}

/// A job ready to run: the machine's job and options, and the state file it keeps.
pub(crate) struct Prepared {
    pub job: Job,
    pub options: SyncOptions,
    pub state: Option<Arc<StateFile>>,
}

/// The job, its options and its state file from a loaded configuration and the flags.
/// Errors are bad input (exit code 2).
pub(crate) fn prepare(config: JobConfig, args: &SyncArgs) -> anyhow::Result<Prepared> {
    let platforms = PlatformFilter::new(
        if args.os.is_empty() { &config.os } else { &args.os },
        if args.arch.is_empty() { &config.arch } else { &args.arch },
        &[],
    )
    .map_err(|e| bad_input(format!("--os/--arch: {e}")))?;
    // One number, as image-syncer's --retries: retries of each request, and rounds.
    let retries = args.retries.or(config.retries).unwrap_or(2);
    let mut options = SyncOptions {
        proc: args.proc.or(config.proc).unwrap_or(5),
        max_transfers: args.max_transfers,
        retry: RetryPolicy { retries, ..RetryPolicy::default() },
        force: args.force,
        dry_run: args.dry_run,
        seed: common::jitter_seed(),
        platforms,
        rounds: retries,
        shard: shard(args.shard.as_deref(), args.shards.as_deref(), &common::env)?,
        adaptive: !args.fixed_concurrency,
        referrers: args.referrers.clone().unwrap_or_default(),
        resume: Default::default(),
    };
    let state = match state_path(&config, args) {
        Some(path) if !args.dry_run => {
            let (file, state) = StateFile::open(&path, &config.rules)?;
            options.resume = state;
            Some(Arc::new(file))
        }
        _ => None,
    };
    common::set_tls(tls(&config, args));
    let mut config = config;
    if let Some(pattern) = &args.immutable {
        let pattern =
            TagPattern::new(pattern).map_err(|e| bad_input(format!("--immutable {pattern:?}: {e}")))?;
        let lists_tags = |r: &Rule| matches!(r.source.selector, TagSelector::All | TagSelector::Pattern(_));
        for rule in config.rules.iter_mut().filter(|r| r.immutable.is_none() && lists_tags(r)) {
            rule.immutable = Some(pattern.clone());
        }
    }
    let mut job = Job::from_config(&config).map_err(bad_input)?;
    job.credentials = credentials(&config, args)?;
    Ok(Prepared { job, options, state })
}

/// `--state`, else the config's `state` (relative to the config file's folder).
fn state_path(config: &JobConfig, args: &SyncArgs) -> Option<PathBuf> {
    let base = args.config.as_deref().and_then(Path::parent).unwrap_or(Path::new(""));
    args.state.clone().or_else(|| config.state.as_ref().map(|p| base.join(p)))
}

/// This process's shard: `--shard`, else a count from `--shards` (or `FERRY_SHARDS`) with
/// the index from `JOB_COMPLETION_INDEX`; `None` runs the whole job. Errors name the flag
/// or the variable and the fix.
fn shard(
    flag: Option<&str>,
    shards: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<Shard>> {
    if let Some(text) = flag {
        let shard = text.parse().map_err(|e| bad_input(format!("--shard {text:?}: {e}")))?;
        return Ok(Some(shard));
    }
    let count = match shards {
        Some(count) => Some(("--shards", count.to_owned())),
        None => env(SHARDS_VAR).map(|count| (SHARDS_VAR, count)),
    };
    let index = env(INDEX_VAR);
    match (count, index) {
        (None, None) => Ok(None),
        (None, Some(index)) => Err(bad_input(format!(
            "{INDEX_VAR} is {index:?} but no shard count is given: add --shards N (or set \
             {SHARDS_VAR}=N) with N the Job's completions, or give --shard INDEX/COUNT"
        ))),
        (Some((source, count)), None) => {
            Shard::parse_count(&count).map_err(|e| bad_input(format!("{source} {count:?}: {e}")))?;
            Err(bad_input(format!(
                "{source} {count} needs {INDEX_VAR} (a Kubernetes Indexed Job sets it) to pick this \
                 process's shard: outside Kubernetes give --shard INDEX/{count} instead"
            )))
        }
        (Some((source, count)), Some(index)) => {
            let count_n =
                Shard::parse_count(&count).map_err(|e| bad_input(format!("{source} {count:?}: {e}")))?;
            let shard = Shard::from_parts(&index, &count).map_err(|e| {
                bad_input(format!(
                    "{INDEX_VAR} {index:?} with {source} {count_n}: {e}: the Job's completions must \
                     equal the shard count"
                ))
            })?;
            Ok(Some(shard))
        }
    }
}

/// Kubernetes' index of an Indexed Job's pod, from 0.
const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";
/// The shard count when `--shards` is absent.
const SHARDS_VAR: &str = "FERRY_SHARDS";

/// The job's configuration from `--config`, or from `--auth` and `--images`.
pub(crate) fn load(args: &SyncArgs) -> anyhow::Result<JobConfig> {
    let env = |name: &str| common::env(name);
    if let Some(path) = &args.config {
        let text = common::read_text(path, "config file")?;
        return parse_config_file(&path.display().to_string(), &text, &env).map_err(bad_input);
    }
    let mut config = JobConfig::default();
    if let Some(path) = &args.auth {
        let text = common::read_text(path, "auth file")?;
        config.auth = parse_auth_file(&path.display().to_string(), &text, &env).map_err(bad_input)?;
    }
    let path = args.images.as_ref().ok_or_else(|| bad_input("give --images FILE or --config FILE"))?;
    let text = common::read_text(path, "images file")?;
    config.rules = parse_images_file(&path.display().to_string(), &text, &env).map_err(bad_input)?;
    Ok(config)
}

/// `REGISTRY=DIR` of `--cert-dir`.
fn registry_dir(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((registry, dir)) if !dir.is_empty() => {
            ferry_core::reference::validate_registry(registry).map_err(|e| format!("{registry:?}: {e}"))?;
            Ok((ferry_core::reference::normalize_registry(registry), PathBuf::from(dir)))
        }
        _ => Err("expected REGISTRY=DIR, e.g. registry.example.com:5443=/etc/ferry/certs".to_owned()),
    }
}

/// The config's `tls` entries (paths relative to the config file's folder), then the
/// `--cert-dir` flags.
fn tls(config: &JobConfig, args: &SyncArgs) -> TlsOptions {
    let base = args.config.as_deref().and_then(Path::parent).unwrap_or(Path::new(""));
    let path = |p: &Option<String>| p.as_deref().map(|p| base.join(p));
    let mut tls = TlsOptions::default();
    for (registry, entry) in &config.tls {
        let settings = RegistryTls {
            ca: path(&entry.ca).into_iter().collect(),
            client: path(&entry.cert).zip(path(&entry.key)),
            cert_dir: path(&entry.cert_dir),
        };
        tls = tls.with_registry(api_host(registry), settings);
    }
    for (registry, dir) in &args.cert_dirs {
        let settings = RegistryTls { cert_dir: Some(dir.clone()), ..RegistryTls::default() };
        tls = tls.with_registry(api_host(registry), settings);
    }
    tls
}

/// The auth file's logins; docker's only for the registries the auth file does not name.
fn credentials(config: &JobConfig, args: &SyncArgs) -> anyhow::Result<CredentialStore> {
    let store = config.auth.credentials().map_err(bad_input)?;
    if args.no_docker_config {
        return Ok(store);
    }
    let docker = common::docker_credentials(args.docker_config.as_deref())?;
    Ok(store.with_fallback(CredentialStore::new(docker).map_err(bad_input)?))
}

/// Runs a copy job to the end, shows its progress, keeps the state file if given, writes
/// the report if asked, and prints the summary.
pub(crate) async fn execute(
    job: Job,
    options: SyncOptions,
    output: &ProgressArgs,
    state: Option<Arc<StateFile>>,
) -> anyhow::Result<Report> {
    execute_until(Prepared { job, options, state }, output, std::future::pending(), |_| {}).await
}

/// As [`execute`], handing each event to `observe` too; once `stop` resolves, no new
/// image starts and the job ends when those in flight have (`--watch`'s shutdown).
pub(crate) async fn execute_until(
    prepared: Prepared,
    output: &ProgressArgs,
    stop: impl std::future::Future<Output = ()>,
    mut observe: impl FnMut(&Event),
) -> anyhow::Result<Report> {
    let Prepared { job, options, state } = prepared;
    let mut transport = common::transport(&job.endpoints.insecure)?;
    if let Some(state) = &state {
        transport = transport.with_journal(state.clone());
    }
    let clock = TokioClock::new();
    let (now, wall) = (clock.now(), clock.wall_now());
    let dry_run = options.dry_run;
    let mut machine = SyncMachine::new(job, options, now, wall);
    let mut progress = Progress::new(output.progress, dry_run);
    let on_event = |event: Event| {
        observe(&event);
        if let Some(state) = &state {
            state.on_event(&event);
        }
        progress.on_event(&event);
    };
    let result = run_sync_until(&mut machine, &transport, &clock, on_event, stop).await;
    progress.finish();
    result.context("driving the copy job")?;
    if let Some(state) = &state {
        state.finish()?;
    }
    let report = machine.report();
    if let Some(path) = &output.report {
        write_report(path, &report)?;
    }
    let summary = summary_text(&report);
    if progress.is_json() {
        eprint!("{summary}");
    } else {
        print!("{summary}");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_comes_from_the_flags_or_the_environment() {
        struct Case {
            shard: Option<&'static str>,
            shards: Option<&'static str>,
            env: &'static [(&'static str, &'static str)],
            /// `index/count`, or the start of the error.
            want: Result<Option<&'static str>, &'static str>,
        }
        let cases = [
            Case { shard: None, shards: None, env: &[], want: Ok(None) },
            Case { shard: Some("1/4"), shards: None, env: &[], want: Ok(Some("1/4")) },
            Case { shard: Some("1/4"), shards: None, env: &[(INDEX_VAR, "3")], want: Ok(Some("1/4")) },
            Case { shard: None, shards: Some("4"), env: &[(INDEX_VAR, "3")], want: Ok(Some("3/4")) },
            Case {
                shard: None,
                shards: None,
                env: &[(INDEX_VAR, "2"), (SHARDS_VAR, "3")],
                want: Ok(Some("2/3")),
            },
            Case {
                shard: None,
                shards: Some("4"),
                env: &[(INDEX_VAR, "0"), (SHARDS_VAR, "9")],
                want: Ok(Some("0/4")),
            },
            Case {
                shard: Some("3/3"),
                shards: None,
                env: &[],
                want: Err("--shard \"3/3\": index 3 is out of range"),
            },
            Case { shard: Some("0/0"), shards: None, env: &[], want: Err("--shard \"0/0\": the count is 0") },
            Case {
                shard: Some("x/2"),
                shards: None,
                env: &[],
                want: Err("--shard \"x/2\": the index \"x\""),
            },
            Case { shard: Some("2"), shards: None, env: &[], want: Err("--shard \"2\": \"2\" has no count") },
            Case {
                shard: None,
                shards: None,
                env: &[(INDEX_VAR, "1")],
                want: Err("JOB_COMPLETION_INDEX is \"1\" but no shard count"),
            },
            Case {
                shard: None,
                shards: Some("4"),
                env: &[],
                want: Err("--shards 4 needs JOB_COMPLETION_INDEX"),
            },
            Case {
                shard: None,
                shards: Some("0"),
                env: &[(INDEX_VAR, "0")],
                want: Err("--shards \"0\": the count is 0"),
            },
            Case {
                shard: None,
                shards: None,
                env: &[(INDEX_VAR, "0"), (SHARDS_VAR, "two")],
                want: Err("FERRY_SHARDS \"two\": the count \"two\""),
            },
            Case {
                shard: None,
                shards: Some("3"),
                env: &[(INDEX_VAR, "3")],
                want: Err("JOB_COMPLETION_INDEX \"3\" with --shards 3: index 3 is out of range"),
            },
        ];
        for case in cases {
            let env = |name: &str| case.env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
            let got = shard(case.shard, case.shards, &env);
            match (got, case.want) {
                (Ok(got), Ok(want)) => assert_eq!(got.map(|s| s.to_string()).as_deref(), want),
                (Err(e), Err(want)) => {
                    let message = e.to_string();
                    assert!(message.starts_with(want), "{message:?} should start with {want:?}");
                    assert_eq!(common::exit_code(&e), 2, "{message}");
                }
                (got, want) => {
                    panic!("{:?} {:?} {:?}: got {got:?}, want {want:?}", case.shard, case.shards, case.env)
                }
            }
        }
    }
}
