//! The worker's state: its registration with the daemon, the tasks it holds,
//! and the threads that prove them and deliver the results.
//!
//! Every task type comes the same way (`POST /v0/tasks/{id}`, its envelope in
//! a header, its input as the body) and goes the same way (its result to the
//! daemon's result route). Its input is decoded and validated once, when it is
//! accepted (a bad one is refused with 400 before it takes a slot); the task's
//! thread then proves it without checking it again.

use crate::link::{Link, LinkError};
use crate::metrics::WorkerMetrics;
use proofs::post::PostProof;
use proofs::seal::c1::C1Output;
use proofs::snark::params::GrothParams;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{info, info_span, warn, Span};
use wire::error::ErrorKind;
use wire::worker::{
    Capabilities, HeartbeatRequest, RegisterRequest, RemoteTask, TaskEnvelope, WindowPostInput, WorkerInfo,
    WorkerTask, PROTOCOL_VERSION,
};

/// Why a task was not taken.
#[derive(Debug, thiserror::Error)]
pub enum TaskRefused {
    /// The body is not a valid input for its type.
    #[error("{0}")]
    Invalid(String),
    /// This worker lacks what the task needs.
    #[error("{0}")]
    Precondition(String),
    /// Every slot is taken.
    #[error("all {0} slot(s) are busy")]
    Busy(u32),
    /// The task id is already held.
    #[error("task {0} is already held by this worker")]
    Duplicate(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Proving,
    Reporting,
}

/// A task's work, run on its own thread: the result's bytes and the GPUs
/// that proved it (empty: the CPU, or not known).
type Job = Box<dyn FnOnce() -> Result<(Vec<u8>, Vec<String>), proofs::Error> + Send>;

struct Held {
    kind: RemoteTask,
    sector: Option<u64>,
    stage: Stage,
    accepted_ms: i64,
    cancelled: Arc<AtomicBool>,
}

/// Settings of a worker process.
pub struct NodeConfig {
    /// The daemon's API URL.
    pub miner: String,
    /// This worker's token.
    pub token: String,
    /// The URL the daemon reaches this worker at.
    pub url: String,
    /// Groth16 parameters.
    pub param_dir: PathBuf,
    /// What it offers.
    pub capabilities: Capabilities,
}

/// A running worker.
pub struct Node {
    config: NodeConfig,
    instance: String,
    link: Link,
    tasks: Mutex<HashMap<u64, Held>>,
    registered: AtomicBool,
    /// The worker's span: parent of every task's span.
    span: Span,
    /// Its Prometheus metrics.
    metrics: WorkerMetrics,
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Node {
    /// A worker with a fresh instance id, calling its daemon through `agent`;
    /// its tasks' spans are children of `span`.
    pub fn new(config: NodeConfig, agent: ureq::Agent, span: Span) -> Self {
        let metrics = WorkerMetrics::new(config.capabilities.slots, config.capabilities.gpus.len());
        Self {
            metrics,
            link: Link::new(&config.miner, &config.token, agent),
            instance: hex::encode(rand::random::<[u8; 8]>()),
            config,
            tasks: Mutex::new(HashMap::new()),
            registered: AtomicBool::new(false),
            span,
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<u64, Held>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The metrics now, in the exposition format.
    pub fn metrics(&self) -> String {
        self.metrics.scrape()
    }

    /// What `GET /v0/info` shows.
    pub fn info(&self) -> WorkerInfo {
        let mut tasks: Vec<WorkerTask> = self
            .held()
            .iter()
            .map(|(&id, h)| WorkerTask {
                id,
                kind: h.kind,
                sector: h.sector,
                state: match (h.stage, h.cancelled.load(Ordering::Relaxed)) {
                    (_, true) => "cancelled",
                    (Stage::Proving, false) => "proving",
                    (Stage::Reporting, false) => "reporting",
                }
                .into(),
                accepted_ms: h.accepted_ms,
            })
            .collect();
        tasks.sort_by_key(|t| t.id);
        WorkerInfo {
            protocol: PROTOCOL_VERSION,
            version: env!("CARGO_PKG_VERSION").into(),
            instance: self.instance.clone(),
            miner: self.config.miner.clone(),
            registered: self.registered.load(Ordering::Relaxed),
            capabilities: self.config.capabilities.clone(),
            tasks,
        }
    }

    /// Checks a task (its type offered here, its input decoded and valid,
    /// its parameters present, a slot free) and starts it on its own thread.
    pub fn accept(
        self: &Arc<Self>,
        id: u64,
        envelope: &TaskEnvelope,
        body: &[u8],
    ) -> Result<(), TaskRefused> {
        let kind = envelope.kind;
        if !self.config.capabilities.tasks.contains(&kind) {
            return Err(TaskRefused::Precondition(format!(
                "this worker does not offer {} tasks",
                kind.name()
            )));
        }
        let job = match kind {
            RemoteTask::C2 => self.c2_job(envelope, body)?,
            RemoteTask::WindowPost => self.window_post_job(envelope, body)?,
        };
        let cancelled = Arc::new(AtomicBool::new(false));
        {
            let mut held = self.held();
            if held.contains_key(&id) {
                return Err(TaskRefused::Duplicate(id));
            }
            let slots = self.config.capabilities.slots;
            if held.values().filter(|h| h.stage == Stage::Proving).count() >= slots as usize {
                return Err(TaskRefused::Busy(slots));
            }
            let entry = Held {
                kind,
                sector: envelope.sector,
                stage: Stage::Proving,
                accepted_ms: now_ms(),
                cancelled: cancelled.clone(),
            };
            held.insert(id, entry);
        }
        let node = self.clone();
        let span = info_span!(parent: &self.span, "task", task_id = id, kind = kind.name(), sector_id = envelope.sector);
        std::thread::Builder::new()
            .name(format!("{}-task-{id}", kind.name()))
            .spawn(move || span.in_scope(|| node.run_and_report(id, kind, job, &cancelled)))
            .map_err(|e| {
                self.held().remove(&id);
                TaskRefused::Precondition(format!("cannot start a task thread: {e}"))
            })?;
        Ok(())
    }

    /// A C2: the C1 output decoded and validated once, here (a bad one is
    /// refused before it takes a slot), then proved without checking it again.
    fn c2_job(&self, envelope: &TaskEnvelope, body: &[u8]) -> Result<Job, TaskRefused> {
        let c1 = C1Output::decode(body)
            .and_then(C1Output::validated)
            .map_err(|e| TaskRefused::Invalid(format!("C1 output: {e}")))?;
        let (size, sector) = (c1.identity.sector_size, c1.identity.sector_id);
        if size != envelope.sector_size || envelope.sector.is_some_and(|s| s != sector) {
            return Err(TaskRefused::Invalid(format!(
                "the C1 output is sector {sector} of {size}, the envelope says {:?} of {}",
                envelope.sector, envelope.sector_size
            )));
        }
        let params = self.params(GrothParams::porep(&self.config.param_dir, size))?;
        Ok(Box::new(move || {
            let proving = params.load_proving()?;
            let mut proof = proofs::snark::prove_valid(&c1, &proving)?;
            crate::failpoints::corrupt_proof(&mut proof);
            // C2 does not say which device proved it: no GPU attribution.
            Ok((proof, Vec::new()))
        }))
    }

    /// A Window PoSt partition's SNARK from its sectors' vanilla proofs.
    fn window_post_job(&self, envelope: &TaskEnvelope, body: &[u8]) -> Result<Job, TaskRefused> {
        let size = envelope.sector_size;
        let input = WindowPostInput::decode(body).map_err(TaskRefused::Invalid)?;
        let vanilla = input
            .vanilla
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                proofs::post::encoding::decode(size, bytes)
                    .map_err(|e| TaskRefused::Invalid(format!("vanilla proof {i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if vanilla.is_empty() {
            return Err(TaskRefused::Invalid("a Window PoSt of no sectors".into()));
        }
        let post = PostProof::window(size);
        let params = self.params(GrothParams::post(&self.config.param_dir, post))?;
        Ok(Box::new(move || {
            crate::failpoints::hang_window_post();
            let key = params.load_proving()?;
            let out = proofs::snark::post::prove(&post, &vanilla, &key)?;
            info!(sectors = vanilla.len(), gpus = ?out.gpus, "Window PoSt proved");
            Ok((out.bytes, out.gpus))
        }))
    }

    /// `params` if their files are here.
    fn params(&self, params: GrothParams) -> Result<GrothParams, TaskRefused> {
        if params.exist() {
            return Ok(params);
        }
        Err(TaskRefused::Precondition(format!(
            "no {} parameters in {} (expected {})",
            params.sector_size(),
            self.config.param_dir.display(),
            params.params_path().display()
        )))
    }

    fn run_and_report(&self, id: u64, kind: RemoteTask, job: Job, cancelled: &AtomicBool) {
        info!("task started");
        let timer = self.metrics.start(kind);
        let result = job();
        timer.finish(result.is_ok(), result.as_ref().map_or(&[][..], |(_, gpus)| &gpus[..]));
        match &result {
            Ok((bytes, _)) => info!(bytes = bytes.len(), "task finished"),
            Err(e) => warn!(error = %e, "task failed"),
        }
        if let Some(h) = self.held().get_mut(&id) {
            h.stage = Stage::Reporting;
        }
        // Deliver until the daemon takes it or says it is no longer wanted;
        // the daemon may be restarting, and the heartbeat keeps the lease alive.
        let mut wait = Duration::from_millis(200);
        while !cancelled.load(Ordering::Relaxed) {
            let sent = match &result {
                Ok((bytes, _)) => self.link.report_result(id, bytes),
                Err(e) => self.link.report_failure(id, &e.to_string()),
            };
            match sent {
                Ok(()) => {
                    info!("result delivered");
                    break;
                }
                // Kept until the daemon takes it: a restart, an overload or its own
                // failure (5xx) is waited out; only a definite refusal (4xx) drops it.
                Err(e) if e.is_retryable() => {
                    warn!(error = %e, "cannot deliver the result yet; retrying");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    warn!(error = %e, "the daemon does not want this result; dropped");
                    break;
                }
            }
        }
        self.held().remove(&id);
    }

    /// Drops task `id`: its result will not be delivered (a running proof
    /// cannot be interrupted, but its slot's result is thrown away).
    pub fn cancel(&self, id: u64) -> bool {
        match self.held().get(&id) {
            Some(h) => {
                h.cancelled.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn register(&self) -> Result<u64, LinkError> {
        let req = RegisterRequest {
            protocol: PROTOCOL_VERSION,
            instance: self.instance.clone(),
            url: self.config.url.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: self.config.capabilities.clone(),
        };
        let r = self.link.register(&req)?;
        info!(name = %r.name, daemon = %r.daemon_instance, heartbeat_ms = r.heartbeat_ms, "registered with the daemon");
        self.registered.store(true, Ordering::Relaxed);
        Ok(r.heartbeat_ms)
    }

    /// Marks every task held as cancelled: no result is delivered after this
    /// (one being delivered now may still arrive).
    pub fn abandon_all(&self) {
        for h in self.held().values() {
            h.cancelled.store(true, Ordering::Relaxed);
        }
    }

    /// Registers, then heartbeats until `stop` receives or its sender is
    /// dropped; registers again when the daemon forgets this worker or restarts.
    pub fn run_link(&self, stop: &Receiver<()>) {
        // Waits `d`; true when the link should stop.
        let stopped = |d: Duration| !matches!(stop.recv_timeout(d), Err(RecvTimeoutError::Timeout));
        let mut heartbeat = Duration::from_secs(2);
        let mut daemon: Option<String> = None;
        let mut last_problem = String::new();
        loop {
            if !self.registered.load(Ordering::Relaxed) {
                match self.register() {
                    Ok(ms) => {
                        heartbeat = Duration::from_millis(ms.max(100));
                        last_problem.clear();
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if text != last_problem {
                            warn!(error = %text, "cannot register; retrying");
                            last_problem = text;
                        }
                        if stopped(Duration::from_secs(1)) {
                            return;
                        }
                        continue;
                    }
                }
            }
            let running: Vec<u64> = self.held().keys().copied().collect();
            match self.link.heartbeat(&HeartbeatRequest { instance: self.instance.clone(), running }) {
                Ok(r) => {
                    last_problem.clear();
                    for id in r.drop {
                        if self.cancel(id) {
                            warn!(task = id, "the daemon dropped this task; its result will be discarded");
                        }
                    }
                    if daemon.as_ref().is_some_and(|d| *d != r.daemon_instance) {
                        info!("the daemon restarted; registering again");
                        self.registered.store(false, Ordering::Relaxed);
                    }
                    daemon = Some(r.daemon_instance);
                }
                Err(LinkError::Refused { kind: ErrorKind::NotRegistered, .. }) => {
                    info!("the daemon does not know this worker; registering again");
                    self.registered.store(false, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    let text = e.to_string();
                    if text != last_problem {
                        warn!(error = %text, "heartbeat failed; retrying");
                        last_problem = text;
                    }
                }
            }
            if stopped(heartbeat) {
                return;
            }
        }
    }

    /// The dispatch key the daemon must present.
    pub fn dispatch_key(&self) -> String {
        wire::worker::dispatch_key(&self.config.token)
    }
}
