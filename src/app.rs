//! Builds the whole application from configuration: one function serves both
//! `main` and the tests, which bind port 0 and talk to it over real sockets.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;

use crate::budget::Budget;
use crate::clock::{self, Clock};
use crate::config::{BackendKind, Config};
use crate::credentials::aws::{load_sdk_config, AwsProvider};
use crate::credentials::local::{LocalStore, StoreError};
use crate::credentials::{lifecycle, CredentialError, CredentialProvider};
use crate::error::ApiError;
use crate::readme::{self, ReadmeDoor};
use crate::sensedia::{self, auth::BasicAuth, SensediaDoor};
use crate::writes::Writes;
use crate::{admin, health, metrics};

mod layers;
mod serve;
use layers::layered;
use serve::Stage;
pub use serve::Timeouts;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("credential backend: {0}")]
    Backend(#[from] CredentialError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("AWS: {0}")]
    Aws(String),
    #[error("cannot load the TLS certificate or key: {0}")]
    Tls(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the configured credential backend. `aws` stands for the AWS
/// configuration (tests pass one pointing at their emulator); `None` loads
/// the standard chain. `clock` dates what the backend makes.
pub async fn provider(
    config: &Config,
    aws: Option<SdkConfig>,
    clock: Clock,
) -> Result<Arc<dyn CredentialProvider>, StartupError> {
    match config.backend {
        BackendKind::Local => Ok(Arc::new(LocalStore::open(&config.data_dir, clock)?)),
        BackendKind::Aws => {
            let sdk = match aws {
                Some(sdk) => sdk,
                None => load_sdk_config().await,
            };
            Ok(Arc::new(AwsProvider::start(
                &config.aws,
                config.readme.usage_plan_id.clone(),
                config.max_keys,
                &sdk,
                clock,
            )))
        }
    }
}

/// The HTTP application: both front doors, health, and the cross-cutting
/// layers of every listener ([`layered`]).
/// Both doors run their writes in `writes`.
pub fn router(
    config: &Config,
    provider: Arc<dyn CredentialProvider>,
    clock: Clock,
    writes: Writes,
) -> Router {
    let budget = Arc::new(Budget::new(
        config.max_keys,
        config.readme.provision_per_hour,
        Arc::clone(&clock),
    ));
    let readme = Arc::new(ReadmeDoor::new(
        &config.readme,
        Arc::clone(&provider),
        clock,
        writes.clone(),
        Arc::clone(&budget),
    ));
    let sensedia = Arc::new(SensediaDoor::new(
        Arc::clone(&provider),
        config.sensedia.credential_type,
        writes,
        budget,
    ));
    let auth = BasicAuth::new(&config.sensedia.users);

    // `/metrics` and `/admin` are never here: this listener faces the
    // portals.
    let router = Router::new()
        .merge(readme::router(readme))
        .merge(sensedia::router(sensedia, auth))
        .merge(health::router(provider))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    layered(router, config.body_limit)
}

/// The admin API (`crate::admin`) with the same layers as the portals'
/// router, for its own listener.
pub fn admin_router(
    config: &Config,
    provider: Arc<dyn CredentialProvider>,
    clock: Clock,
    writes: Writes,
) -> Router {
    layered(
        admin::router(&config.admin, provider, clock, writes),
        config.body_limit,
    )
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    /// `/metrics` on its own listener, when configured (else not served).
    metrics: Option<tokio::net::TcpListener>,
    /// The admin API on its own listener, when configured (else not served).
    admin: Option<(tokio::net::TcpListener, Router)>,
    /// Serve HTTPS on the main listener.
    tls: Option<RustlsConfig>,
    timeouts: Timeouts,
    backend: &'static str,
    /// Writes running on their own (see [`Writes`]); shutdown waits for them.
    writes: Writes,
}

/// What the application takes from its surroundings besides configuration;
/// `main` uses the defaults, tests inject their own.
pub struct Dependencies {
    /// The wall clock: signatures are checked against it (tests replay fixed
    /// vectors) and the backend dates what it makes with it.
    pub clock: Clock,
    /// The AWS configuration (tests point it at their emulator); `None` loads
    /// the standard chain.
    pub aws: Option<SdkConfig>,
}

impl Default for Dependencies {
    fn default() -> Self {
        Dependencies {
            clock: clock::system(),
            aws: None,
        }
    }
}

impl Application {
    /// Builds and binds everything `config` describes.
    pub async fn build(config: &Config, deps: Dependencies) -> Result<Self, StartupError> {
        metrics::handle();
        metrics::api_keys_max(config.max_keys);
        let provider = provider(config, deps.aws, Arc::clone(&deps.clock)).await?;
        let backend = provider.name();
        // Every backend, every refresh interval (README, "Credential
        // lifecycle").
        tokio::spawn(lifecycle::sweep_loop(
            Arc::downgrade(&provider),
            Duration::from_secs(config.aws.index_refresh_secs),
            Arc::clone(&deps.clock),
        ));
        let writes = Writes::default();
        let admin = match config.admin.listen {
            Some(addr) => Some((
                bind(addr).await?,
                admin_router(
                    config,
                    Arc::clone(&provider),
                    Arc::clone(&deps.clock),
                    writes.clone(),
                ),
            )),
            None => None,
        };
        let router = router(config, provider, deps.clock, writes.clone());
        let listener = bind(config.listen).await?;
        let metrics = match config.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(
                RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(StartupError::Tls)?,
            ),
            _ => None,
        };
        Ok(Application {
            listener,
            router,
            metrics,
            admin,
            tls,
            timeouts: timeouts(config),
            backend,
            writes,
        })
    }

    /// Where `/metrics` is served when it has a listener of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where the admin API is served, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// in-flight requests finish within the shutdown timeout (a write under
    /// way within the AWS timeout more), closes what is left, and returns
    /// once the writes still running (their caller gone) have ended, within
    /// the same bound.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let timeouts = self.timeouts;
        let addr = self.local_addr();
        let (stage, watch) = tokio::sync::watch::channel(Stage::Serving);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stage.send(Stage::Draining);
            tokio::time::sleep(timeouts.shutdown).await;
            let _ = stage.send(Stage::Deadline);
            // Kept until every listener has stopped: a dropped sender
            // would read as the deadline everywhere.
            stage.closed().await;
        });
        if self.metrics.is_none() {
            tracing::info!(
                "metrics off: KEYHOOK_METRICS_LISTEN is unset, so /metrics is not served"
            );
        }
        let metrics = self.metrics.map(|listener| {
            tracing::info!(addr = ?listener.local_addr().ok(), "metrics listening");
            tokio::spawn(serve::serve(
                listener,
                None,
                metrics::router(),
                timeouts,
                watch.clone(),
            ))
        });
        // Same timeouts, shutdown and TLS as the main listener.
        let admin = self.admin.map(|(listener, router)| {
            tracing::info!(addr = ?listener.local_addr().ok(), "admin listening");
            tokio::spawn(serve::serve(
                listener,
                self.tls.clone(),
                router,
                timeouts,
                watch.clone(),
            ))
        });
        // Last: the tests read the address from it, and then may stop
        // reading the log.
        tracing::info!(
            addr = %addr,
            backend = self.backend,
            tls = self.tls.is_some(),
            "keyhook listening"
        );
        let mut stage = watch.clone();
        let served = serve::serve(self.listener, self.tls, self.router, timeouts, watch).await;
        for listener in [metrics, admin].into_iter().flatten() {
            let _ = listener.await;
        }
        let writes = self.writes;
        if writes.running() > 0 {
            tracing::info!(
                running = writes.running(),
                "waiting for writes whose caller hung up"
            );
        }
        tokio::select! {
            () = writes.finished() => {}
            () = async {
                let _ = stage.wait_for(|s| *s == Stage::Deadline).await;
                tokio::time::sleep(timeouts.drain).await;
            } => {
                tracing::error!(
                    running = writes.running(),
                    "shutdown deadline passed with writes still running; they are cut"
                );
            }
        }
        served
    }
}

/// The listeners' time limits from `config`.
fn timeouts(config: &Config) -> Timeouts {
    Timeouts {
        header: Duration::from_secs(config.header_timeout_secs),
        request: Duration::from_secs(config.request_timeout_secs),
        shutdown: Duration::from_secs(config.shutdown_timeout_secs),
        drain: Duration::from_secs(config.aws.timeout_secs),
    }
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartupError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}

/// What `keyhook check` verifies beyond the configuration itself: that the
/// backend could be opened. It does not open the local store, which a
/// running server holds locked; it checks its directory can be written.
pub async fn check_backend(config: &Config) -> Result<String, StartupError> {
    match config.backend {
        BackendKind::Local => {
            let dir = &config.data_dir;
            let probe = dir.join(".keyhook-check");
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&probe, b""))
                .and_then(|()| std::fs::remove_file(&probe))
                .map_err(|e| {
                    StartupError::Backend(CredentialError::Backend {
                        operation: "write data directory",
                        detail: format!("{}: {e}", dir.display()),
                    })
                })?;
            // Reads the store as `serve` would load it, so a damaged file
            // is found before a rollout.
            let store = LocalStore::verify(dir)?;
            Ok(format!(
                "local store: {store}; the data directory is writable"
            ))
        }
        BackendKind::Aws => {
            let sdk = load_sdk_config().await;
            // `verify` never reads the clock.
            let provider = AwsProvider::new(
                &config.aws,
                config.readme.usage_plan_id.clone(),
                &sdk,
                clock::system(),
            );
            let report = provider.verify().await.map_err(StartupError::Aws)?;
            Ok(report.join("; "))
        }
    }
}
