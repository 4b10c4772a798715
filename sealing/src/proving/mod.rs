//! Proving: the daemon's Window and Winning PoSt, driven by the chain's
//! deadlines and elections.
//!
//! The prover runs on its own thread, beside the sealing driver, so a PoSt
//! never waits behind queued PC1 or C2 work; while one runs, the driver starts
//! no new local sealing task ([`ProvingGate`]). Each tick it
//!
//! 1. proves every partition of the open deadline window that has no pending
//!    or accepted SubmitWindowedPoSt on chain (so a restarted daemon proves
//!    again while the window is open, and never submits twice), leaving out
//!    sectors whose files fail and listing them as skipped;
//! 2. checks the sectors of the windows opening within
//!    `proving.check_ahead_epochs` and declares faults for unreadable ones and
//!    recoveries for faulty ones that read again (`kiln proving check`);
//! 3. answers won elections with a Winning PoSt.
//!
//! Window PoSt comes first. A Winning PoSt waits while a window's PoSt is
//! due or running, or when a window opens before it would be done; one that
//! cannot land in its election's window (by the time the last ones took) is
//! not started. A Window PoSt SNARK sent to a worker is waited for only as
//! long as the window leaves time to prove it here after all.
//!
//! Every run is recorded with its timings ([`crate::store::PostRun`]) and,
//! once the chain has executed its message, what the chain made of it.

use crate::chain::{
    ChainError, DeadlineWindow, Message, MessageId, ProvingSchedule, ProvingSectorOnChain, RandomnessKind,
    SectorHealth,
};
use crate::config::ProvingConfig;
use crate::ledger::SharedLedger;
use crate::pipeline::{close_task, PipelineConfig, ProvingGate};
use crate::store::{PostRun, RunFault, TaskKind, TaskState};
use crate::workers::dispatch::Dispatcher;
use crate::workers::scheduler::worker_state;
use proofs::post::challenges::{mask_randomness, winning_sector_index};
use proofs::post::vanilla::{self, ProvingSector, ReadLimits, Vanilla};
use proofs::post::{encoding, PostProof};
use proofs::snark::params::GrothParams;
use proofs::snark::post as snark;
use proofs::Randomness;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, info_span, warn};
pub use wire::api::SectorCheck;
use wire::api::WorkerState;
use wire::worker::{RemoteTask, TaskEnvelope, WindowPostInput};

/// How a wait for a worker's result ended.
enum Awaited {
    /// Its worker reported (a result or a failure).
    Reported(crate::store::TaskRow),
    /// Closed meanwhile, and why (its worker re-registered, its token was revoked).
    Closed(String),
    /// Nothing in the time the window allows.
    Late,
}

/// Errors of a proving tick (each is logged; the next tick tries again).
#[derive(Debug, thiserror::Error)]
pub enum ProvingError {
    /// The chain.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The proof core (parameters, SNARK).
    #[error(transparent)]
    Proofs(#[from] proofs::Error),
}

impl ProvingError {
    /// This process out of file descriptors: nothing about the sectors or
    /// the proof, so the attempt does not count and is made again.
    pub fn is_out_of_descriptors(&self) -> bool {
        matches!(self, Self::Proofs(e) if e.is_out_of_descriptors())
    }
}

/// What the Window PoSt side has ahead, for the Winning PoSt thread to keep
/// out of its way.
#[derive(Clone, Copy, Debug, Default)]
struct WindowOutlook {
    /// A partition of the open window is being proven or still due.
    busy: bool,
    /// When the next window with sectors to prove opens (ms since the Unix epoch).
    next_open_ms: Option<i64>,
}

/// How long PoSts took lately: the longest of the last few of each.
#[derive(Debug, Default)]
struct Timings {
    /// A Window PoSt SNARK proved here (ms).
    window_snark: std::collections::VecDeque<u64>,
    /// A whole Winning PoSt, vanilla and SNARK (ms).
    winning: std::collections::VecDeque<u64>,
}

impl Timings {
    const KEPT: usize = 3;

    fn from_runs(runs: &[PostRun]) -> Self {
        let mut t = Self::default();
        // Oldest first, so the newest stay.
        for r in runs.iter().rev() {
            match r.kind.as_str() {
                "window" if r.error.is_none() && r.prover.starts_with("local") && !r.proven.is_empty() => {
                    Self::push(&mut t.window_snark, r.snark_ms)
                }
                // Proved, whether sent or too late to send.
                "winning" if r.snark_ms > 0 => Self::push(&mut t.winning, r.vanilla_ms + r.snark_ms),
                _ => {}
            }
        }
        t
    }

    fn push(q: &mut std::collections::VecDeque<u64>, ms: u64) {
        if q.len() == Self::KEPT {
            q.pop_front();
        }
        q.push_back(ms);
    }

    fn longest(q: &std::collections::VecDeque<u64>) -> Option<u64> {
        q.iter().copied().max()
    }
}

/// What the prover's threads share.
#[derive(Clone)]
struct ProverCore {
    ledger: SharedLedger,
    layout: PipelineConfig,
    param_dir: PathBuf,
    /// Reaches workers for Window PoSt SNARKs.
    dispatcher: Option<Arc<dyn Dispatcher>>,
    gate: ProvingGate,
    outlook: Arc<std::sync::Mutex<WindowOutlook>>,
    timings: Arc<std::sync::Mutex<Timings>>,
}

/// The daemon's prover. Window PoSts and checks run on its thread; Winning
/// PoSts on a thread of their own, so a won election never delays a window.
pub struct Prover {
    core: ProverCore,
    /// The thread answering elections, while it runs.
    winning: Option<std::thread::JoinHandle<()>>,
    /// Won elections not yet handed to it.
    elections: Vec<u64>,
    /// Windows (by open epoch) whose sectors were checked ahead.
    checked: HashSet<u64>,
    /// Attempts per (window open, partition): a rejected proof is
    /// retried a few times, not every tick.
    attempts: HashMap<(u64, u64), u32>,
    /// The next election epoch to look at.
    next_election: Option<u64>,
    /// When receipts of sent PoSts were last looked for (ms).
    receipts_ms: Option<i64>,
}

const MAX_ATTEMPTS: u32 = 3;

impl Prover {
    /// A prover of the sectors in `layout`'s data directory, with its
    /// proving settings.
    pub fn new(ledger: SharedLedger, layout: PipelineConfig, param_dir: PathBuf, gate: ProvingGate) -> Self {
        // Earlier runs tell how long PoSts take here, from the first tick on.
        let runs = ledger.store().post_runs(50).unwrap_or_default();
        let timings = Arc::new(std::sync::Mutex::new(Timings::from_runs(&runs)));
        Self {
            core: ProverCore {
                ledger,
                layout,
                param_dir,
                dispatcher: None,
                gate,
                outlook: Default::default(),
                timings,
            },
            winning: None,
            elections: Vec::new(),
            checked: HashSet::new(),
            attempts: HashMap::new(),
            next_election: None,
            receipts_ms: None,
        }
    }

    /// Sends Window PoSt SNARKs to workers that take them
    /// (`[proving] remote_snark`) through `dispatcher`.
    pub fn with_dispatcher(mut self, dispatcher: Arc<dyn Dispatcher>) -> Self {
        self.core.dispatcher = Some(dispatcher);
        self
    }

    /// Ticks every `interval` until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool, interval: Duration) {
        let mut last_error = None;
        while !stop.load(Ordering::Relaxed) {
            // Logged when it starts or changes, not every tick.
            let error = self.tick().err().map(|e| e.to_string());
            if error.is_some() && error != last_error {
                warn!(error = error.as_deref().unwrap_or_default(), "proving tick failed");
            }
            last_error = error;
            let until = Instant::now() + interval;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20).min(interval));
            }
        }
        if let Some(w) = self.winning.take() {
            let _ = w.join();
        }
    }

    /// One pass: the receipts of sent PoSts, the open window, the checks
    /// ahead, the elections.
    pub fn tick(&mut self) -> Result<(), ProvingError> {
        let ledger = self.core.ledger.clone();
        let chain = ledger.chain();
        let now = ledger.now_ms();
        self.record_receipts(now);
        let head = chain.head(now)?;
        let schedule = chain.proving_schedule();
        let sectors = chain.proving_sectors(now)?;
        if sectors.is_empty() {
            *relock(&self.core.outlook) = WindowOutlook::default();
            self.next_election = Some(head + 1);
            return Ok(());
        }

        let window = schedule.current(head);
        let due: Vec<(u64, Vec<&ProvingSectorOnChain>)> = due_partitions(&sectors, &window)
            .into_iter()
            .filter(|(p, _)| self.attempts.get(&(window.open, *p)).copied().unwrap_or(0) < MAX_ATTEMPTS)
            .collect();
        let next_open_ms = next_window_open(&schedule, head, &sectors).map(|open| chain.epoch_start_ms(open));
        for (partition, members) in due {
            let key = (window.open, partition);
            if chain.find_post_message(window.open, partition, now)?.is_some() {
                continue;
            }
            *relock(&self.core.outlook) = WindowOutlook { busy: true, next_open_ms };
            // Counted whether or not it gets sent: a proof the chain keeps
            // rejecting, or a missing parameter file, is not retried every tick.
            *self.attempts.entry(key).or_default() += 1;
            if let Err(e) = self.core.window_post(&window, partition, &members) {
                warn!(deadline = window.deadline, partition, error = %e, "Window PoSt failed");
                if e.is_out_of_descriptors() {
                    // Not the proof's fault: tried again next tick, as often as it takes.
                    *self.attempts.entry(key).or_default() -= 1;
                }
            }
        }
        *relock(&self.core.outlook) = WindowOutlook { busy: false, next_open_ms };
        self.attempts.retain(|(open, _), _| *open + schedule.window > head);

        for n in 1..=schedule.deadlines {
            let upcoming = schedule.nth(head / schedule.window + n);
            if upcoming.open > head + self.core.layout.proving.check_ahead_epochs {
                break;
            }
            if !self.checked.contains(&upcoming.open) {
                // Marked only once done: a check that failed (out of descriptors) runs again.
                self.core.check_ahead(&upcoming, &sectors)?;
                self.checked.insert(upcoming.open);
            }
        }
        self.checked.retain(|&open| open > head);

        if self.core.layout.proving.winning {
            let from = self.next_election.unwrap_or(0).max(head.saturating_sub(schedule.winning_window) + 1);
            self.elections.extend((from..=head).filter(|&e| chain.won_election(e)));
            self.next_election = Some(head + 1);
            let idle = self.winning.as_ref().is_none_or(|h| h.is_finished());
            if idle && !self.elections.is_empty() {
                if let Some(done) = self.winning.take() {
                    let _ = done.join();
                }
                let epochs = std::mem::take(&mut self.elections);
                let core = self.core.clone();
                let spawned = std::thread::Builder::new().name("kiln-winning".into()).spawn(move || {
                    for epoch in epochs {
                        if let Err(e) = core.answer_election(epoch) {
                            warn!(epoch, error = %e, "Winning PoSt failed");
                        }
                    }
                });
                match spawned {
                    Ok(handle) => self.winning = Some(handle),
                    Err(e) => warn!(error = %e, "cannot start the Winning PoSt thread"),
                }
            }
        }
        Ok(())
    }

    /// Records what the chain made of the PoSts sent (once a second): a
    /// refused one shows as refused, not as sent.
    fn record_receipts(&mut self, now: i64) {
        if self.receipts_ms.is_some_and(|t| now - t < 1_000) {
            return;
        }
        self.receipts_ms = Some(now);
        let ledger = &self.core.ledger;
        let awaiting = match ledger.store().runs_awaiting_receipt() {
            Ok(runs) => runs,
            Err(e) => return warn!(error = %e, "cannot list PoSt runs awaiting receipts"),
        };
        for (run, message) in awaiting {
            let receipt = match ledger.chain().receipt(&message, now) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => return warn!(run, error = %e, "cannot read a PoSt's receipt"),
            };
            if receipt.exit_code != 0 {
                warn!(
                    run,
                    %message,
                    exit_code = receipt.exit_code,
                    error = receipt.error.as_deref(),
                    "the chain refused a PoSt"
                );
            }
            if let Err(e) = ledger.store().set_run_receipt(run, receipt.exit_code, receipt.error.as_deref()) {
                warn!(run, error = %e, "cannot record a PoSt's receipt");
            }
        }
    }
}

fn relock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The open epoch of the next window (after the one open at `head`) with a
/// sector to prove, within a proving period.
fn next_window_open(schedule: &ProvingSchedule, head: u64, sectors: &[ProvingSectorOnChain]) -> Option<u64> {
    (1..=schedule.deadlines).map(|n| schedule.nth(head / schedule.window + n)).find_map(|w| {
        sectors
            .iter()
            .any(|s| {
                s.deadline == w.deadline && s.health != SectorHealth::Faulty && s.activation <= w.challenge
            })
            .then_some(w.open)
    })
}

impl ProverCore {
    /// Records `run` as failed, for `why` (before or instead of its message).
    fn record_failure(&self, mut run: PostRun, why: impl std::fmt::Display) -> Result<(), ProvingError> {
        run.error = Some(why.to_string());
        self.ledger.store().record_post_run(&run)?;
        Ok(())
    }

    /// Records `run` with what sending its message gave: the message, or why
    /// it was not sent.
    fn record_sent(
        &self,
        run: &mut PostRun,
        sent: Result<MessageId, ChainError>,
    ) -> Result<MessageId, ProvingError> {
        run.message = sent.as_ref().ok().cloned();
        run.error = sent.as_ref().err().map(|e| e.to_string());
        self.ledger.store().record_post_run(run)?;
        Ok(sent?)
    }

    fn limits(&self) -> ReadLimits {
        read_limits(&self.layout.proving)
    }

    fn proving_sector(&self, s: &ProvingSectorOnChain) -> ProvingSector {
        ProvingSector::in_dir(s.sector, s.comm_r, &self.layout.sector_dir(s.sector))
    }

    /// Proves one partition of the open window and sends the proof.
    fn window_post(
        &self,
        window: &DeadlineWindow,
        partition: u64,
        members: &[&ProvingSectorOnChain],
    ) -> Result<(), ProvingError> {
        let _span =
            info_span!("window_post", deadline = window.deadline, open = window.open, partition).entered();
        let chain = self.ledger.chain();
        let size = members[0].sector_size;
        let post = PostProof::window(size);
        let started_ms = self.ledger.now_ms();
        // The chain's randomness, masked into the field as Lotus does before proving.
        let randomness =
            mask_randomness(&chain.randomness(RandomnessKind::WindowPost, window.challenge, started_ms)?);
        let proving: Vec<ProvingSector> = members.iter().map(|s| self.proving_sector(s)).collect();
        let t = Instant::now();
        // Local sealing waits while this node reads and proves, not while a worker does.
        let van = {
            let _gate = self.gate.enter();
            vanilla::generate(&post, &randomness, &proving, self.limits())?
        };
        let vanilla_ms = t.elapsed().as_millis() as u64;
        let skipped: Vec<u64> = van.faults.iter().map(|f| f.sector_id).collect();
        let mut run = run_record("window", started_ms, vanilla_ms, &van);
        (run.deadline, run.open_epoch, run.partition) =
            (Some(window.deadline), Some(window.open), Some(partition));
        let t = Instant::now();
        let proof = if van.proofs.is_empty() {
            Ok(Vec::new())
        } else {
            match self.prove_remote(&post, &randomness, &van, &mut run, window) {
                Some(proof) => Ok(proof),
                None => {
                    let _gate = self.gate.enter();
                    let t = Instant::now();
                    let proof = self.prove(&post, &van, &mut run);
                    if proof.is_ok() {
                        Timings::push(
                            &mut relock(&self.timings).window_snark,
                            t.elapsed().as_millis() as u64,
                        );
                    }
                    proof
                }
            }
        };
        run.snark_ms = t.elapsed().as_millis() as u64;
        let proof = match proof {
            Ok(p) => p,
            Err(e) => {
                self.record_failure(run, &e)?;
                return Err(e);
            }
        };
        crate::failpoints::crash_point!("wdpost:proved-unsent");
        let message = Message::SubmitWindowedPoSt {
            deadline: window.deadline,
            open_epoch: window.open,
            partition,
            skipped: skipped.clone(),
            proof,
        };
        let sent = chain.send(&message, self.ledger.now_ms());
        let id = self.record_sent(&mut run, sent)?;
        info!(message = %id, proven = run.proven.len(), ?skipped, vanilla_ms, snark_ms = run.snark_ms, "Window PoSt sent");
        Ok(())
    }

    fn prove(&self, post: &PostProof, van: &Vanilla, run: &mut PostRun) -> Result<Vec<u8>, ProvingError> {
        let params = GrothParams::post(&self.param_dir, *post).load_proving()?;
        let out = snark::prove(post, &van.proofs, &params)?;
        run.prover =
            if out.gpus.is_empty() { "local".into() } else { format!("local GPU {}", out.gpus.join(", ")) };
        Ok(out.bytes)
    }

    /// The SNARK of a Window PoSt from an online worker that takes them (one
    /// proving on GPUs first), checked here before use; `None` (and the daemon
    /// proves it) when there is none, or it fails, is late or is wrong.
    /// The wait is capped so that the window leaves time to prove here after
    /// all: until the last moment to send (the start of the window's last
    /// epoch) less one and a half times the last local SNARKs' time (half the
    /// time left before any was measured); with under a second left, no worker
    /// is asked. Benched workers are not asked; a failed or late one is charged.
    fn prove_remote(
        &self,
        post: &PostProof,
        randomness: &Randomness,
        van: &Vanilla,
        run: &mut PostRun,
        window: &DeadlineWindow,
    ) -> Option<Vec<u8>> {
        let dispatcher = self.dispatcher.as_ref().filter(|_| self.layout.proving.remote_snark)?;
        let size = post.sector_size();
        let now = self.ledger.now_ms();
        let send_by = self.ledger.chain().epoch_start_ms(window.close.saturating_sub(1));
        let local = Timings::longest(&relock(&self.timings).window_snark);
        let Some(wait_ms) = remote_wait_ms(now, send_by, local, self.layout.proving.remote_timeout_ms) else {
            info!(
                left_ms = send_by - now,
                local_snark_ms = local,
                "no time to wait for a worker in this window; proving here"
            );
            return None;
        };
        let (worker, key) = {
            let store = self.ledger.store();
            let workers = store.workers().ok()?;
            let worker = workers
                .into_iter()
                .filter(|w| worker_state(w, now, self.layout.workers.lease_ms) == WorkerState::Online)
                .filter(|w| w.capabilities.proves_window_post(size))
                .min_by_key(|w| (!w.capabilities.proves_on_gpu(size), w.name.clone()))?;
            let key = store.dispatch_key(&worker.name).ok()?;
            (worker, key)
        };
        let input = WindowPostInput {
            randomness: *randomness,
            vanilla: van.proofs.iter().map(|p| encoding::encode(size, p)).collect(),
        };
        let envelope = TaskEnvelope { kind: RemoteTask::WindowPost, sector_size: size, sector: None };
        let lease = now + self.layout.workers.lease_ms as i64;
        let started =
            self.ledger.store().start_task(None, TaskKind::WindowPost, Some(&worker.name), Some(lease), now);
        let task = match started {
            Ok(id) => id,
            Err(e) => {
                warn!(error = %e, "cannot record a Window PoSt task; proving here");
                return None;
            }
        };
        let _span = info_span!("remote_snark", task, worker = %worker.name).entered();
        // Charged like a failed C2: a worker that hangs or fails PoSts is benched.
        let fallback = |state: TaskState, why: String, charge: bool| {
            warn!(worker = %worker.name, %why, "Window PoSt SNARK on the worker failed; proving here");
            close_task(&self.ledger, task, state, Some(&why));
            let now = self.ledger.now_ms();
            if charge {
                let charged =
                    self.ledger.store().charge_worker(&worker.name, &format!("Window PoSt: {why}"), now);
                if let Err(e) = charged {
                    warn!(worker = %worker.name, error = %e, "cannot charge the worker");
                }
            }
            None
        };
        // A worker too busy to take it in time fails this window like one that is late.
        if let Err(e) = dispatcher.send_task(&worker.url, &key, task, &envelope, &input.encode()) {
            return fallback(TaskState::Failed, e.to_string(), !e.is_local());
        }
        if let Err(e) = self.ledger.store().task_handed_over(task, lease, self.ledger.now_ms()) {
            warn!(error = %e, "cannot renew the lease; the worker's heartbeat will");
        }
        let reported = match self.await_result(task, Instant::now() + Duration::from_millis(wait_ms)) {
            Awaited::Reported(row) => row,
            Awaited::Late => {
                // Its next heartbeat is told to drop it.
                return fallback(TaskState::Expired, format!("no result within {wait_ms} ms"), true);
            }
            Awaited::Closed(why) => {
                warn!(%why, "the Window PoSt task ended without a result; proving here");
                return None;
            }
        };
        let output = match self.ledger.store().task_result(task) {
            Ok(Some(output)) => output,
            Ok(None) => {
                let why = reported.error.unwrap_or_else(|| "no reason given".into());
                return fallback(TaskState::Failed, format!("the worker failed: {why}"), true);
            }
            Err(e) => return fallback(TaskState::Failed, format!("cannot read the result: {e}"), false),
        };
        let bytes = match output.read(RemoteTask::WindowPost.max_result_bytes()) {
            Ok(bytes) => bytes,
            Err(e) => return fallback(TaskState::Failed, e, false),
        };
        let public: Vec<(u64, proofs::Commitment)> =
            van.proofs.iter().map(|p| (p.sector_id, p.comm_r)).collect();
        let valid = GrothParams::post(&self.param_dir, *post)
            .load_verifying_key()
            .and_then(|vk| snark::verify(post, randomness, &public, &bytes, &vk));
        match valid {
            Ok(true) => {
                run.prover = worker.name.clone();
                close_task(&self.ledger, task, TaskState::Done, None);
                if let Err(e) = self.ledger.store().worker_delivered(&worker.name) {
                    warn!(worker = %worker.name, error = %e, "cannot clear the worker's failures");
                }
                info!(worker = %worker.name, "Window PoSt SNARK from the worker");
                Some(bytes)
            }
            Ok(false) => {
                let why = "returned a Window PoSt that does not verify";
                let _ = self.ledger.store().mark_worker_unhealthy(&worker.name, why);
                fallback(TaskState::Rejected, why.into(), true)
            }
            // This node's failure (its verifying key): not the worker's.
            Err(e) => fallback(TaskState::Failed, format!("cannot verify its proof: {e}"), false),
        }
    }

    /// Waits for remote task `task` to be reported, until `deadline`.
    fn await_result(&self, task: u64, deadline: Instant) -> Awaited {
        loop {
            match self.ledger.store().task(task) {
                Ok(Some(row)) if row.state == TaskState::Reported => return Awaited::Reported(row),
                Ok(Some(row)) if !row.state.is_open() => {
                    let why = row.error.unwrap_or_else(|| format!("it is {}", row.state.name()));
                    return Awaited::Closed(why);
                }
                Ok(None) => return Awaited::Closed("its record is gone".into()),
                Ok(Some(_)) => {}
                Err(e) => warn!(error = %e, "cannot read the task; waiting on"),
            }
            if Instant::now() >= deadline {
                return Awaited::Late;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Checks the sectors of a window about to open; declares what changed.
    fn check_ahead(
        &self,
        window: &DeadlineWindow,
        sectors: &[ProvingSectorOnChain],
    ) -> Result<(), ProvingError> {
        let _span = info_span!("proving_check", deadline = window.deadline, open = window.open).entered();
        let members: Vec<&ProvingSectorOnChain> =
            sectors.iter().filter(|s| s.deadline == window.deadline).collect();
        if members.is_empty() {
            return Ok(());
        }
        let checks = check_sectors(&self.layout, &members)?;
        for c in &checks {
            self.ledger.metrics().sector_checked(c.ms as f64 / 1e3, c.fault.is_some());
        }
        let newly_faulty: Vec<u64> = checks
            .iter()
            .filter(|c| c.fault.is_some() && c.health != SectorHealth::Faulty)
            .map(|c| c.sector)
            .collect();
        let recovered: Vec<u64> = checks
            .iter()
            .filter(|c| c.fault.is_none() && c.health == SectorHealth::Faulty)
            .map(|c| c.sector)
            .collect();
        let chain = self.ledger.chain();
        for (sectors, message) in [
            (&newly_faulty, Message::DeclareFaults { sectors: newly_faulty.clone() }),
            (&recovered, Message::DeclareFaultsRecovered { sectors: recovered.clone() }),
        ] {
            if !sectors.is_empty() {
                let id = chain.send(&message, self.ledger.now_ms())?;
                self.ledger.metrics().declared(&message, sectors.len());
                info!(message = %id, ?sectors, method = message.method(), "declared");
            }
        }
        Ok(())
    }

    /// Answers the election of `epoch` unless it is answered or too late.
    /// Window PoSt comes first: while a window's PoSt is due or running, or a
    /// window would open before this one is done, it waits; if by the time
    /// the last Winning PoSts took it can no longer land in its window, it is
    /// not started (and recorded so).
    fn answer_election(&self, epoch: u64) -> Result<(), ProvingError> {
        let chain = self.ledger.chain();
        let limit = epoch + chain.proving_schedule().winning_window;
        // Sent before the start of epoch `limit`, it lands by `limit`.
        let send_by = chain.epoch_start_ms(limit);
        let mut waited = false;
        loop {
            let now = self.ledger.now_ms();
            if chain.head(now)? >= limit {
                warn!(epoch, "a won election went unanswered: too late");
                return Ok(());
            }
            if chain.elections(epoch, epoch, now)?.first().is_some_and(|e| e.sector.is_some()) {
                return Ok(());
            }
            let takes = Timings::longest(&relock(&self.timings).winning);
            if let Some(ms) = takes.filter(|&ms| now.saturating_add(ms as i64) > send_by) {
                let why = format!(
                    "not started: a Winning PoSt takes about {ms} ms here and had to be sent within {} ms \
                     to land by epoch {limit}",
                    send_by.saturating_sub(now).max(0)
                );
                warn!(epoch, %why, "Winning PoSt skipped");
                let mut run = run_record("winning", now, 0, &Vanilla::default());
                run.election = Some(epoch);
                return self.record_failure(run, why);
            }
            let outlook = *relock(&self.outlook);
            let in_the_way = outlook.busy
                || outlook
                    .next_open_ms
                    .is_some_and(|open| open > now && open < now.saturating_add(takes.unwrap_or(0) as i64));
            if !in_the_way {
                if waited {
                    info!(epoch, "the Window PoSt is done; proving the Winning PoSt");
                }
                return self.winning_post(epoch);
            }
            if !waited {
                info!(epoch, "a Window PoSt comes first; the Winning PoSt waits");
                waited = true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Proves and sends the Winning PoSt of the election of `epoch`.
    fn winning_post(&self, epoch: u64) -> Result<(), ProvingError> {
        let _span = info_span!("winning_post", epoch).entered();
        let _gate = self.gate.enter();
        let chain = self.ledger.chain();
        // The chain's own set for this election: the one it checks the proof against.
        let eligible = chain.election_sectors(epoch, self.ledger.now_ms())?;
        if eligible.is_empty() {
            warn!("won an election with no eligible sector");
            return Ok(());
        }
        let started_ms = self.ledger.now_ms();
        let randomness =
            mask_randomness(&chain.randomness(RandomnessKind::WinningPost, epoch, started_ms)?);
        let prover_id = self.layout.prover_id;
        let index = winning_sector_index(&prover_id, &randomness, eligible.len() as u64)?;
        let chosen = &eligible[index as usize];
        let post = PostProof::winning(chosen.sector_size);
        let t = Instant::now();
        let van = vanilla::generate(&post, &randomness, &[self.proving_sector(chosen)], self.limits())?;
        let mut run = run_record("winning", started_ms, t.elapsed().as_millis() as u64, &van);
        run.election = Some(epoch);
        if !van.faults.is_empty() {
            warn!(sector = chosen.sector, reason = %van.faults[0].reason, "the chosen sector cannot be proven");
            return self.record_failure(run, format!("sector {} is faulty", chosen.sector));
        }
        let t = Instant::now();
        let proof = self.prove(&post, &van, &mut run);
        run.snark_ms = t.elapsed().as_millis() as u64;
        let proof = match proof {
            Ok(p) => p,
            Err(e) => {
                self.record_failure(run, &e)?;
                return Err(e);
            }
        };
        Timings::push(&mut relock(&self.timings).winning, run.vanilla_ms + run.snark_ms);
        // A proof that would land after the election's window is not sent.
        let now = self.ledger.now_ms();
        let limit = epoch + chain.proving_schedule().winning_window;
        if chain.head(now)? >= limit {
            warn!(limit, snark_ms = run.snark_ms, "Winning PoSt proved too late; not sent");
            return self.record_failure(run, format!("proved too late: it had to land by epoch {limit}"));
        }
        let sent = chain.send(&Message::SubmitWinningPoSt { epoch, sector: chosen.sector, proof }, now);
        let id = self.record_sent(&mut run, sent)?;
        info!(message = %id, sector = chosen.sector, snark_ms = run.snark_ms, "Winning PoSt sent");
        Ok(())
    }
}

/// How long a worker's Window PoSt SNARK may be waited for at `now`, when the
/// proof must be sent by `send_by` and proving it here takes `local_ms` (the
/// longest of the last few; unknown: half the time left is kept for it): the
/// time left less one and a half times `local_ms`, at most `timeout_ms`;
/// `None` under a second.
fn remote_wait_ms(now: i64, send_by: i64, local_ms: Option<u64>, timeout_ms: u64) -> Option<u64> {
    let left = send_by.saturating_sub(now);
    let budget = match local_ms {
        Some(ms) => left.saturating_sub((ms.min(i64::MAX as u64) as i64).saturating_mul(3) / 2),
        None => left / 2,
    };
    let wait = budget.min(timeout_ms.min(i64::MAX as u64) as i64);
    (wait >= 1_000).then_some(wait as u64)
}

fn read_limits(config: &ProvingConfig) -> ReadLimits {
    ReadLimits { parallel: config.read_parallel, timeout: Duration::from_millis(config.sector_timeout_ms) }
}

/// Reads each sector's files at fresh random challenges (what a Window PoSt
/// reads): `kiln proving check`, and the check ahead of each window.
pub fn check_sectors(
    layout: &PipelineConfig,
    members: &[&ProvingSectorOnChain],
) -> Result<Vec<SectorCheck>, ProvingError> {
    let mut out = Vec::with_capacity(members.len());
    for s in members {
        let randomness = mask_randomness(&Randomness(rand::random()));
        let sector = ProvingSector::in_dir(s.sector, s.comm_r, &layout.sector_dir(s.sector));
        let t = Instant::now();
        let van = vanilla::generate(
            &PostProof::window(s.sector_size),
            &randomness,
            std::slice::from_ref(&sector),
            read_limits(&layout.proving),
        )?;
        out.push(SectorCheck {
            sector: s.sector,
            health: s.health,
            fault: van.faults.first().map(|f| f.reason.clone()),
            ms: t.elapsed().as_millis() as u64,
        });
    }
    out.sort_by_key(|c| c.sector);
    Ok(out)
}

/// The partitions of `window`'s deadline with sectors to prove in it.
fn due_partitions<'a>(
    sectors: &'a [ProvingSectorOnChain],
    window: &DeadlineWindow,
) -> BTreeMap<u64, Vec<&'a ProvingSectorOnChain>> {
    let mut out: BTreeMap<u64, Vec<&ProvingSectorOnChain>> = BTreeMap::new();
    for s in sectors {
        if s.deadline == window.deadline
            && s.activation <= window.challenge
            && s.health != SectorHealth::Faulty
        {
            out.entry(s.partition).or_default().push(s);
        }
    }
    out
}

fn run_record(kind: &str, started_ms: i64, vanilla_ms: u64, van: &Vanilla) -> PostRun {
    PostRun {
        id: 0,
        kind: kind.into(),
        deadline: None,
        open_epoch: None,
        partition: None,
        election: None,
        started_ms,
        vanilla_ms,
        snark_ms: 0,
        proven: van.proofs.iter().map(|p| p.sector_id).collect(),
        faults: van
            .faults
            .iter()
            .map(|f| RunFault { sector: f.sector_id, reason: f.reason.clone() })
            .collect(),
        prover: "local".into(),
        message: None,
        error: None,
        exit_code: None,
        receipt_error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 60 s remote timeout no longer outlasts a 20 s window: the wait ends
    /// where proving here still lands in time (it waited the whole timeout,
    /// proved here after the window closed, and the sector went faulty).
    #[test]
    fn the_wait_for_a_worker_leaves_time_to_prove_here() {
        // 20 s left, a local SNARK takes 4 s: 20 - 6 = 14 s at most.
        assert_eq!(remote_wait_ms(0, 20_000, Some(4_000), 60_000), Some(14_000));
        // Nothing measured yet: half the time left.
        assert_eq!(remote_wait_ms(0, 20_000, None, 60_000), Some(10_000));
        // The configured timeout, when shorter.
        assert_eq!(remote_wait_ms(0, 20_000, Some(4_000), 3_000), Some(3_000));
        // Too little left: prove here at once.
        assert_eq!(remote_wait_ms(0, 6_500, Some(4_000), 60_000), None);
        assert_eq!(remote_wait_ms(25_000, 20_000, None, 60_000), None);
    }

    #[test]
    fn timings_keep_the_longest_of_the_last_runs() {
        let run = |kind: &str, prover: &str, snark_ms, error: Option<&str>| PostRun {
            snark_ms,
            prover: prover.into(),
            error: error.map(Into::into),
            message: Some(MessageId::from(1)),
            proven: vec![1],
            vanilla_ms: 10,
            ..run_record(kind, 0, 0, &Vanilla::default())
        };
        // Newest first, as the store lists them.
        let runs = [
            run("winning", "local", 900, Some("proved too late: it had to land by epoch 9")),
            run("window", "w1", 50, None),
            run("window", "local", 400, None),
            run("winning", "local", 300, None),
            run("window", "local", 7_000, Some("send failed")),
        ];
        let t = Timings::from_runs(&runs);
        assert_eq!(Timings::longest(&t.window_snark), Some(400), "local, proved and sent");
        assert_eq!(Timings::longest(&t.winning), Some(910), "a late one counts: it was proved");
        let mut q = std::collections::VecDeque::new();
        for ms in [5, 1, 2, 3] {
            Timings::push(&mut q, ms);
        }
        assert_eq!(Timings::longest(&q), Some(3), "the oldest of four is gone");
    }
}
