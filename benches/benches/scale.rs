//! Load and scale on loopback, with a simulated proof engine (instant phases,
//! no proofs) so that only kiln's own machinery is measured. Two parts:
//!
//! 1. **Scheduler scale**: the driver (`Pipeline`) with `WORKERS` simulated
//!    workers (4 slots each) and `SECTORS` pledged sectors, every C2 sent to a
//!    worker; the workers answer at once and heartbeat every second. Reports
//!    the driver's tick time and the dispatch latency: from a sector entering
//!    Committing (its event time) to its C2 handed to a worker.
//! 2. **API load**: a daemon sealing `API_SECTORS` sectors with the simulated
//!    engine while `HELD` connections are held half-sent (a slow-loris),
//!    `WORKERS` workers heartbeat over HTTP every second, and `CLIENTS` client
//!    threads call the API for `SECONDS` seconds. Reports latency percentiles
//!    and errors.
//!
//! Run: `cargo bench -p kiln-benches --bench scale`; each figure can be set by
//! its environment variable (`SECTORS=10000 WORKERS=200 API_SECTORS=2000
//! CLIENTS=32 SECONDS=10 HELD=1000` are the defaults).

use proofs::seal::SectorDir;
use proofs::snark::SealStatement;
use proofs::{Commitment, Randomness, SectorSize};
use sealing::api::client::Client;
use sealing::chain::{EmbeddedChain, EmbeddedChainConfig, SealVerifier};
use sealing::clock::{Clock, SharedClock, SystemClock};
use sealing::config::Config;
use sealing::daemon::{Daemon, Parts};
use sealing::ledger::Ledger;
use sealing::lifecycle::SectorState;
use sealing::pipeline::engine::{EngineError, PreCommitOutput, PreCommitTask, ProofEngine};
use sealing::pipeline::{Pipeline, PipelineConfig};
use sealing::store::{SqliteStore, TaskOutput};
use sealing::workers::dispatch::{DispatchError, Dispatcher};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wire::worker::{self as protocol, Capabilities, ParamFile, RemoteTask, TaskEnvelope};

/// The simulated proof: 192 bytes, the length of one partition's proof.
const PROOF: [u8; 192] = [7; 192];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Every phase at once; a sector directory is created, nothing else.
struct SimEngine;

impl ProofEngine for SimEngine {
    fn pc1(
        &self,
        dir: &SectorDir,
        _: &PreCommitTask,
        _: &AtomicBool,
        _: &mut dyn FnMut(proofs::sdr::layers::Progress),
    ) -> Result<(), EngineError> {
        std::fs::create_dir_all(dir.root()).map_err(proofs::Error::io("create", dir.root()))?;
        Ok(())
    }
    fn pc2(
        &self,
        _: &SectorDir,
        task: &PreCommitTask,
        _: &AtomicBool,
        _: &mut dyn FnMut(proofs::sdr::layers::Progress),
    ) -> Result<PreCommitOutput, EngineError> {
        let n = task.identity.sector_id as u8;
        Ok(PreCommitOutput { comm_d: Commitment([n & 0x3f; 32]), comm_r: Commitment([n & 0x1f; 32]) })
    }
    fn c1(&self, _: &SectorDir, seed: &Randomness) -> Result<Vec<u8>, EngineError> {
        Ok(seed.0.to_vec())
    }
    fn c2(&self, _: &[u8]) -> Result<Vec<u8>, EngineError> {
        Ok(PROOF.to_vec())
    }
    fn finalize(&self, _: &SectorDir, _: bool) -> Result<(), EngineError> {
        Ok(())
    }
}

/// Accepts the simulated proof.
struct SimVerifier;

impl SealVerifier for SimVerifier {
    fn verify(&self, _: &SealStatement, proof: &[u8]) -> Result<bool, proofs::Error> {
        Ok(proof == PROOF)
    }
}

/// Records each hand-over: task, worker URL, wall time (ms).
#[derive(Default)]
struct RecordingDispatcher {
    sent: Mutex<Vec<(u64, String, i64)>>,
}

impl Dispatcher for RecordingDispatcher {
    fn send_task(
        &self,
        url: &str,
        _: &str,
        task: u64,
        _: &TaskEnvelope,
        _: &[u8],
    ) -> Result<(), DispatchError> {
        self.sent.lock().unwrap().push((task, url.to_string(), SystemClock.now_ms()));
        Ok(())
    }
    fn cancel(&self, _: &str, _: &str, _: u64) -> Result<(), DispatchError> {
        Ok(())
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, unit: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "{name:<28} n={:<7} p50={:.2}{unit} p99={:.2}{unit} max={:.2}{unit}",
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN)
    );
}

fn config(root: &std::path::Path) -> Config {
    let mut config = Config::new(root.join("data"), SectorSize::KiB2, 1000);
    config.param_dir = Some(root.join("no-params"));
    config.api.listen = "127.0.0.1:0".into();
    // Epochs fast enough for seeds to come quickly, windows long enough that
    // no ticket or PreCommit ages out while 10,000 sectors queue.
    config.chain.block_time_ms = 20;
    config.chain.seed_delay = 1;
    config.chain.max_ticket_age = 1_000_000;
    config.chain.prove_commit_window = 1_000_000;
    config.packing.min_free_bytes = 0;
    config.limits.pre_commit = 64;
    config.limits.finalize = 64;
    config.limits.remote_c1 = 64;
    config
}

fn scheduler_scale(sectors: usize, workers: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path());
    config.limits.commit = 0;
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let pipeline_config = PipelineConfig::from_config(&config);
    let results = pipeline_config.clone();
    let db = pipeline_config.database_path();
    let store = SqliteStore::open(&db, config.retry.policy()).unwrap();
    let chain = EmbeddedChain::open(
        &db,
        EmbeddedChainConfig::from_config(&config),
        Box::new(SimVerifier),
        clock.as_ref(),
    )
    .unwrap();
    let ledger = Ledger::new(Box::new(store), Box::new(chain), clock.clone());
    let dispatcher = Arc::new(RecordingDispatcher::default());
    let mut pipeline =
        Pipeline::new(ledger.clone(), Arc::new(SimEngine), Arc::new(SimVerifier), pipeline_config)
            .with_dispatcher(dispatcher.clone());
    let caps = Capabilities {
        tasks: vec![RemoteTask::C2],
        slots: 4,
        memory_bytes: 64 << 30,
        params: vec![ParamFile::porep(SectorSize::KiB2)],
        ..Default::default()
    };
    let now = clock.now_ms();
    {
        let mut store = ledger.store();
        for w in 0..workers {
            let name = format!("w{w}");
            let token = format!("token-{w}");
            store
                .create_worker_token(
                    &name,
                    &protocol::token_hash(&token),
                    &protocol::dispatch_key(&token),
                    now,
                )
                .unwrap();
            store.register_worker(&name, "i", &format!("http://sim/{name}"), &caps, now).unwrap();
        }
        for _ in 0..sectors {
            store.create_sector(SectorSize::KiB2, true, now).unwrap();
        }
    }
    println!("scheduler scale: {sectors} sectors, {workers} workers x 4 slots, every C2 to a worker");
    let started = Instant::now();
    let (mut ticks, mut latencies) = (Vec::new(), Vec::new());
    let mut last_heartbeat = Instant::now();
    let mut proving = 0;
    while proving < sectors && started.elapsed() < Duration::from_secs(900) {
        let t = Instant::now();
        pipeline.tick();
        ticks.push(t.elapsed().as_secs_f64() * 1e3);
        let sent: Vec<(u64, String, i64)> = std::mem::take(&mut *dispatcher.sent.lock().unwrap());
        if !sent.is_empty() {
            let now = clock.now_ms();
            let mut store = ledger.store();
            for (task, url, at) in sent {
                let worker = url.rsplit('/').next().unwrap().to_string();
                let sector = store.task(task).unwrap().unwrap().sector.unwrap();
                let entered = store
                    .events(sector)
                    .unwrap()
                    .iter()
                    .rev()
                    .find(|e| e.state == SectorState::Committing)
                    .map(|e| e.at_ms)
                    .unwrap();
                latencies.push((at - entered) as f64);
                let result = TaskOutput::save(results.new_task_result_path(task), &PROOF).unwrap();
                store.report_task(task, &worker, Ok(&result), now).unwrap();
            }
        }
        if last_heartbeat.elapsed() >= Duration::from_secs(1) {
            last_heartbeat = Instant::now();
            let now = clock.now_ms();
            let mut store = ledger.store();
            for w in 0..workers {
                store.worker_heartbeat(&format!("w{w}"), "i", &[], now + 60_000, now).unwrap();
            }
            let mut states = std::collections::BTreeMap::<String, usize>::new();
            for r in store.sectors().unwrap() {
                *states.entry(r.lifecycle.state.to_string()).or_default() += 1;
            }
            proving = states.get("Proving").copied().unwrap_or(0);
            print!("\r  {:>6.1} s: {states:?}          ", started.elapsed().as_secs_f64());
            std::io::stdout().flush().ok();
        }
        if pipeline.busy() {
            pipeline.await_task(Duration::from_millis(2));
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    println!("\n  all proving after {:.1} s", started.elapsed().as_secs_f64());
    summary("  driver tick", " ms", ticks);
    summary("  dispatch latency", " ms", latencies);
}

fn api_load(sectors: usize, workers: usize, clients: usize, seconds: u64, held: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path());
    config.limits.commit = 16;
    // The simulated workers heartbeat every second, as told (faster is answered 429).
    config.workers.heartbeat_ms = 1_000;
    config.workers.lease_ms = 5_000;
    let parts = Parts {
        engine: Arc::new(SimEngine),
        verifier: Arc::new(SimVerifier),
        clock: Arc::new(SystemClock),
        store: None,
        chain: None,
    };
    let daemon = Daemon::start_with(&config, parts).unwrap();
    let base = format!("http://{}", daemon.addr());
    let admin = std::fs::read_to_string(config.data_dir.join("token")).unwrap().trim().to_string();
    let client = Client::from_repo(&config.data_dir).unwrap();
    // Workers offering another size: they heartbeat and get no task.
    let caps = serde_json::json!({"tasks": ["c2"], "slots": 1, "cores": 8, "memory_bytes": 68719476736u64,
        "gpus": [], "gpu_build": false, "params": [{"sector_size": "8MiB", "file": "p.params"}]});
    let tokens: Vec<String> = (0..workers)
        .map(|w| {
            let token = client.create_worker_token(&format!("w{w}")).unwrap().token;
            let body = serde_json::json!({"protocol": protocol::PROTOCOL_VERSION, "instance": format!("i{w}"),
                "url": "http://127.0.0.1:9", "version": "sim", "capabilities": caps});
            ureq::post(&format!("{base}/v0/worker/register"))
                .set("Authorization", &format!("Bearer {token}"))
                .send_json(body)
                .unwrap();
            token
        })
        .collect();
    for _ in 0..sectors.div_ceil(1000) {
        client.pledge((sectors.min(1000)) as u32).unwrap();
    }
    // The slow-loris: connections that send half a request and wait.
    let loris: Vec<std::net::TcpStream> = (0..held)
        .filter_map(|_| {
            let mut s = std::net::TcpStream::connect(daemon.addr()).ok()?;
            s.write_all(b"GET /v0/sectors HTTP/1.1\r\nHost: kiln\r\n").ok()?;
            Some(s)
        })
        .collect();
    println!(
        "API load: {sectors} sectors sealing, {workers} workers heartbeating, {} half-open connections, {clients} clients for {seconds} s",
        loris.len()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let heartbeats = {
        let (stop, errors, base) = (stop.clone(), errors.clone(), base.clone());
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let round = Instant::now();
                for (w, token) in tokens.iter().enumerate() {
                    let t = Instant::now();
                    let r = agent
                        .post(&format!("{base}/v0/worker/heartbeat"))
                        .set("Authorization", &format!("Bearer {token}"))
                        .send_json(serde_json::json!({"instance": format!("i{w}"), "running": []}));
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    if r.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_secs(1).saturating_sub(round.elapsed()));
            }
            lat
        })
    };
    let callers: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, errors, base, admin) = (stop.clone(), errors.clone(), base.clone(), admin.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
                let mut lat = Vec::new();
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let path = match i % 5 {
                        0 => "/chain/head".to_string(),
                        1 => "/status".to_string(),
                        2 => format!("/sectors/{}", 1 + i % sectors.max(1)),
                        3 => format!("/tasks?sector={}", 1 + i % sectors.max(1)),
                        _ => "/workers".to_string(),
                    };
                    let t = Instant::now();
                    let r = agent
                        .get(&format!("{base}/v0{path}"))
                        .set("Authorization", &format!("Bearer {admin}"))
                        .call();
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    if r.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let calls: Vec<f64> = callers.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let beats = heartbeats.join().unwrap();
    let proving =
        client.sectors().unwrap().iter().filter(|s| s.sector.lifecycle.state == SectorState::Proving).count();
    println!(
        "  {:.0} calls/s; {} errors; {proving} of {sectors} sectors proving",
        calls.len() as f64 / seconds as f64,
        errors.load(Ordering::Relaxed)
    );
    summary("  client call", " ms", calls);
    summary("  worker heartbeat", " ms", beats);
    drop(loris);
    daemon.stop();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we use.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let workers = env("WORKERS", 200);
    scheduler_scale(env("SECTORS", 10_000), workers);
    api_load(
        env("API_SECTORS", 2_000),
        workers,
        env("CLIENTS", 32),
        env("SECONDS", 10) as u64,
        env("HELD", 1_000),
    );
}
