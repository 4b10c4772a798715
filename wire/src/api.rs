//! The daemon API's requests and answers (JSON over HTTP, under [`API_PREFIX`],
//! every request with a bearer token; the routes are listed in
//! `sealing::api`). Answers are views: the daemon builds them from its
//! records, so the contract changes only when this file does.

use crate::chain::{
    DeadlineWindow, ElectionOnChain, HealthEvent, Message, MessageId, PostOnChain, PreCommitOnChain,
    ProvingSchedule, ProvingSectorOnChain, Receipt, SectorHealth,
};
use crate::worker::Capabilities;
use proofs::sdr::layers::ProgressPhase;
use proofs::{Commitment, Randomness, SectorSize};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The path prefix of this API version.
pub const API_PREFIX: &str = "/v0";

/// Largest request body the API reads (worker results have their own limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Where a sector is in its life (the diagram is in `docs/sector-lifecycle.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SectorState {
    /// Accepting pieces (or about to be pledged).
    Packing,
    /// Pieces settled; PC1 labels the layers.
    Unsealed,
    /// The layers are labeled; PC2 builds the trees and the replica.
    Labeled,
    /// Pre-committed on disk; the PreCommit message is being sent and awaited.
    PreCommitting,
    /// The PreCommit landed; waiting for the interactive seed.
    PreCommitted,
    /// C1 and C2 run.
    Committing,
    /// The ProveCommit message is being sent and awaited.
    CommitWait,
    /// The chain accepted the proof; sealing-only files are removed.
    FinalizeSector,
    /// Sealed and proven: the sector counts toward power.
    Proving,
    /// PC1 or PC2 failed.
    SealPreCommitFailed,
    /// Sending or landing the PreCommit failed.
    PreCommitFailed,
    /// C1 or C2 failed.
    ComputeProofFailed,
    /// Sending the ProveCommit failed or the chain rejected the proof.
    CommitFailed,
    /// Finalize failed.
    FinalizeFailed,
    /// Gave up: too many failures, or a failure retrying cannot mend (terminal).
    Failed,
    /// Being removed.
    Removing,
    /// Removed (terminal).
    Removed,
}

impl SectorState {
    /// Every state.
    pub const ALL: [Self; 17] = [
        Self::Packing,
        Self::Unsealed,
        Self::Labeled,
        Self::PreCommitting,
        Self::PreCommitted,
        Self::Committing,
        Self::CommitWait,
        Self::FinalizeSector,
        Self::Proving,
        Self::SealPreCommitFailed,
        Self::PreCommitFailed,
        Self::ComputeProofFailed,
        Self::CommitFailed,
        Self::FinalizeFailed,
        Self::Failed,
        Self::Removing,
        Self::Removed,
    ];

    /// States nothing leaves.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Failed | Self::Removed)
    }

    /// The name as shown to operators.
    pub fn name(self) -> &'static str {
        match self {
            Self::Packing => "Packing",
            Self::Unsealed => "Unsealed",
            Self::Labeled => "Labeled",
            Self::PreCommitting => "PreCommitting",
            Self::PreCommitted => "PreCommitted",
            Self::Committing => "Committing",
            Self::CommitWait => "CommitWait",
            Self::FinalizeSector => "FinalizeSector",
            Self::Proving => "Proving",
            Self::SealPreCommitFailed => "SealPreCommitFailed",
            Self::PreCommitFailed => "PreCommitFailed",
            Self::ComputeProofFailed => "ComputeProofFailed",
            Self::CommitFailed => "CommitFailed",
            Self::FinalizeFailed => "FinalizeFailed",
            Self::Failed => "Failed",
            Self::Removing => "Removing",
            Self::Removed => "Removed",
        }
    }
}

impl std::fmt::Display for SectorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// PC1: labeling the layers (sectors labeled together in a batch are one task).
    Pc1,
    /// PC2: the trees and the replica, from the layers PC1 left.
    Pc2,
    /// C1 then C2 (C2 on the task's worker when it has one).
    Commit,
    /// Removing what only sealing needed.
    Finalize,
    /// The SNARK of one Window PoSt partition on a worker (the prover's; no
    /// one sector's).
    #[serde(rename = "wdpost")]
    WindowPost,
}

impl TaskKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [Self::Pc1, Self::Pc2, Self::Commit, Self::Finalize, Self::WindowPost];

    /// The name as written on the wire and stored.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pc1 => "pc1",
            Self::Pc2 => "pc2",
            Self::Commit => "commit",
            Self::Finalize => "finalize",
            Self::WindowPost => "wdpost",
        }
    }

    /// Whether the task's result is awaited only in the memory of the process
    /// that started it (the prover waiting on a Window PoSt): at a restart
    /// its open tasks are closed, not resumed.
    pub fn awaited_in_memory(self) -> bool {
        matches!(self, Self::WindowPost)
    }

    /// What a worker is sent for this kind, if a worker can run it.
    pub fn remote(self) -> Option<crate::worker::RemoteTask> {
        use crate::worker::RemoteTask;
        match self {
            // A C2 is the remote half of a commit.
            Self::Commit => Some(RemoteTask::C2),
            Self::WindowPost => Some(RemoteTask::WindowPost),
            Self::Pc1 | Self::Pc2 | Self::Finalize => None,
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// A sealing phase timed inside a task (a metrics label and a progress phase).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Labeling the layers.
    Pc1,
    /// Trees and the replica.
    Pc2,
    /// Vanilla proofs.
    C1,
    /// The SNARK (here; a worker's C2 is timed by the worker).
    C2,
}

impl Phase {
    /// The name as written on the wire and in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pc1 => "pc1",
            Self::Pc2 => "pc2",
            Self::C1 => "c1",
            Self::C2 => "c2",
        }
    }
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Running here, or handed to its worker and leased.
    Running,
    /// Its worker sent a result (or a failure) the driver has not judged yet.
    Reported,
    /// Finished and its result accepted.
    Done,
    /// Failed (the error says why).
    Failed,
    /// Its worker's proof did not verify; the proof was discarded.
    Rejected,
    /// Its worker stopped renewing the lease (gone, restarted, revoked).
    Expired,
    /// No longer wanted (its sector was aborted or removed, or its PreCommit
    /// expired), and its worker has let it go.
    Cancelled,
    /// No longer wanted, but its worker may still be proving it: its slot
    /// stays taken until the worker drops it (a heartbeat that no longer lists
    /// it, a report, a restart, or its lease lapsing). Its sector does not wait for it.
    Cancelling,
    /// Running here when the daemon stopped.
    Interrupted,
}

impl TaskState {
    const ALL: [Self; 9] = [
        Self::Running,
        Self::Reported,
        Self::Done,
        Self::Failed,
        Self::Rejected,
        Self::Expired,
        Self::Cancelled,
        Self::Cancelling,
        Self::Interrupted,
    ];

    /// The name as written on the wire and stored.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Reported => "reported",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Cancelling => "cancelling",
            Self::Interrupted => "interrupted",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether the task is still in flight for its sector.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Running | Self::Reported)
    }

    /// Whether the task still takes a slot of its worker (in flight, or
    /// cancelled but not yet let go).
    pub fn holds_slot(self) -> bool {
        matches!(self, Self::Running | Self::Reported | Self::Cancelling)
    }
}

/// A worker as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Heartbeating and healthy: it gets tasks while it has free slots.
    Online,
    /// No heartbeat within a lease.
    Offline,
    /// It returned a proof that did not verify; no tasks until the operator
    /// resets it (`kiln workers reset NAME`).
    Unhealthy,
    /// Online, but it failed too many tasks in a row (or just refused one): no
    /// tasks until its bench ends (`benched_until_ms`) or the operator resets it.
    Benched,
    /// Its token was revoked.
    Revoked,
}

/// A running task's latest progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskProgress {
    /// The task's kind.
    pub task: TaskKind,
    /// The phase inside it, once reported.
    pub phase: Option<ProgressPhase>,
    /// The layer, while labeling.
    pub layer: Option<u32>,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// When the task started (ms since the epoch).
    #[serde(default)]
    pub started_ms: i64,
}

/// A sector's state and the consecutive failures of its current step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleView {
    /// The state.
    pub state: SectorState,
    /// Consecutive failures of the current step.
    pub attempts: u32,
}

/// A sector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorView {
    /// The sector number.
    pub number: u64,
    /// Its size.
    pub sector_size: SectorSize,
    /// Committed capacity (no pieces) rather than data.
    pub pledged: bool,
    /// Its lifecycle position.
    pub lifecycle: LifecycleView,
    /// The seal ticket once drawn.
    pub ticket: Option<Randomness>,
    /// The ticket's epoch.
    pub ticket_epoch: Option<u64>,
    /// comm_d once pre-committed.
    pub comm_d: Option<Commitment>,
    /// comm_r once pre-committed.
    pub comm_r: Option<Commitment>,
    /// The interactive seed once known.
    pub seed: Option<Randomness>,
    /// The seed's epoch.
    pub seed_epoch: Option<u64>,
    /// The PreCommit message once sent.
    pub precommit_message: Option<MessageId>,
    /// The ProveCommit message once sent.
    pub commit_message: Option<MessageId>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Creation time (ms since the epoch).
    pub created_ms: i64,
    /// Last change (ms since the epoch).
    pub updated_ms: i64,
}

/// A data piece of a sector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceView {
    /// Position among the sector's pieces, from 0.
    pub index: u64,
    /// The daemon's copy of the piece file.
    pub path: PathBuf,
    /// Bytes in the file.
    pub raw_len: u64,
    /// Padded piece size.
    pub padded_size: u64,
    /// The piece commitment.
    pub comm_p: Commitment,
    /// When it was added (ms since the epoch).
    pub added_ms: i64,
}

/// One entry of a sector's event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// Position in the sector's log, from 1.
    pub seq: u64,
    /// When it was accepted (ms since the epoch).
    pub at_ms: i64,
    /// The event as the log records it: an object whose `event` field names it.
    pub event: serde_json::Value,
    /// The state it led to.
    pub state: SectorState,
}

impl EventView {
    /// The event's name.
    pub fn name(&self) -> &str {
        self.event.get("event").and_then(|v| v.as_str()).unwrap_or("?")
    }

    /// A string field of the event (`error`, `reason`, `disposition`, ...).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.event.get(name).and_then(|v| v.as_str())
    }
}

/// A task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    /// Task id (never reused).
    pub id: u64,
    /// The sector; none for a task over many (a Window PoSt partition).
    pub sector: Option<u64>,
    /// What it does.
    pub kind: TaskKind,
    /// The remote worker running it; none when it runs in the daemon.
    pub worker: Option<String>,
    /// Where it is.
    pub state: TaskState,
    /// When it started (ms since the epoch).
    pub created_ms: i64,
    /// Last change (ms since the epoch).
    pub updated_ms: i64,
    /// A remote task runs elsewhere if its worker has not renewed it by then.
    pub lease_until_ms: Option<i64>,
    /// Why it failed, was rejected or expired.
    pub error: Option<String>,
    /// Size of the reported result, once a worker sent one.
    pub result_bytes: Option<u64>,
    /// How long its sector waited for it to start (ms); none for old records.
    #[serde(default)]
    pub queued_ms: Option<i64>,
}

/// A worker with its state and tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerView {
    /// Its name (its token's).
    pub name: String,
    /// Its process's random id; a new one means it restarted.
    pub instance: String,
    /// Where its task API listens.
    pub url: String,
    /// What it can run.
    pub capabilities: Capabilities,
    /// When it last registered.
    pub registered_ms: i64,
    /// Its last heartbeat.
    pub last_seen_ms: i64,
    /// Why it gets no tasks, after it returned a bad proof.
    pub unhealthy: Option<String>,
    /// Whether its token is revoked.
    pub revoked: bool,
    /// Its failed tasks in a row since its last delivered proof (docs/protocol.md, "Charging").
    #[serde(default)]
    pub failures: u32,
    /// Until when it gets no task (ms since the epoch), if benched.
    #[serde(default)]
    pub benched_until_ms: Option<i64>,
    /// Why it was benched.
    #[serde(default)]
    pub bench_reason: Option<String>,
    /// Its state now.
    pub state: WorkerState,
    /// Its open tasks.
    pub tasks: Vec<u64>,
}

/// A worker token (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// The worker's name.
    pub name: String,
    /// When it was made.
    pub created_ms: i64,
    /// When it was revoked.
    pub revoked_ms: Option<i64>,
}

/// One line of the sector list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorListEntry {
    /// The sector.
    pub sector: SectorView,
    /// Its running task's progress.
    pub progress: Option<TaskProgress>,
    /// For a failed sector (a `…Failed` state, or `Failed`), the step that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<SectorState>,
    /// For a sector being removed or removed, the state it was in when its
    /// removal was asked for (how far it had got).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_from: Option<SectorState>,
}

/// `POST /v0/sectors/{n}/remove` (the body may be empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoveRequest {
    /// Remove a sector the chain still holds (a live PreCommit, or proven),
    /// accepting what follows: it fails its Window PoSts and is declared faulty.
    pub force: bool,
}

/// Sectors per state over time (`GET /v0/history`), for the web view's chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryView {
    /// Time between samples (ms).
    pub interval_ms: u64,
    /// Oldest first.
    pub samples: Vec<HistorySample>,
}

/// Sectors per state at one time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySample {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Sectors by state name; states with none are left out.
    pub sectors: std::collections::BTreeMap<String, u64>,
}

/// Everything about one sector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorStatus {
    /// The sector.
    pub sector: SectorView,
    /// Its data pieces.
    pub pieces: Vec<PieceView>,
    /// Its event log, oldest first.
    pub events: Vec<EventView>,
    /// Its running task's progress.
    pub progress: Option<TaskProgress>,
    /// Its PreCommit as the chain holds it.
    pub on_chain: Option<PreCommitOnChain>,
    /// The receipt of its ProveCommit message, once executed.
    pub commit_receipt: Option<Receipt>,
    /// Its tasks, oldest first.
    pub tasks: Vec<TaskView>,
}

/// A kind of task the daemon has stopped starting because of a fault of the
/// node (not of any sector), e.g. a corrupt parameter file or a full disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedTasks {
    /// The kind.
    pub kind: TaskKind,
    /// What is wrong, as the failing task reported it.
    pub reason: String,
    /// Since when (ms since the epoch).
    pub since_ms: i64,
    /// When one task of the kind is next tried to see whether it was fixed.
    pub next_probe_ms: i64,
}

/// The daemon's own state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// The daemon process's random id.
    pub instance: String,
    /// Task kinds paused by a fault of the node, until it is fixed.
    pub paused: Vec<PausedTasks>,
    /// How the daemon shares its file descriptors between its work and its listeners.
    #[serde(default)]
    pub descriptors: DescriptorView,
    /// Every task kind, in order (the web view's filter and colours).
    #[serde(default)]
    pub task_kinds: Vec<TaskKind>,
}

/// How a daemon shares its file descriptors (`docs/daemon.md`, "File descriptors").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorView {
    /// The descriptor limit in force (the soft limit, raised to the hard one at start).
    pub limit: u64,
    /// Kept for the work: databases, sector files, PoSt reads, connections to workers.
    pub work: u64,
    /// The API's connection cap.
    pub api_connections: usize,
    /// The loopback scrape address's connection cap, when there is one.
    pub metrics_connections: Option<usize>,
}

/// Pledge committed-capacity sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PledgeRequest {
    /// How many (1 to 1000).
    pub count: u32,
}

/// The pledged sectors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PledgeResponse {
    /// Their numbers.
    pub sectors: Vec<u64>,
}

/// Stop work on a sector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    /// Why (1 to 1024 characters), recorded in the sector's event log.
    pub reason: String,
}

/// Add a data piece from a file the daemon can read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPieceRequest {
    /// The file (absolute, or relative to the daemon's working directory).
    pub path: PathBuf,
}

/// Where an added piece went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedPiece {
    /// The sector it was packed into.
    pub sector: u64,
    /// Its position among the sector's pieces.
    pub index: u64,
    /// The piece commitment.
    pub comm_p: Commitment,
    /// Padded piece size.
    pub padded_size: u64,
    /// Bytes in the file.
    pub raw_len: u64,
}

/// The chain's head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The current epoch.
    pub epoch: u64,
    /// Messages sent so far.
    pub messages: u64,
    /// Of which executed.
    pub executed: u64,
}

/// Items per page of a list endpoint when the request names no `limit`.
pub const DEFAULT_PAGE: usize = 1_000;
/// The largest `limit` a list endpoint takes.
pub const MAX_PAGE: usize = 10_000;

/// `?after=ID&limit=N` of the paginated lists (`/v0/tasks`,
/// `/v0/chain/messages`): items with ids above `after`, oldest first, at most
/// `limit` ([`DEFAULT_PAGE`], at most [`MAX_PAGE`]). A page shorter than its
/// limit is the last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Items after this one (a task's id, a message's `seq`).
    #[serde(default)]
    pub after: u64,
    /// Items at most.
    pub limit: Option<usize>,
}

impl Page {
    /// The limit to apply, or why it is refused.
    pub fn limit(&self) -> Result<usize, String> {
        match self.limit {
            None => Ok(DEFAULT_PAGE),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(format!("limit must be between 1 and {MAX_PAGE}, not {n}")),
        }
    }
}

/// A message this miner sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainMessage {
    /// Its place in the node's log of sent messages, from 1 (what `?after=` pages by).
    pub seq: u64,
    /// Its id on the chain.
    pub id: MessageId,
    /// The message.
    pub message: Message,
    /// Its receipt, once executed.
    pub receipt: Option<Receipt>,
}

/// Make a token for a new worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkerToken {
    /// The worker's name.
    pub name: String,
}

/// A new worker token (shown once; the daemon keeps only its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerToken {
    /// The worker's name.
    pub name: String,
    /// The token to give `kiln-worker run --token`.
    pub token: String,
}

/// A worker whose unhealthy mark the operator cleared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerReset {
    /// The worker's name.
    pub name: String,
}

/// A revoked token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The worker's name.
    pub name: String,
    /// Its tasks, which will run elsewhere.
    pub expired_tasks: Vec<u64>,
}

/// A sector a PoSt could not prove, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFault {
    /// The sector.
    pub sector: u64,
    /// What was wrong with it.
    pub reason: String,
}

/// One PoSt the daemon ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostRun {
    /// Its id (0 before it is recorded).
    pub id: u64,
    /// `window` or `winning`.
    pub kind: String,
    /// Window PoSt: the deadline.
    pub deadline: Option<u64>,
    /// Window PoSt: the epoch its window opened.
    pub open_epoch: Option<u64>,
    /// Window PoSt: the partition.
    pub partition: Option<u64>,
    /// Winning PoSt: the election's epoch.
    pub election: Option<u64>,
    /// When it started (ms since the Unix epoch).
    pub started_ms: i64,
    /// Reading the vanilla proofs (ms).
    pub vanilla_ms: u64,
    /// Proving the SNARK (ms).
    pub snark_ms: u64,
    /// Sectors proven.
    pub proven: Vec<u64>,
    /// Sectors found faulty.
    pub faults: Vec<RunFault>,
    /// Where the SNARK was proved: `local`, or the worker's name.
    pub prover: String,
    /// The message it sent, if it got that far.
    pub message: Option<MessageId>,
    /// Why it failed, if it did (before its message: reading, proving, sending).
    pub error: Option<String>,
    /// Its message's exit code once the chain executed it (0: accepted).
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// Why the chain refused its message, when it did.
    #[serde(default)]
    pub receipt_error: Option<String>,
}

/// The result of checking one sector's files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorCheck {
    /// The sector.
    pub sector: u64,
    /// Its health on chain.
    pub health: SectorHealth,
    /// `None`: readable and consistent; else what is wrong.
    pub fault: Option<String>,
    /// Time spent reading it (ms).
    pub ms: u64,
}

/// `GET /v0/proving`: where proving stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvingInfo {
    /// The chain's head.
    pub head: u64,
    /// Deadlines and elections.
    pub schedule: ProvingSchedule,
    /// The window open now.
    pub current: DeadlineWindow,
    /// Sectors proven on chain, by health.
    pub active: u64,
    /// Faulty sectors.
    pub faulty: u64,
    /// Recovering sectors.
    pub recovering: u64,
    /// The newest PoSt runs, newest first.
    pub recent_runs: Vec<PostRun>,
    /// Won elections of the last proving period, with their Winning PoSts.
    pub elections: Vec<ElectionOnChain>,
}

/// One deadline in `GET /v0/proving/deadlines`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineView {
    /// Its next (or open) window.
    pub window: DeadlineWindow,
    /// Partitions with sectors.
    pub partitions: u64,
    /// Sectors.
    pub sectors: u64,
    /// Of which faulty.
    pub faulty: u64,
    /// Partitions proven in its last window that opened.
    pub proven_last_window: u64,
}

/// `GET /v0/proving/deadlines/N`: one deadline in full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineDetail {
    /// Its next (or open) window.
    pub window: DeadlineWindow,
    /// Its sectors, with their partitions and health.
    pub sectors: Vec<ProvingSectorOnChain>,
    /// Window PoSts accepted for it in the last two proving periods.
    pub posts: Vec<PostOnChain>,
}

/// `GET /v0/proving/faults`: sectors not active, and recent health changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultsView {
    /// Faulty and recovering sectors.
    pub sectors: Vec<ProvingSectorOnChain>,
    /// Health changes of the last two proving periods, oldest first.
    pub events: Vec<HealthEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sector_state_is_listed_once_under_its_wire_name() {
        let names: std::collections::BTreeSet<String> = SectorState::ALL
            .iter()
            .map(|s| {
                let wire = serde_json::to_value(s).unwrap();
                assert_eq!(wire, s.name(), "{s:?}");
                s.name().to_string()
            })
            .collect();
        assert_eq!(names.len(), SectorState::ALL.len());
        // A state missing from ALL would not parse back from its name here.
        for name in ["Packing", "Removed", "ComputeProofFailed"] {
            let s: SectorState = serde_json::from_value(serde_json::Value::String(name.into())).unwrap();
            assert!(SectorState::ALL.contains(&s));
        }
    }
}
