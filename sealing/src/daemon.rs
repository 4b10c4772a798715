//! The daemon: the driver on its own thread and the API server, over one
//! data directory.
//!
//! ```text
//! DATA_DIR/kiln.db      sectors, event logs, pieces, tasks, worker tokens and the embedded chain (SQLite)
//! DATA_DIR/token        the API token (created once, mode 0600)
//! DATA_DIR/api          the API URL of the running daemon (http:// or https://)
//! DATA_DIR/api.crt      with TLS on, the certificate chain the API serves (for local clients to trust)
//! DATA_DIR/metrics      with `[metrics] listen`, the URL of the unauthenticated loopback scrape address
//! DATA_DIR/lock         held while a daemon runs, so two cannot share the directory
//! DATA_DIR/sectors/N/   sector N's files
//! DATA_DIR/pieces/      the daemon's copies of data pieces
//! DATA_DIR/proofs/      proofs between C2 and their landed ProveCommit
//! ```

use crate::api::client::{API_CERT_FILE, API_FILE, TOKEN_FILE};
use crate::api::metrics::History;
use crate::api::server::{router, ApiContext};
use crate::chain::{Chain, EmbeddedChain, EmbeddedChainConfig, ProofsVerifier, SealVerifier};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::ledger::{Ledger, SharedLedger};
use crate::pipeline::engine::{LocalEngine, ProofEngine};
use crate::pipeline::{DriverStopped, Pipeline, PipelineConfig};
use crate::store::{SqliteStore, Store};
use crate::workers::dispatch::HttpDispatcher;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// With `[metrics] listen`, the file in the data directory holding the scrape URL.
pub const METRICS_FILE: &str = "metrics";

/// A daemon that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Config values that cannot be used.
    #[error("config: {0}")]
    Config(String),
    /// A file of the data directory.
    #[error("{path}: {reason}")]
    DataDir {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The sector store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The chain.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    /// The API's or the dispatcher's TLS files.
    #[error(transparent)]
    Tls(#[from] wire::tls::TlsError),
    /// The API listener.
    #[error("API listen address {addr}: {reason}")]
    Listen {
        /// The configured address.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// The driver stopped on a critical failure or a panic: sealing cannot go on
    /// in this process (restarting is safe; every step resumes from the database).
    #[error("{0}")]
    DriverStopped(String),
}

/// What a daemon is built from besides its configuration: tests substitute
/// doubles, and other backends plug in here without a change to the daemon.
pub struct Parts {
    /// Runs the seal phases.
    pub engine: Arc<dyn ProofEngine>,
    /// Checks proofs: the embedded chain's and the driver's (before a proof is sent).
    pub verifier: Arc<dyn SealVerifier>,
    /// Tells time to the driver, the API and the chain.
    pub clock: SharedClock,
    /// Where sectors, tasks, workers and PoSt runs are recorded. `None`: the
    /// SQLite store in the data directory's `kiln.db`, as the configured node.
    pub store: Option<Box<dyn Store>>,
    /// The chain. `None`: the embedded devnet chain in the data directory's
    /// `kiln.db`, checking proofs with `verifier`.
    pub chain: Option<Box<dyn Chain>>,
}

impl Parts {
    /// The proof core on this machine, the parameter files' verifying keys and
    /// the system clock.
    pub fn local(config: &Config) -> Self {
        Self {
            engine: Arc::new(LocalEngine {
                param_dir: config.param_dir(),
                parent_cache_dir: config.parent_cache_dir(),
                labeling: Default::default(),
            }),
            verifier: Arc::new(ProofsVerifier { param_dir: config.param_dir() }),
            clock: crate::clock::system(),
            store: None,
            chain: None,
        }
    }
}

/// A verifier shared by the chain and the driver.
struct SharedVerifier(Arc<dyn SealVerifier>);

impl SealVerifier for SharedVerifier {
    fn verify(&self, s: &proofs::snark::SealStatement, proof: &[u8]) -> Result<bool, proofs::Error> {
        self.0.verify(s, proof)
    }
    fn verify_post(
        &self,
        post: &proofs::post::PostProof,
        randomness: &proofs::Randomness,
        sectors: &[(u64, proofs::Commitment)],
        proof: &[u8],
    ) -> Result<bool, proofs::Error> {
        self.0.verify_post(post, randomness, sectors, proof)
    }
}

/// A running daemon.
pub struct Daemon {
    addr: SocketAddr,
    tls: bool,
    ledger: SharedLedger,
    stop: Arc<AtomicBool>,
    driver: Option<JoinHandle<()>>,
    prover: Option<JoinHandle<()>>,
    /// Fires when the driver thread ends on its own (a critical failure or a panic).
    driver_ended: Option<tokio::sync::oneshot::Receiver<String>>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    api_path: PathBuf,
    cert_path: PathBuf,
    _lock: File,
}

fn data_err(path: &Path) -> impl Fn(std::io::Error) -> DaemonError + '_ {
    move |e| DaemonError::DataDir { path: path.to_path_buf(), reason: e.to_string() }
}

/// Reads the API token, creating it (readable by the owner only) on first start.
fn load_or_create_token(data_dir: &Path) -> Result<String, DaemonError> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 32 => return Ok(t.trim().to_string()),
        Ok(_) => {
            return Err(DaemonError::DataDir {
                path,
                reason: "token file is too short; delete it to have a new token made".into(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(data_err(&path)(e)),
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(data_err(&path))?;
    f.write_all(token.as_bytes()).and_then(|_| f.sync_all()).map_err(data_err(&path))?;
    Ok(token)
}

impl Daemon {
    /// Starts a daemon with the proof core on this machine and the embedded chain.
    pub fn start(config: &Config) -> Result<Self, DaemonError> {
        Self::start_with(config, Parts::local(config))
    }

    /// Starts a daemon built from `parts`.
    pub fn start_with(config: &Config, parts: Parts) -> Result<Self, DaemonError> {
        let Parts { engine, verifier, clock, store, chain } = parts;
        config.check().map_err(DaemonError::Config)?;
        // Connections and the work share the descriptors: a flood of
        // connections must never leave a sector file unopenable.
        let fd_limit = wire::descriptors::raise_limit()
            .map_err(|e| DaemonError::Config(format!("cannot read the file descriptor limit: {e}")))?;
        let budget = config.descriptor_budget(fd_limit).map_err(DaemonError::Config)?;
        tracing::info!(
            limit = budget.limit,
            work = budget.work,
            api_connections = budget.caps[0],
            metrics_connections = budget.caps.get(1).copied(),
            "file descriptor budget"
        );
        let tls = match (&config.api.tls_cert, &config.api.tls_key) {
            (Some(cert), Some(key)) => Some((cert, wire::tls::server_config(cert, key)?)),
            _ => None,
        };
        let dispatch_timeout = std::time::Duration::from_millis(config.workers.dispatch_timeout_ms);
        let dispatcher: Arc<HttpDispatcher> = Arc::new(HttpDispatcher::new(wire::tls::agent(
            dispatch_timeout,
            config.workers.ca_cert.as_deref(),
        )?));
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(data_err(dir))?;
        // The directory holds the API token, workers' dispatch keys and the data: owner only.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(data_err(dir))?;
        let lock_path = dir.join(crate::api::client::LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(data_err(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(DaemonError::DataDir {
                path: dir.clone(),
                reason: "another kiln daemon is using this data directory".into(),
            });
        }
        let token = load_or_create_token(dir)?;
        let pipeline_config = PipelineConfig::from_config(config);
        let db = pipeline_config.database_path();
        let store: Box<dyn Store> = match store {
            Some(store) => store,
            None => Box::new(SqliteStore::open_as(&db, config.retry.policy(), &config.node)?),
        };
        let ledger: SharedLedger = match chain {
            Some(chain) => Ledger::new(store, chain, clock),
            None => {
                let settings = EmbeddedChainConfig::from_config(config);
                let chain_verifier = Box::new(SharedVerifier(verifier.clone()));
                let chain = EmbeddedChain::open(&db, settings.clone(), chain_verifier, clock.as_ref())?;
                let observer = EmbeddedChain::open_observer(&db, settings, clock.as_ref())?;
                Ledger::with_observer(store, Box::new(chain), Box::new(observer), clock)
            }
        };
        if db.exists() {
            std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).map_err(data_err(&db))?;
        }
        // Messages are counted from this start on (counters begin at zero).
        let sent = ledger.chain_view().messages(ledger.now_ms())?;
        ledger.metrics().count_messages_after(sent.last().map_or(0, |m| m.seq));

        // Local tasks died with the last process; remote ones get a lease's
        // time for their worker to heartbeat again.
        let now = ledger.now_ms();
        let lease_until = now.saturating_add(config.workers.lease_ms as i64);
        ledger.store().recover_tasks(lease_until, now)?;
        crate::pipeline::packing::remove_orphan_copies(&ledger, &pipeline_config).map_err(|e| {
            DaemonError::DataDir { path: pipeline_config.pieces_dir(), reason: e.to_string() }
        })?;
        // Sealing's parallel work (rayon's global pool: C2, trees) runs at a low
        // priority so that a PoSt, on its own pool, gets the cores it needs in its
        // deadline. Best effort: a pool already built (another daemon in this
        // process) is kept.
        let _ = rayon::ThreadPoolBuilder::new()
            .start_handler(|_| proofs::priority::lower_thread_priority())
            .build_global();
        // blst's own MSM threads (C2's Pippenger) too; a PoSt's MSMs run on its own pool.
        proofs::snark::msm::start_shared_pool_at_low_priority();
        let gate = crate::pipeline::ProvingGate::default();
        let pipeline = Pipeline::new(ledger.clone(), engine, verifier, pipeline_config.clone())
            .with_dispatcher(dispatcher.clone())
            .with_proving_gate(gate.clone());
        let prover =
            crate::proving::Prover::new(ledger.clone(), pipeline_config.clone(), config.param_dir(), gate)
                .with_dispatcher(dispatcher);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("kiln-api")
            .build()
            .map_err(|e| DaemonError::Listen { addr: config.api.listen.clone(), reason: e.to_string() })?;
        let listen_err = |reason: String| DaemonError::Listen { addr: config.api.listen.clone(), reason };
        let listener = runtime
            .block_on(wire::server::bind(&config.api.listen))
            .map_err(|e| listen_err(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| listen_err(e.to_string()))?;
        let ctx = Arc::new(ApiContext {
            ledger: ledger.clone(),
            config: pipeline_config,
            progress: pipeline.progress(),
            paused: pipeline.paused(),
            token,
            instance: hex::encode(rand::random::<[u8; 8]>()),
            history: Arc::new(History::new(
                config.metrics.history_interval_ms,
                config.metrics.history_samples,
            )),
            sessions: Default::default(),
            tls: tls.is_some(),
            descriptors: budget.clone(),
            port: addr.port(),
            worker_calls: Default::default(),
        });

        let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
        let (stopping, _) = tokio::sync::watch::channel(false);
        let mut write_metrics_url = None;
        if let Some(metrics_addr) = &config.metrics.listen {
            let metrics_err = |reason: String| DaemonError::Listen { addr: metrics_addr.clone(), reason };
            let listener =
                runtime.block_on(wire::server::bind(metrics_addr)).map_err(|e| metrics_err(e.to_string()))?;
            let addr = listener.local_addr().map_err(|e| metrics_err(e.to_string()))?;
            let app = crate::api::metrics::scrape_router(ctx.clone());
            let mut stop = stopping.subscribe();
            let limits = config.api.limits(budget.caps[1]);
            runtime.spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = wire::server::serve(listener, app, None, limits, stopped).await {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            });
            write_metrics_url = Some(format!("http://{addr}/metrics\n"));
            tracing::info!(%addr, "metrics served without a token on loopback");
        }
        {
            let ctx = ctx.clone();
            let mut stop = stopping.subscribe();
            runtime.spawn(async move {
                let mut every = tokio::time::interval(ctx.history.interval());
                loop {
                    tokio::select! {
                        _ = every.tick() => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    let ctx = ctx.clone();
                    let _ = tokio::task::spawn_blocking(move || ctx.history.sample(&ctx.ledger)).await;
                }
            });
        }
        let app = router(ctx);
        let cert_path = dir.join(API_CERT_FILE);
        let write = |path: &Path, bytes: &[u8]| {
            proofs::durable::write_file(path, bytes)
                .map_err(|e| DaemonError::DataDir { path: path.to_path_buf(), reason: e.to_string() })
        };
        match &tls {
            Some((cert, _)) => write(&cert_path, wire::tls::certificate_pem(cert)?.as_bytes())?,
            None => match std::fs::remove_file(&cert_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(data_err(&cert_path)(e)),
                _ => {}
            },
        }
        let server_tls = tls.as_ref().map(|(_, c)| c.clone());
        let limits = config.api.limits(budget.caps[0]);
        runtime.spawn(async move {
            let stopped = async move {
                let _ = rx.await;
                let _ = stopping.send(true);
            };
            if let Err(e) = wire::server::serve(listener, app, server_tls, limits, stopped).await {
                tracing::error!(error = %e, "API server stopped");
            }
        });

        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ended, driver_ended) = tokio::sync::oneshot::channel::<String>();
        let driver = std::thread::Builder::new()
            .name("kiln-driver".into())
            .spawn(move || {
                // Supervision: whatever ends the driver but a stop request is reported.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipeline.run(&flag)));
                let reason = match outcome {
                    Ok(Ok(())) => return,
                    Ok(Err(DriverStopped(reason))) => reason,
                    Err(panic) => format!("the driver panicked: {}", panic_text(panic.as_ref())),
                };
                tracing::error!(%reason, "the driver stopped; the daemon exits (restarting it resumes every sector)");
                let _ = ended.send(reason);
            })
            .map_err(|e| DaemonError::DriverStopped(format!("cannot start the driver thread: {e}")))?;
        let prover = if config.proving.enabled {
            let flag = stop.clone();
            let interval =
                std::time::Duration::from_millis((config.chain.block_time_ms / 4).clamp(20, 1_000));
            let handle = std::thread::Builder::new()
                .name("kiln-prover".into())
                .spawn(move || prover.run(&flag, interval))
                .map_err(|e| DaemonError::DriverStopped(format!("cannot start the prover thread: {e}")))?;
            Some(handle)
        } else {
            tracing::warn!("proving is disabled: sectors on chain will miss their deadlines");
            None
        };
        let metrics_path = dir.join(METRICS_FILE);
        match write_metrics_url {
            Some(url) => write(&metrics_path, url.as_bytes())?,
            None => match std::fs::remove_file(&metrics_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(data_err(&metrics_path)(e)),
                _ => {}
            },
        }
        // Written last: clients find the API only once everything runs.
        let api_path = dir.join(API_FILE);
        write(&api_path, format!("{}://{addr}\n", wire::tls::scheme(tls.is_some())).as_bytes())?;
        tracing::info!(%addr, data_dir = %dir.display(), "daemon started");
        Ok(Self {
            addr,
            tls: tls.is_some(),
            ledger,
            stop,
            driver: Some(driver),
            prover,
            driver_ended: Some(driver_ended),
            runtime: Some(runtime),
            shutdown: Some(shutdown),
            api_path,
            cert_path,
            _lock: lock,
        })
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's URL.
    pub fn url(&self) -> String {
        format!("{}://{}", wire::tls::scheme(self.tls), self.addr)
    }

    /// The ledger (for in-process callers).
    pub fn ledger(&self) -> &SharedLedger {
        &self.ledger
    }

    /// Why the driver stopped on its own, once it has (a critical failure or
    /// a panic); `None` while it runs. Not for use after [`Daemon::wait`].
    pub fn driver_stopped(&mut self) -> Option<String> {
        self.driver_ended.as_mut()?.try_recv().ok()
    }

    /// Blocks until SIGINT or SIGTERM (`Ok`), or until the driver stops on its
    /// own (`Err`: the daemon should exit non-zero so a supervisor restarts it).
    pub fn wait(&mut self) -> Result<(), DaemonError> {
        let Some(rt) = &self.runtime else { return Ok(()) };
        let ended = self.driver_ended.take();
        let outcome = rt.block_on(async {
            let driver = async {
                match ended {
                    Some(rx) => match rx.await {
                        Ok(reason) => reason,
                        // The driver ended on a stop request.
                        Err(_) => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = wire::server::stop_signal() => Ok(()),
                reason = driver => Err(reason),
            }
        });
        match outcome {
            Ok(()) => {
                tracing::info!("signal received; stopping");
                Ok(())
            }
            Err(reason) => Err(DaemonError::DriverStopped(reason)),
        }
    }

    /// Stops the driver and the API. Tasks still running are abandoned; their
    /// sectors resume from the database on the next start.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(d) = self.driver.take() {
            let _ = d.join();
        }
        // A PoSt in flight finishes first (its message is sent or not at all).
        if let Some(p) = self.prover.take() {
            let _ = p.join();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            let _ = std::fs::remove_file(self.api_path.as_path());
            let _ = std::fs::remove_file(self.cert_path.as_path());
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}
