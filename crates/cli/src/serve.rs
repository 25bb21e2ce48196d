//! `ferry serve`: run ferry's OCI registry until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ferry_registry::config::LogFormat;
use ferry_registry::Config;

const AFTER_HELP: &str = "\
Flags override the config file; the config file overrides the defaults. With no
arguments, ferry serves ./ferry-data on http://127.0.0.1:5000 with no auth.

Examples:
  ferry serve                                      # laptop registry in ./ferry-data
  ferry serve --storage memory --addr 127.0.0.1:0  # throwaway, on a free port
  ferry serve --htpasswd ./htpasswd --token        # Basic auth + Docker token flow
  ferry serve --idle-timeout 30 --max-connections 256  # tighter connection limits
  ferry serve --cors-origin http://localhost:8080 --cors-allow-credentials
  ferry serve --ui web                             # ferry's web page at http://127.0.0.1:5000/ui/
  ferry serve --tls-cert reg.crt --tls-key reg.key # HTTPS (HTTP/2 by ALPN); SIGHUP reloads them
  ferry serve --tls-cert reg.crt --tls-key reg.key --tls-client-ca clients.crt  # mutual TLS
  ferry serve --metrics-addr 127.0.0.1:5001        # Prometheus metrics at :5001/metrics
  ferry serve --htpasswd ./htpasswd --relay --relay-allow ghcr.io --relay-allow '*.corp.example' \
              --cors-origin https://ferry.example   # job relay at /jobs for the web page
  ferry serve --config ferry.yaml --print-config   # show the effective config
  ferry serve --config /etc/docker/registry/config.yml  # distribution's config file, as it is
  ferry serve gc --root ./ferry-data --dry-run      # what garbage collection would free";

/// Options of `ferry serve`. Every option is also a key of the YAML config file.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct ServeArgs {
    /// YAML config file (keys: addr, public_url, storage, read_only, delete, cors, auth,
    /// limits, http, log, ui, tls, notifications, relay, metrics_addr), or distribution's
    /// config.yml (`version: 0.1`) as it is; flags given here override its values
    #[arg(short, long, value_name = "FILE", env = "FERRY_CONFIG")]
    config: Option<PathBuf>,

    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:5000]
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,

    /// URL clients reach the registry at, when not http://<addr> (behind a proxy); used
    /// for the token realm
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,

    /// Storage driver: filesystem, memory (lost on exit, grows with the data) or s3 (its
    /// bucket from the config file's `storage.s3`) [default: filesystem]
    #[arg(long, value_name = "DRIVER")]
    storage: Option<String>,

    /// Root directory of the filesystem driver [default: ./ferry-data]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Refuse every push and delete with 405 UNSUPPORTED [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    read_only: Option<bool>,

    /// Allow DELETE of manifests, tags and blobs [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    delete: Option<bool>,

    /// Browser origin allowed by CORS, exactly as sent (http://localhost:8080), or `*`;
    /// repeat for several
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,

    /// Let browsers send credentials; the origin is then echoed with Vary: Origin
    /// [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    cors_allow_credentials: Option<bool>,

    /// Seconds a browser may cache a preflight answer [default: 600]
    #[arg(long, value_name = "SECS")]
    cors_max_age: Option<u64>,

    /// htpasswd file with bcrypt entries (htpasswd -B); turns auth on
    #[arg(long, value_name = "FILE")]
    htpasswd: Option<PathBuf>,

    /// Realm of the Basic auth challenge [default: ferry]
    #[arg(long, value_name = "REALM")]
    realm: Option<String>,

    /// Let anyone pull without credentials; pushes, deletes and the catalog still need
    /// them [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    anonymous_pull: Option<bool>,

    /// Serve the Docker token flow: challenges say Bearer, GET /token trades Basic
    /// credentials for a signed, scoped, expiring token (needs --htpasswd) [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    token: Option<bool>,

    /// Service name in token challenges and tokens [default: ferry]
    #[arg(long, value_name = "NAME")]
    token_service: Option<String>,

    /// HMAC-SHA256 key that signs tokens; generated at start when unset, so tokens then
    /// die with the process
    #[arg(long, value_name = "KEY", env = "FERRY_TOKEN_KEY", hide_env_values = true)]
    token_key: Option<String>,

    /// Token lifetime in seconds [default: 300]
    #[arg(long, value_name = "SECS")]
    token_ttl: Option<u64>,

    /// In token mode, also accept Basic credentials on /v2/ (by default only the token
    /// endpoint takes them) [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    token_allow_basic: Option<bool>,

    /// Seconds from the first byte of a request head to its end; 0 = no limit [default: 30]
    #[arg(long, value_name = "SECS")]
    header_read_timeout: Option<f64>,

    /// Seconds a connection may stay open with no request in flight (new or keep-alive);
    /// 0 = no limit [default: 120]
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<f64>,

    /// Seconds a request body may send nothing, or an answer wait for the client to read
    /// it; a slow but steady transfer is never cut; 0 = no limit [default: 60]
    #[arg(long, value_name = "SECS")]
    body_timeout: Option<f64>,

    /// Connections served at once; more wait to be accepted [default: 1024]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,

    /// Threads for file I/O (tokio's blocking pool) [default: 32]
    #[arg(long, value_name = "N")]
    max_blocking_threads: Option<usize>,

    /// Largest manifest accepted, in bytes; larger gets 413 (at most 4 MiB) [default: 4194304]
    #[arg(long, value_name = "BYTES")]
    max_manifest_bytes: Option<u64>,

    /// Largest blob accepted, in bytes; 0 means no limit [default: 0]
    #[arg(long, value_name = "BYTES")]
    max_blob_bytes: Option<u64>,

    /// Serve ferry's web page from this directory (the repository's web/, with web/pkg/
    /// built by scripts/build-wasm.sh) at /ui/; / then redirects there
    #[arg(long, value_name = "DIR")]
    ui: Option<PathBuf>,

    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key. SIGHUP
    /// reads the certificate, key and client CAs again without dropping connections
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// Require client certificates signed by one of these PEM CA certificates (mutual TLS)
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,

    /// Serve the job relay: POST /jobs (diff or copy, answered as NDJSON), GET
    /// /jobs/<id>/events?offset=N, DELETE /jobs/<id>; needs --htpasswd and --relay-allow
    /// [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    relay: Option<bool>,

    /// A registry the relay may reach: host, host:port or *.domain; repeat for several.
    /// Loopback, private and link-local addresses only when listed exactly
    #[arg(long = "relay-allow", value_name = "HOST")]
    relay_allow: Vec<String>,

    /// Relay jobs running at once; more get 429 [default: 4]
    #[arg(long, value_name = "N")]
    relay_max_jobs: Option<usize>,

    /// Seconds a relay job may run before it is stopped [default: 3600]
    #[arg(long, value_name = "SECS")]
    relay_max_job_secs: Option<u64>,

    /// Log level [default: info]
    #[arg(long, value_name = "LEVEL", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: Option<String>,

    /// Log format: text or json [default: text]
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,

    /// Serve Prometheus metrics at /metrics on this separate address (as distribution's
    /// debug server), e.g. 0.0.0.0:5001; port 0 picks a free one
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,

    /// Print the effective configuration as YAML and exit
    #[arg(long)]
    print_config: bool,

    #[command(subcommand)]
    command: Option<ServeCommand>,
}

/// What `ferry serve` runs instead of the registry.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ServeCommand {
    /// Garbage collection: delete unreferenced blobs (and untagged manifests with
    /// --delete-untagged) and expired upload sessions from the registry's storage.
    Gc(crate::serve_gc::GcArgs),
}

impl ServeArgs {
    /// The config file (or the defaults) with the flags applied on top.
    /// Also the lines about keys of a distribution config file that ferry ignores.
    fn config(self) -> anyhow::Result<(Config, bool, Vec<String>)> {
        let (mut c, warnings) = match &self.config {
            Some(path) => {
                let loaded = Config::load(path)?;
                (loaded.config, loaded.warnings)
            }
            None => (Config::default(), Vec::new()),
        };
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *slot = value;
            }
        }
        set(&mut c.addr, self.addr);
        if self.public_url.is_some() {
            c.public_url = self.public_url;
        }
        set(&mut c.storage.driver, self.storage);
        set(&mut c.storage.root, self.root);
        set(&mut c.read_only, self.read_only);
        set(&mut c.delete, self.delete);
        if !self.cors_origins.is_empty() {
            c.cors.origins = self.cors_origins;
        }
        set(&mut c.cors.allow_credentials, self.cors_allow_credentials);
        if self.cors_max_age.is_some() {
            c.cors.max_age_secs = self.cors_max_age;
        }
        if self.htpasswd.is_some() {
            c.auth.htpasswd = self.htpasswd;
        }
        set(&mut c.auth.realm, self.realm);
        set(&mut c.auth.anonymous_pull, self.anonymous_pull);
        set(&mut c.auth.token.enabled, self.token);
        set(&mut c.auth.token.service, self.token_service);
        if self.token_key.is_some() {
            c.auth.token.key = self.token_key;
        }
        set(&mut c.auth.token.ttl_secs, self.token_ttl);
        set(&mut c.auth.token.allow_basic, self.token_allow_basic);
        set(&mut c.http.header_read_timeout_secs, self.header_read_timeout);
        set(&mut c.http.idle_timeout_secs, self.idle_timeout);
        set(&mut c.http.body_timeout_secs, self.body_timeout);
        set(&mut c.http.max_connections, self.max_connections);
        set(&mut c.http.max_blocking_threads, self.max_blocking_threads);
        set(&mut c.limits.max_manifest_bytes, self.max_manifest_bytes);
        set(&mut c.limits.max_blob_bytes, self.max_blob_bytes);
        if self.ui.is_some() {
            c.ui = self.ui;
        }
        if self.tls_cert.is_some() {
            c.tls.cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            c.tls.key = self.tls_key;
        }
        if self.tls_client_ca.is_some() {
            c.tls.client_ca = self.tls_client_ca;
        }
        set(&mut c.relay.enabled, self.relay);
        if !self.relay_allow.is_empty() {
            c.relay.allow = self.relay_allow;
        }
        set(&mut c.relay.max_jobs, self.relay_max_jobs);
        set(&mut c.relay.max_job_secs, self.relay_max_job_secs);
        if self.metrics_addr.is_some() {
            c.metrics_addr = self.metrics_addr;
        }
        set(&mut c.log.level, self.log_level);
        if let Some(format) = self.log_format {
            c.log.format = if format == "json" { LogFormat::Json } else { LogFormat::Text };
        }
        c.validate().context("invalid configuration")?;
        Ok((c, self.print_config, warnings))
    }
}

fn init_logging(config: &Config) {
    let level = config.log.level.parse().unwrap_or(tracing::Level::INFO);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_ansi(ansi);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

pub(crate) fn run(mut args: ServeArgs) -> anyhow::Result<()> {
    if let Some(ServeCommand::Gc(gc)) = args.command.take() {
        return crate::serve_gc::run(gc);
    }
    let (config, print_config, warnings) = args.config()?;
    if print_config {
        for warning in &warnings {
            println!("# {warning}");
        }
        let mut shown = config.clone();
        if shown.auth.token.key.is_some() {
            shown.auth.token.key = Some("<hidden>".into());
        }
        // Notification endpoints' headers often carry their credentials.
        for endpoint in &mut shown.notifications.endpoints {
            for values in endpoint.headers.values_mut() {
                values.iter_mut().for_each(|v| *v = "<hidden>".into());
            }
        }
        for upstream in &mut shown.proxy.upstreams {
            if upstream.password.is_some() {
                upstream.password = Some("<hidden>".into());
            }
        }
        print!("{}", config_yaml(&shown)?);
        return Ok(());
    }
    init_logging(&config);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    // Every file operation of the filesystem driver runs on tokio's blocking pool; its
    // default of 512 threads let 200 concurrent pushes grow the process to 500 threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.http.max_blocking_threads)
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        if let Some(addr) = config.metrics_addr.as_deref() {
            let addr = addr.parse().context("metrics_addr")?;
            let handle = crate::exporter::install(&[(
                "ferry_serve_request_duration_seconds",
                ferry_registry::middleware::metrics::LATENCY_SECONDS,
            )])?;
            ferry_registry::middleware::metrics::describe();
            let bound =
                crate::exporter::spawn(addr, crate::exporter::router(handle, axum::Router::new())).await?;
            tracing::info!("metrics at http://{bound}/metrics");
            eprintln!("ferry: metrics at http://{bound}/metrics");
        }
        let has_ui = config.ui.is_some();
        let has_relay = config.relay.enabled;
        let running = ferry_registry::serve(config).await.context("starting the registry")?;
        let (mut interrupt, mut terminate, mut hangup) = hooks();
        // The one line on stdout: scripts and tests read the URL from it.
        println!("ferry registry listening on {}", running.url());
        if has_ui {
            tracing::info!("web page at {}{}", running.url(), ferry_registry::ui::PREFIX);
        }
        if has_relay {
            tracing::info!("job relay at {}/jobs", running.url());
        }
        tokio::select! {
            () = shutdown_signal(&mut interrupt, &mut terminate) => {}
            () = release_memory_when_idle(&running) => {}
            () = reload_on_hangup(&running, &mut hangup) => {}
        }
        tracing::info!("shutting down: finishing requests in flight");
        running.shutdown().await.context("serving")?;
        Ok(())
    })
}

/// Hands freed memory back to the OS once a burst of requests is over.
///
/// Hundreds of concurrent transfers each hold a few 32 KiB buffers; glibc keeps the freed
/// ones in its per-thread arenas, so without this the process stays near its peak RSS
/// long after the load is gone (193 MiB idle after 200 concurrent pushes and pulls,
/// 12 MiB with it: bench/registry_load.py). Checked every 2 s; trims once per quiet
/// period. Never returns.
async fn release_memory_when_idle(running: &ferry_registry::RunningRegistry) {
    let mut busy = false;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        tick.tick().await;
        if running.requests_in_flight() > 0 {
            busy = true;
        } else if busy {
            busy = false;
            let _ = tokio::task::spawn_blocking(trim_free_memory).await;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_free_memory() {
    // SAFETY: malloc_trim takes no pointers and has no preconditions; it only returns
    // free pages of the allocator's arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_free_memory() {}

fn config_yaml(config: &Config) -> anyhow::Result<String> {
    config.to_yaml().context("printing the configuration")
}

/// A signal handler, registered before `ferry serve` announces its URL: a SIGTERM or
/// SIGHUP that arrived before its handler existed would end the process at once.
#[cfg(unix)]
type Hook = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hook = ();

/// SIGINT, SIGTERM and SIGHUP handlers.
fn hooks() -> (Hook, Hook, Hook) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::hangup()).ok(),
        )
    }
    #[cfg(not(unix))]
    ((), (), ())
}

/// Waits for the hooked signal; forever when it could not be registered.
async fn received(hook: &mut Hook) {
    #[cfg(unix)]
    if let Some(signal) = hook {
        signal.recv().await;
        return;
    }
    #[cfg(not(unix))]
    let _ = hook;
    std::future::pending::<()>().await
}

/// Reloads the TLS files on every SIGHUP; never returns.
async fn reload_on_hangup(running: &ferry_registry::RunningRegistry, hangup: &mut Hook) {
    loop {
        received(hangup).await;
        match running.reload_tls() {
            Ok(true) => tracing::info!("SIGHUP: reloaded the TLS certificate"),
            Ok(false) => tracing::info!("SIGHUP: no TLS to reload"),
            Err(error) => tracing::error!("SIGHUP: {error}; still serving the previous certificate"),
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal(interrupt: &mut Hook, terminate: &mut Hook) {
    #[cfg(not(unix))]
    {
        let _ = (interrupt, terminate);
        let _ = tokio::signal::ctrl_c().await;
    }
    #[cfg(unix)]
    tokio::select! {
        () = received(interrupt) => {},
        () = received(terminate) => {},
    }
}
