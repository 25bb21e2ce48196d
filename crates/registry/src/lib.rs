//! ferry-registry: an OCI Distribution v1.1 registry.
//!
//! After distribution's own structure: an HTTP service over manifests, blobs, tags, the
//! catalog and referrers ([`routes`]), storage drivers chosen by name behind one trait
//! ([`storage`]), and an app wrapped in middleware: access log, panic recovery, health
//! checks, CORS and auth ([`middleware`]).
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
use std::sync::{Arc, OnceLock};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod config;
pub mod error;
pub mod middleware;
#[expect(unreachable_pub, reason = "lint sweep pending, with the registry rework")]
pub mod routes;
pub mod storage;
pub mod store;
pub mod ui;

pub use config::Config;
pub use error::{ErrorCode, RegistryError};
pub use storage::{StorageDriver, StorageError};

use middleware::auth::Authenticator;
use store::uploads::Uploads;
use store::Store;

/// Everything a request handler needs.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub uploads: Uploads,
    /// `None` when auth is off.
    pub auth: Option<Authenticator>,
    /// The address actually bound, once known (for URLs built without a `Host`).
    pub local_addr: OnceLock<SocketAddr>,
    /// The web page's directory, served at `/ui/`; `None` when `ui` is unset.
    pub ui: Option<ui::UiDir>,
}

/// Why a registry could not be built or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("auth: {0}")]
    Auth(#[from] middleware::auth::AuthError),
    #[error(transparent)]
    Ui(#[from] ui::UiError),
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
            None => storage::open(&config.storage)?,
        };
        let store = Store::new(driver);
        let auth = if config.auth.enabled() { Some(Authenticator::from_config(&config.auth)?) } else { None };
        let uploads = Uploads::new(store.clone(), config.limits.max_blob_bytes);
        let ui = config.ui.as_deref().map(ui::UiDir::open).transpose()?;
        let state = AppState { config, store, uploads, auth, local_addr: OnceLock::new(), ui };
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
        let app = self.router();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        tracing::info!(url = %format!("http://{local}"), driver = self.state.store.driver().name(), "registry listening");
        Ok(RunningRegistry { addr: local, url: format!("http://{local}"), shutdown: Some(tx), task })
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
}

impl RunningRegistry {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets in-flight requests finish, then returns.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
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

/// `n` random bytes as lowercase hex, from the OS generator.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: ids stay unique per process thanks to the counter and clock.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seed = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i % 8) * 8)) as u8 ^ i as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
