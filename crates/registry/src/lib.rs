//! ferry-registry: an OCI Distribution v1.1 registry.
//!
//! After distribution's own structure: an HTTP service over manifests, blobs, tags, the
//! catalog and referrers ([`routes`]), storage drivers chosen by name behind one trait
//! ([`driver`]), and an app wrapped in middleware: access log, panic recovery, health
//! checks, CORS and auth ([`middleware`]).
//!
//! The modules form layers; each imports only from the layers below it:
//!
//! ```text
//! lib (Registry, serve)      builds the state, binds
//! server                     connections: the cap, timeouts, hyper
//! middleware                 the app: access log, CORS, recovery, auth, /token, /healthz
//! relay                      the job relay at /jobs: the core's jobs over the native transport
//! cache                      the pull-through cache: upstreams by prefix, fetched once, verified
//! routes                     the /v2/ API handlers and the path parser (Route)
//! state                      AppState: what every handler shares
//! notify                     events to notification endpoints, bounded queues
//! access                     Action, Identity, Authenticator, policy, tokens
//! gc                         `ferry serve gc`: lists and deletes what ferry-core's marking decides
//! store                      the registry's objects over a driver: blobs, manifests, tags,
//!                            referrers, upload sessions (layout, uploads)
//! error, driver, config,     the answer type, the storage drivers (paths and bytes only),
//! ui, uri, random            the configuration, the web page's files, small utilities
//! ```
//!
//! Start one in-process and get its URL back:
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_registry::ServeError> {
//! let mut config = ferry_registry::Config::default();
//! config.addr = "127.0.0.1:0".into();          // any free port
//! config.storage.driver = "memory".into();
//! let running = ferry_registry::serve(config).await?;
//! println!("registry at {}", running.url());   // http://127.0.0.1:PORT
//! running.shutdown().await?;                   // graceful: finishes in-flight requests
//! # Ok(()) }
//! ```
//!
//! Or build the [`axum::Router`] yourself with [`Registry::builder`] and serve it where
//! you like.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod access;
pub mod cache;
pub mod config;
pub mod driver;
pub mod error;
pub mod gc;
pub mod middleware;
pub mod notify;
pub mod random;
pub mod relay;
pub mod routes;
mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod ui;
pub mod uri;

pub use config::Config;
pub use driver::{StorageDriver, StorageError};
pub use error::{ErrorCode, RegistryError};
pub use state::AppState;

use access::Authenticator;
use store::uploads::Uploads;
use store::Store;

/// Why a registry could not be built or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("auth: {0}")]
    Auth(#[from] access::AuthError),
    #[error(transparent)]
    Ui(#[from] ui::UiError),
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Proxy(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("server failed: {0}")]
    Server(std::io::Error),
}

/// A built registry: its shared state, ready to be turned into a router.
#[derive(Clone)]
pub struct Registry {
    state: Arc<AppState>,
}

/// Builds a [`Registry`] from a [`Config`], optionally with a driver of your own.
#[derive(Default)]
pub struct RegistryBuilder {
    config: Config,
    driver: Option<Arc<dyn StorageDriver>>,
}

impl RegistryBuilder {
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Uses this driver instead of the one the configuration names.
    pub fn driver(mut self, driver: Arc<dyn StorageDriver>) -> Self {
        self.driver = Some(driver);
        self
    }

    pub fn build(self) -> Result<Registry, ServeError> {
        let config = self.config;
        config.validate()?;
        let driver = match self.driver {
            Some(driver) => driver,
            None => driver::open(&config.storage)?,
        };
        let removed = driver.remove_temp_files()?;
        if removed > 0 {
            tracing::warn!("removed {removed} temporary files left by an earlier crash");
        }
        let store = Store::new(driver);
        let auth = if config.auth.enabled() { Some(Authenticator::from_config(&config.auth)?) } else { None };
        let uploads = Uploads::new(store.clone(), config.limits.max_blob_bytes);
        let ui = config.ui.as_deref().map(ui::UiDir::open).transpose()?;
        let relay =
            match config.relay.enabled {
                true => Some(relay::Relay::new(config.relay.clone()).map_err(|e| {
                    config::ConfigError::Invalid { key: "relay.allow", message: e.to_string() }
                })?),
                false => None,
            };
        let notifier = match config.notifications.endpoints.iter().any(|e| !e.disabled) {
            true => Some(notify::Notifier::new(&config.notifications)?),
            false => None,
        };
        let cache = cache::Cache::new(&config.proxy).map_err(ServeError::Proxy)?;
        let state = AppState {
            config,
            store,
            uploads,
            auth,
            local_addr: OnceLock::new(),
            ui,
            notifier,
            relay,
            cache,
            instance_id: random::random_hex(16),
        };
        Ok(Registry { state: Arc::new(state) })
    }
}

impl Registry {
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The whole app: routes wrapped in the middleware stack.
    pub fn router(&self) -> axum::Router {
        middleware::app(self.state.clone())
    }

    /// Binds the configured address and serves until [`RunningRegistry::shutdown`].
    pub async fn start(self) -> Result<RunningRegistry, ServeError> {
        let addr = self.state.config.addr.clone();
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Bind { addr: addr.clone(), source })?;
        let local = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
        let _ = self.state.local_addr.set(local);
        if let Some(notifier) = &self.state.notifier {
            notifier.start();
        }
        let app = self.router();
        let http = self.state.config.http.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let tls = match &self.state.config.tls {
            files if files.enabled() => Some(Arc::new(tls::ServerTls::load(files)?)),
            _ => None,
        };
        let gc = &self.state.config.storage.gc;
        let collector = gc.enabled.then(|| {
            let options = gc::GcOptions::from_config(&self.state.config.storage);
            gc::online::spawn(self.state.store.clone(), options, Duration::from_secs(gc.interval_secs))
        });
        let in_flight = Arc::new(AtomicUsize::new(0));
        let task =
            tokio::spawn(server::serve(listener, app, http, in_flight.clone(), tls.clone(), async move {
                let _ = rx.await;
            }));
        let url = format!("{}://{local}", if tls.is_some() { "https" } else { "http" });
        tracing::info!(url = %url, driver = self.state.store.driver().name(), "registry listening");
        Ok(RunningRegistry { addr: local, url, shutdown: Some(tx), task, in_flight, tls, collector })
    }
}

/// Builds and starts a registry from a configuration.
pub async fn serve(config: Config) -> Result<RunningRegistry, ServeError> {
    Registry::builder().config(config).build()?.start().await
}

/// A registry serving in the background.
pub struct RunningRegistry {
    addr: SocketAddr,
    url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    in_flight: Arc<AtomicUsize>,
    tls: Option<Arc<tls::ServerTls>>,
    /// The online garbage collector (`storage.gc.enabled`).
    collector: Option<JoinHandle<()>>,
}

impl RunningRegistry {
    /// Requests being answered right now, over all connections (an answer counts until
    /// its body has gone out).
    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Reads the TLS certificate, key and client CAs again (`SIGHUP` in `ferry serve`).
    /// New connections use them; open ones keep theirs. `Ok(false)` when TLS is off.
    pub fn reload_tls(&self) -> Result<bool, ServeError> {
        match &self.tls {
            Some(tls) => tls.reload().map(|()| true).map_err(ServeError::Tls),
            None => Ok(false),
        }
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS), no trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets in-flight requests finish, then returns.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        // A collection cut short deletes nothing more; the next start collects again.
        if let Some(collector) = self.collector.take() {
            collector.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }

    /// Waits until the server stops (after [`RunningRegistry::shutdown`] or a failure).
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        match (&mut self.task).await {
            Ok(result) => result.map_err(ServeError::Server),
            Err(join) => Err(ServeError::Server(std::io::Error::other(join))),
        }
    }
}
