//! The daemon's Prometheus metrics (`GET /metrics`; every one is described in
//! `docs/observability.md`).
//!
//! Two kinds: counters and histograms fed where things happen (the store
//! reports tasks starting and closing and PoSt runs, the PC1 task its
//! labeling progress and time, the PC2 task its time, the commit task its C1
//! and C2 times), and gauges set at each scrape from the records (sectors by state, workers, the chain, the
//! process). Chain messages are counted at scrape time from the chain itself,
//! from the daemon's start on, so a message sent by any part of the daemon is
//! counted once with its exit code.

use crate::chain::{MessageLog, SentMessage};
use crate::store::{PostRun, SectorCounts, StoreObserver, TaskRow, TaskState, WorkerRow};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use wire::api::{SectorState, TaskKind, WorkerState};
use wire::chain::{ProvingSectorOnChain, SectorHealth};
use wire::metrics::{duration_buckets, ProcessMetrics};

/// A task's kind and where it ran (`local`, or the worker's name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    kind: String,
    executor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    kind: String,
    executor: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiptLabels {
    method: String,
    exit_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    health: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    Histogram::new(duration_buckets())
}

fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Family::new_with_constructor(duration_histogram)
}

pub use wire::api::Phase;

/// Which chain messages are counted already.
#[derive(Default)]
struct MessageCursor {
    /// Every message up to this id is counted as sent.
    seen: u64,
    /// Sent and counted, their receipt not yet.
    pending: BTreeSet<u64>,
}

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    process: ProcessMetrics,
    /// One scrape at a time: the gauges are set, then encoded.
    scrape: Mutex<MessageCursor>,
    sectors: Family<StateLabels, Gauge>,
    tasks_started: Family<TaskLabels, Counter>,
    tasks_finished: Family<OutcomeLabels, Counter>,
    tasks_running: Family<TaskLabels, Gauge>,
    task_duration: Histograms<TaskLabels>,
    task_queued: Histograms<TaskLabels>,
    tasks_paused: Family<KindLabels, Gauge>,
    phase_duration: Histograms<PhaseLabels>,
    pc1_labeled: Counter,
    workers: Family<StateLabels, Gauge>,
    worker_slots: Family<WorkerLabels, Gauge>,
    worker_slots_used: Family<WorkerLabels, Gauge>,
    worker_heartbeat_age: Family<WorkerLabels, FloatGauge>,
    chain_head: Gauge,
    messages_sent: Family<MethodLabels, Counter>,
    message_receipts: Family<ReceiptLabels, Counter>,
    post_duration: Histograms<KindLabels>,
    post_vanilla: Histograms<KindLabels>,
    post_runs: Family<OutcomeLabels, Counter>,
    post_rejected: Family<KindLabels, Counter>,
    post_sectors_proven: Counter,
    post_sectors_skipped: Counter,
    post_sector_check: Histogram,
    post_declared: Family<MethodLabels, Counter>,
    post_sector_errors: Counter,
    proving_sectors: Family<HealthLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let process = ProcessMetrics::register(&mut registry);
        let m = Self {
            registry: Registry::default(),
            process,
            scrape: Mutex::default(),
            sectors: Family::default(),
            tasks_started: Family::default(),
            tasks_finished: Family::default(),
            tasks_running: Family::default(),
            task_duration: histograms(),
            task_queued: histograms(),
            tasks_paused: Family::default(),
            phase_duration: histograms(),
            pc1_labeled: Counter::default(),
            workers: Family::default(),
            worker_slots: Family::default(),
            worker_slots_used: Family::default(),
            worker_heartbeat_age: Family::default(),
            chain_head: Gauge::default(),
            messages_sent: Family::default(),
            message_receipts: Family::default(),
            post_duration: histograms(),
            post_vanilla: histograms(),
            post_runs: Family::default(),
            post_rejected: Family::default(),
            post_sectors_proven: Counter::default(),
            post_sectors_skipped: Counter::default(),
            post_sector_check: duration_histogram(),
            post_declared: Family::default(),
            post_sector_errors: Counter::default(),
            proving_sectors: Family::default(),
        };
        let k = registry.sub_registry_with_prefix("kiln");
        k.register("sectors", "Sectors by lifecycle state", m.sectors.clone());
        k.register("tasks_started", "Tasks started, by kind and executor", m.tasks_started.clone());
        k.register(
            "tasks_finished",
            "Tasks ended, by kind, executor and outcome (done, failed, rejected, expired, cancelled, interrupted)",
            m.tasks_finished.clone(),
        );
        k.register("tasks_running", "Tasks in flight, by kind and executor", m.tasks_running.clone());
        k.register_with_unit(
            "task_duration",
            "Time from start to end of tasks that succeeded, by kind and executor",
            Unit::Seconds,
            m.task_duration.clone(),
        );
        k.register_with_unit(
            "task_queued",
            "Time from a sector's last recorded event (normally entering the state that calls for a task) to the task's start",
            Unit::Seconds,
            m.task_queued.clone(),
        );
        k.register(
            "task_kind_paused",
            "1 while a task kind is paused by a fault of this node",
            m.tasks_paused.clone(),
        );
        k.register_with_unit(
            "phase_duration",
            "Time of sealing phases run in this daemon (pc1, pc2, c1, c2), per task (a PC1 batch is one)",
            Unit::Seconds,
            m.phase_duration.clone(),
        );
        k.register_with_unit(
            "pc1_labeled",
            "Layer bytes labeled by PC1 (rate() is the labeling throughput)",
            Unit::Bytes,
            m.pc1_labeled.clone(),
        );
        k.register("remote_workers", "Remote workers by state", m.workers.clone());
        k.register("remote_worker_slots", "Tasks a remote worker runs at once", m.worker_slots.clone());
        k.register("remote_worker_slots_used", "Tasks open on a remote worker", m.worker_slots_used.clone());
        k.register_with_unit(
            "remote_worker_heartbeat_age",
            "Time since a remote worker's last heartbeat",
            Unit::Seconds,
            m.worker_heartbeat_age.clone(),
        );
        k.register("chain_head_epoch", "The chain's head epoch", m.chain_head.clone());
        k.register("chain_messages_sent", "Chain messages sent, by method", m.messages_sent.clone());
        k.register(
            "chain_message_receipts",
            "Chain messages executed, by method and exit code",
            m.message_receipts.clone(),
        );
        k.register_with_unit(
            "post_duration",
            "Time to prove one PoSt (a Window PoSt partition, or a Winning PoSt): reading plus SNARK",
            Unit::Seconds,
            m.post_duration.clone(),
        );
        k.register_with_unit(
            "post_vanilla",
            "Time to read the sectors of one PoSt (vanilla proofs)",
            Unit::Seconds,
            m.post_vanilla.clone(),
        );
        k.register(
            "post_runs",
            "PoSt runs by kind, executor (local, local GPU, or the worker) and outcome (sent, error)",
            m.post_runs.clone(),
        );
        k.register(
            "post_rejected",
            "PoSt messages the chain refused (a non-zero exit code), by kind",
            m.post_rejected.clone(),
        );
        k.register("post_sectors_proven", "Sectors proven in Window PoSts", m.post_sectors_proven.clone());
        k.register(
            "post_sectors_skipped",
            "Sectors left out of Window PoSts as faulty (unreadable, wrong, too slow)",
            m.post_sectors_skipped.clone(),
        );
        k.register_with_unit(
            "post_sector_check",
            "Time to read one sector at random challenges (the checks ahead of each window)",
            Unit::Seconds,
            m.post_sector_check.clone(),
        );
        k.register(
            "post_sectors_declared",
            "Sectors declared faulty (DeclareFaults) or recovered (DeclareFaultsRecovered) by the checks ahead",
            m.post_declared.clone(),
        );
        k.register(
            "post_sector_errors",
            "Sectors a PoSt run or a check could not prove (unreadable, wrong, too slow)",
            m.post_sector_errors.clone(),
        );
        k.register("proving_sectors", "Sectors on chain by health", m.proving_sectors.clone());
        Self { registry, ..m }
    }

    /// A task started: counted, and the time its sector waited observed.
    pub fn task_started(&self, kind: TaskKind, worker: Option<&str>, queued_ms: i64) {
        let labels = task_labels(kind, worker);
        self.tasks_started.get_or_create(&labels).inc();
        self.task_queued.get_or_create(&labels).observe(queued_ms.max(0) as f64 / 1e3);
    }

    /// A task ended (`task` as recorded at its end).
    pub fn task_finished(&self, task: &TaskRow) {
        let labels = task_labels(task.kind, task.worker.as_deref());
        if task.state == TaskState::Done {
            let ms = task.updated_ms.saturating_sub(task.created_ms).max(0);
            self.task_duration.get_or_create(&labels).observe(ms as f64 / 1e3);
        }
        let outcome =
            OutcomeLabels { kind: labels.kind, executor: labels.executor, outcome: task.state.name().into() };
        self.tasks_finished.get_or_create(&outcome).inc();
    }

    /// A sealing phase took `seconds`.
    pub fn phase(&self, phase: Phase, seconds: f64) {
        self.phase_duration.get_or_create(&PhaseLabels { phase: phase.name().into() }).observe(seconds);
    }

    /// PC1 labeled `bytes` more.
    pub fn labeled(&self, bytes: u64) {
        self.pc1_labeled.inc_by(bytes);
    }

    /// A PoSt run was recorded.
    pub fn post_run(&self, run: &PostRun) {
        let kind = KindLabels { kind: run.kind.clone() };
        let vanilla = run.vanilla_ms as f64 / 1e3;
        self.post_vanilla.get_or_create(&kind).observe(vanilla);
        let outcome = if run.error.is_none() { "sent" } else { "error" };
        if run.error.is_none() {
            self.post_duration.get_or_create(&kind).observe(vanilla + run.snark_ms as f64 / 1e3);
        }
        let labels =
            OutcomeLabels { kind: run.kind.clone(), executor: run.prover.clone(), outcome: outcome.into() };
        self.post_runs.get_or_create(&labels).inc();
        if run.kind == "window" && run.error.is_none() {
            self.post_sectors_proven.inc_by(run.proven.len() as u64);
            self.post_sectors_skipped.inc_by(run.faults.len() as u64);
        }
        self.post_sector_errors.inc_by(run.faults.len() as u64);
    }

    /// The chain refused a PoSt message of `kind`.
    pub fn post_rejected(&self, kind: &str) {
        self.post_rejected.get_or_create(&KindLabels { kind: kind.into() }).inc();
    }

    /// One sector was read in a check; `failed` when it could not be proven.
    pub fn sector_checked(&self, seconds: f64, failed: bool) {
        self.post_sector_check.observe(seconds);
        if failed {
            self.post_sector_errors.inc();
        }
    }

    /// `sectors` were declared faulty or recovered by `message`.
    pub fn declared(&self, message: &wire::chain::Message, sectors: usize) {
        let labels = MethodLabels { method: message.method().into() };
        self.post_declared.get_or_create(&labels).inc_by(sectors as u64);
    }

    /// Counts chain messages from the next one sent on: `last` is the newest
    /// message id now.
    pub fn count_messages_after(&self, last: u64) {
        let mut cursor = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        cursor.seen = cursor.seen.max(last);
    }

    /// The metrics now, in the exposition format: the scrape-time gauges are
    /// set from `records` first (read by the caller; on an error they keep
    /// their last values), and messages are counted from `log`.
    pub fn scrape(&self, records: Result<Records, String>, log: &dyn MessageLog, now_ms: i64) -> String {
        let mut cursor = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        match records {
            Ok(records) => self.set_gauges(&records),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the records; their gauges keep their last values")
            }
        }
        if let Err(e) = self.count_messages(log, now_ms, &mut cursor) {
            tracing::warn!(error = %e, "metrics: cannot read the chain's messages");
        }
        self.process.update();
        wire::metrics::encode(&self.registry)
    }

    fn set_gauges(&self, records: &Records) {
        let Records { now_ms, sectors: counts, open_tasks: open, workers, paused, head, proving_sectors } =
            records;
        // Every state has a series, so an emptied state reads 0 rather than vanishing.
        for state in SectorState::ALL {
            let n = counts.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n);
            self.sectors.get_or_create(&StateLabels { state: state.name().into() }).set(n as i64);
        }
        self.tasks_running.clear();
        for t in open {
            self.tasks_running.get_or_create(&task_labels(t.kind, t.worker.as_deref())).inc();
        }
        let mut by_state: HashMap<&'static str, i64> = HashMap::new();
        for family in [&self.worker_slots, &self.worker_slots_used] {
            family.clear();
        }
        self.worker_heartbeat_age.clear();
        for (w, state) in workers {
            *by_state.entry(worker_state_name(*state)).or_default() += 1;
            if *state == WorkerState::Revoked {
                continue;
            }
            let labels = WorkerLabels { worker: w.name.clone() };
            self.worker_slots.get_or_create(&labels).set(w.capabilities.slots as i64);
            let used = open.iter().filter(|t| t.worker.as_deref() == Some(w.name.as_str())).count();
            self.worker_slots_used.get_or_create(&labels).set(used as i64);
            let age = now_ms.saturating_sub(w.last_seen_ms).max(0) as f64 / 1e3;
            self.worker_heartbeat_age.get_or_create(&labels).set(age);
        }
        for state in [
            WorkerState::Online,
            WorkerState::Benched,
            WorkerState::Offline,
            WorkerState::Unhealthy,
            WorkerState::Revoked,
        ] {
            let name = worker_state_name(state);
            let n = by_state.get(name).copied().unwrap_or(0);
            self.workers.get_or_create(&StateLabels { state: name.into() }).set(n);
        }
        for kind in TaskKind::ALL {
            let labels = KindLabels { kind: kind.name().into() };
            self.tasks_paused.get_or_create(&labels).set(i64::from(paused.contains(&kind)));
        }
        self.chain_head.set(*head as i64);
        for health in [SectorHealth::Active, SectorHealth::Faulty, SectorHealth::Recovering] {
            let n = proving_sectors.iter().filter(|s| s.health == health).count();
            self.proving_sectors.get_or_create(&HealthLabels { health: health.name().into() }).set(n as i64);
        }
    }

    /// Counts messages sent since the last scrape, and receipts that came in.
    fn count_messages(
        &self,
        log: &dyn MessageLog,
        now: i64,
        cursor: &mut MessageCursor,
    ) -> Result<(), String> {
        const PAGE: usize = 1_000;
        let mut after = cursor.pending.first().map_or(cursor.seen, |&p| p.saturating_sub(1).min(cursor.seen));
        loop {
            let page = log.messages_after(after, PAGE, now).map_err(|e| e.to_string())?;
            for SentMessage { seq, message, receipt, .. } in &page {
                let method = message.method();
                let new = *seq > cursor.seen;
                if new {
                    cursor.seen = *seq;
                    self.messages_sent.get_or_create(&MethodLabels { method: method.into() }).inc();
                }
                match receipt {
                    Some(r) if new || cursor.pending.remove(seq) => {
                        let labels =
                            ReceiptLabels { method: method.into(), exit_code: r.exit_code.to_string() };
                        self.message_receipts.get_or_create(&labels).inc();
                    }
                    None if new => {
                        cursor.pending.insert(*seq);
                    }
                    _ => {}
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = last.seq,
                _ => return Ok(()),
            }
        }
    }
}

fn task_labels(kind: TaskKind, worker: Option<&str>) -> TaskLabels {
    TaskLabels { kind: kind.name().into(), executor: worker.unwrap_or("local").into() }
}

fn worker_state_name(state: WorkerState) -> &'static str {
    match state {
        WorkerState::Online => "online",
        WorkerState::Benched => "benched",
        WorkerState::Offline => "offline",
        WorkerState::Unhealthy => "unhealthy",
        WorkerState::Revoked => "revoked",
    }
}

/// What the scrape-time gauges show, read from the store and the chain.
pub struct Records {
    /// When they were read (ms since the Unix epoch).
    pub now_ms: i64,
    /// Sectors by state.
    pub sectors: SectorCounts,
    /// Tasks in flight.
    pub open_tasks: Vec<TaskRow>,
    /// Every remote worker, with its state now.
    pub workers: Vec<(WorkerRow, WorkerState)>,
    /// Task kinds paused by a fault of this node.
    pub paused: Vec<TaskKind>,
    /// The chain's head.
    pub head: u64,
    /// The sectors the chain proves, with their health.
    pub proving_sectors: Vec<ProvingSectorOnChain>,
}

impl StoreObserver for Metrics {
    fn task_started(&self, kind: TaskKind, worker: Option<&str>, queued_ms: i64) {
        Metrics::task_started(self, kind, worker, queued_ms)
    }
    fn task_finished(&self, task: &TaskRow) {
        Metrics::task_finished(self, task)
    }
    fn post_run(&self, run: &PostRun) {
        Metrics::post_run(self, run)
    }
    fn post_rejected(&self, kind: &str) {
        Metrics::post_rejected(self, kind)
    }
}
