//! The daemon: the driver on its own thread and the API server, over one
//! data directory.
//!
//! ```text
//! DATA_DIR/kiln.db      sectors, event logs, pieces, tasks, worker tokens and the embedded chain (SQLite)
//! DATA_DIR/token        the API token (created once, mode 0600)
//! DATA_DIR/api          the API URL of the running daemon (http:// or https://)
//! DATA_DIR/api.crt      with TLS on, the certificate chain the API serves (for local clients to trust)
//! DATA_DIR/lock         held while a daemon runs, so two cannot share the directory
//! DATA_DIR/sectors/N/   sector N's files
//! DATA_DIR/pieces/      the daemon's copies of data pieces
//! DATA_DIR/proofs/      proofs between C2 and their landed ProveCommit
//! ```

use crate::api::client::{API_CERT_FILE, API_FILE, TOKEN_FILE};
use crate::api::server::{router, ApiContext};
use crate::chain::{EmbeddedChain, ProofsVerifier};
use crate::config::Config;
use crate::pipeline::engine::{LocalEngine, ProofEngine};
use crate::pipeline::{now_ms, Ledger, Pipeline, PipelineConfig, SharedLedger};
use crate::store::Store;
use crate::workers::dispatch::HttpDispatcher;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
    Tls(#[from] crate::tls::TlsError),
    /// The API listener.
    #[error("API listen address {addr}: {reason}")]
    Listen {
        /// The configured address.
        addr: String,
        /// Why it failed.
        reason: String,
    },
}

/// A running daemon.
pub struct Daemon {
    addr: SocketAddr,
    tls: bool,
    ledger: SharedLedger,
    stop: Arc<AtomicBool>,
    driver: Option<JoinHandle<()>>,
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
        let engine = LocalEngine {
            param_dir: config.param_dir(),
            parent_cache_dir: config.parent_cache_dir(),
            labeling: Default::default(),
        };
        Self::start_with_engine(config, Arc::new(engine))
    }

    /// Starts a daemon whose tasks run on `engine`.
    pub fn start_with_engine(config: &Config, engine: Arc<dyn ProofEngine>) -> Result<Self, DaemonError> {
        config.check().map_err(DaemonError::Config)?;
        let tls = match (&config.api.tls_cert, &config.api.tls_key) {
            (Some(cert), Some(key)) => Some((cert, crate::tls::server_config(cert, key)?)),
            _ => None,
        };
        let dispatch_timeout = std::time::Duration::from_millis(config.workers.dispatch_timeout_ms);
        let dispatcher =
            HttpDispatcher::new(crate::tls::agent(dispatch_timeout, config.workers.ca_cert.as_deref())?);
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(data_err(dir))?;
        let lock_path = dir.join("lock");
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
        let store = Store::open(&db, config.retry.policy())?;
        let verifier = Box::new(ProofsVerifier { param_dir: config.param_dir() });
        let chain = EmbeddedChain::open(&db, config.embedded_chain(), verifier, now_ms())?;
        let ledger: SharedLedger = Arc::new(Mutex::new(Ledger { store, chain: Box::new(chain) }));

        // Local tasks died with the last process; remote ones get a lease's
        // time for their worker to heartbeat again.
        let lease_until = now_ms() + config.workers.lease_ms as i64;
        crate::pipeline::lock(&ledger).store.recover_tasks(lease_until, now_ms())?;
        crate::pipeline::packing::remove_orphan_copies(&ledger, &pipeline_config).map_err(|e| {
            DaemonError::DataDir { path: pipeline_config.pieces_dir(), reason: e.to_string() }
        })?;
        let local_check = Box::new(ProofsVerifier { param_dir: config.param_dir() });
        let pipeline = Pipeline::new(ledger.clone(), engine, local_check, pipeline_config.clone())
            .with_dispatcher(Arc::new(dispatcher));
        let ctx = Arc::new(ApiContext {
            ledger: ledger.clone(),
            config: pipeline_config,
            progress: pipeline.progress(),
            token,
            instance: hex::encode(rand::random::<[u8; 8]>()),
        });

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("kiln-api")
            .build()
            .map_err(|e| DaemonError::Listen { addr: config.api.listen.clone(), reason: e.to_string() })?;
        let listen_err = |reason: String| DaemonError::Listen { addr: config.api.listen.clone(), reason };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(&config.api.listen))
            .map_err(|e| listen_err(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| listen_err(e.to_string()))?;
        let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(ctx);
        let cert_path = dir.join(API_CERT_FILE);
        let write = |path: &Path, bytes: &[u8]| {
            proofs::durable::write_file(path, bytes)
                .map_err(|e| DaemonError::DataDir { path: path.to_path_buf(), reason: e.to_string() })
        };
        match &tls {
            Some((cert, _)) => write(&cert_path, crate::tls::certificate_pem(cert)?.as_bytes())?,
            None => match std::fs::remove_file(&cert_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(data_err(&cert_path)(e)),
                _ => {}
            },
        }
        let server_tls = tls.as_ref().map(|(_, c)| c.clone());
        runtime.spawn(async move {
            let stopped = async {
                let _ = rx.await;
            };
            if let Err(e) = crate::tls::serve(listener, app, server_tls, stopped).await {
                tracing::error!(error = %e, "API server stopped");
            }
        });
        let api_path = dir.join(API_FILE);
        write(&api_path, format!("{}://{addr}\n", crate::tls::scheme(tls.is_some())).as_bytes())?;

        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let driver = std::thread::Builder::new()
            .name("kiln-driver".into())
            .spawn(move || pipeline.run(&flag))
            .map_err(data_err(dir))?;
        tracing::info!(%addr, data_dir = %dir.display(), "daemon started");
        Ok(Self {
            addr,
            tls: tls.is_some(),
            ledger,
            stop,
            driver: Some(driver),
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
        format!("{}://{}", crate::tls::scheme(self.tls), self.addr)
    }

    /// The ledger (for in-process callers).
    pub fn ledger(&self) -> &SharedLedger {
        &self.ledger
    }

    /// Blocks until SIGINT or SIGTERM.
    pub fn wait_for_signal(&self) {
        let Some(rt) = &self.runtime else { return };
        rt.block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
        });
        tracing::info!("signal received; stopping");
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
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            let _ = std::fs::remove_file(self.api_path.as_path());
            let _ = std::fs::remove_file(self.cert_path.as_path());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}
