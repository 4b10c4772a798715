//! Helpers for the worker tests: an in-process daemon on a fixed loopback
//! port (so it can restart at the same URL) and `kiln-worker` processes.
#![allow(dead_code)]

use proofs::SectorSize;
use sealing::api::client::Client;
use sealing::config::{ChainConfig, Config, WorkersConfig};
use sealing::daemon::Daemon;
use sealing::lifecycle::SectorState;
use sealing::store::{TaskKind, TaskRow, TaskState};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The shared Groth16 parameter directory, with the 2KiB test setup generated if absent.
pub fn param_dir() -> PathBuf {
    static READY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = sealing::dirs::param_dir();
            let params = proofs::snark::params::PorepParams::new(&dir, SectorSize::KiB2);
            params.generate_test_setup(proofs::snark::params::SetupSeed::KILN).expect("2KiB test setup");
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
    c.workers =
        WorkersConfig { heartbeat_ms: 300, lease_ms: 3_000, dispatch_timeout_ms: 30_000, ca_cert: None };
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

/// Makes `DIR/NAME.crt` and `DIR/NAME.key`.
pub fn self_signed(dir: &Path, name: &str) -> Pem {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pem = Pem { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
    std::fs::write(&pem.cert, made.cert.pem()).unwrap();
    std::fs::write(&pem.key, made.key_pair.serialize_pem()).unwrap();
    pem
}

/// `kiln-worker run` arguments serving HTTPS with `own` and trusting `daemon`'s certificate.
pub fn tls_args(own: &Pem, daemon: &Path) -> Vec<String> {
    let arg = |p: &Path| p.display().to_string();
    ["--tls-cert".into(), arg(&own.cert), "--tls-key".into(), arg(&own.key), "--miner-ca".into(), arg(daemon)]
        .to_vec()
}

/// Starts `kiln-worker run` for the daemon at `miner`; its log goes to `log`.
pub fn spawn_worker(miner: &str, token: &str, params: &Path, log: &Path, fault: Option<&str>) -> Child {
    spawn_worker_with(miner, token, params, log, fault, &[])
}

/// [`spawn_worker`] with more arguments to `kiln-worker run`.
pub fn spawn_worker_with(
    miner: &str,
    token: &str,
    params: &Path,
    log: &Path,
    fault: Option<&str>,
    extra: &[String],
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln-worker"));
    cmd.args([
        "run",
        "--miner",
        miner,
        "--listen",
        "127.0.0.1:0",
        "--max-task-bytes",
        "2000000",
        "--param-dir",
    ])
    .arg(params)
    .args(extra)
    .env("KILN_WORKER_TOKEN", token)
    .env("RUST_LOG", "info")
    .env_remove("KILN_WORKER_FAULT")
    .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
    .stderr(std::fs::File::create(log).unwrap());
    if let Some(f) = fault {
        cmd.env("KILN_WORKER_FAULT", f);
    }
    cmd.spawn().expect("start kiln-worker")
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
        let w = workers.into_iter().find(|w| w.worker.name == name)?;
        (w.state == sealing::workers::scheduler::WorkerState::Online).then_some(w.worker.url)
    })
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
    let tasks: Vec<TaskRow> = client(config).tasks(Some(n)).unwrap();
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

/// Every ProveCommit on the chain with its exit code, by sector.
pub fn prove_commits(config: &Config) -> Vec<(u64, Option<i64>)> {
    let messages = client(config).chain_messages().unwrap();
    messages
        .into_iter()
        .filter_map(|m| match m.message {
            sealing::chain::Message::ProveCommit { sector, .. } => {
                Some((sector, m.receipt.map(|r| r.exit_code)))
            }
            _ => None,
        })
        .collect()
}
