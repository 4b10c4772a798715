//! Helpers for the worker tests (`worker_*.rs`): an in-process daemon on a
//! fixed loopback port (so it can restart at the same URL), in-process
//! workers (`worker::serve` on their own runtime, stopped through a oneshot),
//! and the log lines both write.
#![allow(dead_code)]

use proofs::SectorSize;
use sealing::api::client::Client;
use sealing::config::{ChainConfig, Config, WorkersConfig};
use sealing::daemon::Daemon;
use sealing::store::{TaskKind, TaskState};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wire::api::{SectorState, TaskView, WorkerState};
use wire::chain::Message;
use worker::{TlsFiles, WorkerConfig};

/// The shared Groth16 parameter directory, with the 2KiB test setup generated if absent.
pub fn param_dir() -> PathBuf {
    static READY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = sealing::dirs::param_dir();
            for params in proofs::snark::params::GrothParams::all(&dir, SectorSize::KiB2) {
                params.generate_test_setup(proofs::snark::params::SetupSeed::KILN).expect("2KiB test setup");
            }
            dir
        })
        .clone()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A daemon config in `root`: fast chain, short leases, `local_commits` C2 slots here.
pub fn config(root: &Path, real_params: bool, local_commits: usize) -> Config {
    let mut c = Config::new(root.join("data"), SectorSize::KiB2, 1000);
    c.param_dir = Some(if real_params { param_dir() } else { root.join("no-params") });
    c.parent_cache_dir = Some(root.join("parents"));
    c.api.listen = format!("127.0.0.1:{}", free_port());
    c.limits.commit = local_commits;
    c.limits.pre_commit = 2;
    c.retry.base_backoff_ms = 200;
    c.chain =
        ChainConfig { block_time_ms: 300, seed_delay: 2, prove_commit_window: 5_000, ..Default::default() };
    c.workers = WorkersConfig {
        heartbeat_ms: 300,
        lease_ms: 3_000,
        dispatch_timeout_ms: 30_000,
        ..Default::default()
    };
    c
}

pub fn client(config: &Config) -> Client {
    Client::from_repo(&config.data_dir).unwrap()
}

/// A self-signed certificate for 127.0.0.1 and localhost, and its key, as PEM files.
pub struct Pem {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pem {
    /// The files as a worker serves them.
    pub fn tls(&self) -> TlsFiles {
        TlsFiles { cert: self.cert.clone(), key: self.key.clone() }
    }
}

/// Makes `DIR/NAME.crt` and `DIR/NAME.key`.
pub fn self_signed(dir: &Path, name: &str) -> Pem {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pem = Pem { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
    std::fs::write(&pem.cert, made.cert.pem()).unwrap();
    std::fs::write(&pem.key, made.key_pair.serialize_pem()).unwrap();
    pem
}

/// A worker config for the daemon at `miner`: parameters in `params`, a
/// 2 MB task limit, plain HTTP (set `tls` and `miner_ca` for HTTPS).
pub fn worker_config(miner: &str, token: &str, params: &Path) -> WorkerConfig {
    WorkerConfig {
        param_dir: params.to_path_buf(),
        max_task_bytes: 2_000_000,
        ..WorkerConfig::new(miner, token)
    }
}

/// A worker running in this process on a loopback port of its own.
pub struct Worker {
    /// Where its task API listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), worker::Error>>>,
}

impl Worker {
    /// Starts `worker::serve` with `config` on `127.0.0.1:0`, on its own runtime.
    pub fn start(config: WorkerConfig) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("worker-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    worker::serve(listener, config, async { stopped.await.unwrap_or(()) }).await
                })
            })
            .unwrap();
        Self { addr, stop: Some(stop), thread: Some(thread) }
    }

    /// Whether `serve` is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops it as a shutdown signal would and waits for `serve` to return:
    /// no heartbeat after this, and the results of tasks it held are discarded.
    pub fn stop(mut self) -> Result<(), worker::Error> {
        self.stop_now()
    }

    fn stop_now(&mut self) -> Result<(), worker::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().expect("the worker thread does not panic"),
            None => Ok(()),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop_now();
    }
}

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collects this process's log (daemon and workers, INFO and up) for [`log_lines`].
pub fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init();
    });
}

/// The log lines captured so far that contain every string in `all`.
pub fn log_lines(all: &[&str]) -> Vec<String> {
    let log = LOG.lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| all.iter().all(|s| l.contains(s)))
        .map(String::from)
        .collect()
}

/// Polls `check` every 100 ms until it gives a value; panics with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until worker `name` is registered and online; returns its URL.
pub fn wait_online(config: &Config, name: &str) -> String {
    wait_for(Duration::from_secs(60), &format!("worker {name} online"), || {
        let workers = client(config).workers().ok()?;
        let w = workers.into_iter().find(|w| w.name == name)?;
        (w.state == WorkerState::Online).then_some(w.url)
    })
}

/// Worker `name` as the daemon's API shows it.
pub fn api_worker(config: &Config, name: &str) -> wire::api::WorkerView {
    let workers = client(config).workers().unwrap();
    workers.into_iter().find(|w| w.name == name).unwrap_or_else(|| panic!("no worker {name}"))
}

/// Waits until every sector in `sectors` is Proving.
pub fn wait_proving(config: &Config, sectors: &[u64], limit: Duration) {
    wait_for(limit, "sectors Proving", || {
        let all = client(config).sectors().ok()?;
        let done = sectors.iter().all(|n| {
            all.iter().any(|e| e.sector.number == *n && e.sector.lifecycle.state == SectorState::Proving)
        });
        for e in &all {
            assert_ne!(e.sector.lifecycle.state, SectorState::Failed, "sector {} failed", e.sector.number);
        }
        done.then_some(())
    });
}

/// Sector `n`'s commit tasks as (worker, state).
pub fn commit_tasks(config: &Config, n: u64) -> Vec<(Option<String>, TaskState)> {
    let tasks: Vec<TaskView> = client(config).tasks(Some(n)).unwrap();
    tasks.into_iter().filter(|t| t.kind == TaskKind::Commit).map(|t| (t.worker, t.state)).collect()
}

/// Starts the daemon, retrying briefly while the port of a stopped one is released.
pub fn start_daemon(config: &Config) -> Daemon {
    wait_for(Duration::from_secs(20), "the daemon to start", || Daemon::start(config).ok())
}

/// Creates a worker token through the API.
pub fn worker_token(config: &Config, name: &str) -> String {
    client(config).create_worker_token(name).unwrap().token
}

/// Every sector proven by a ProveCommit on the chain with its exit code.
pub fn prove_commits(config: &Config) -> Vec<(u64, Option<i64>)> {
    let messages = client(config).chain_messages().unwrap();
    messages
        .into_iter()
        .flat_map(|m| {
            let code = m.receipt.map(|r| r.exit_code);
            match m.message {
                Message::ProveCommitSectors { sectors } => sectors.iter().map(|s| (s.sector, code)).collect(),
                _ => Vec::new(),
            }
        })
        .collect()
}
