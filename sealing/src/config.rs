//! The daemon's configuration: one typed TOML file (`kiln daemon --config kiln.toml`).
//!
//! Every table but the top level is optional; unknown keys are errors, so a
//! misspelt setting is reported instead of silently ignored.

use crate::lifecycle::RetryPolicy;
use proofs::{ProverId, SectorSize};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wire::server::ServerLimits;

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("config {path}: {reason}")]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the daemon keeps its database, sectors, pieces, API address and token.
    pub data_dir: PathBuf,
    /// The size of every sector this daemon seals.
    pub sector_size: SectorSize,
    /// The miner actor id (f0N); the prover id is derived from it.
    pub miner_id: u64,
    /// This node's name [default: `local`]: the tasks it starts are recorded as
    /// its own, and at a restart it recovers only those. Nodes that share a
    /// store need distinct names; a renamed node leaves its old tasks to
    /// their leases.
    #[serde(default = "default_node")]
    pub node: String,
    /// Groth16 parameters [default: `$XDG_CACHE_HOME/kiln/params`].
    #[serde(default)]
    pub param_dir: Option<PathBuf>,
    /// SDR parent caches [default: `$XDG_CACHE_HOME/kiln/parents`].
    #[serde(default)]
    pub parent_cache_dir: Option<PathBuf>,
    /// The local API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Concurrent tasks per phase.
    #[serde(default)]
    pub limits: Limits,
    /// Retrying failed steps.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Filling data sectors.
    #[serde(default)]
    pub packing: PackingConfig,
    /// The embedded chain.
    #[serde(default)]
    pub chain: ChainConfig,
    /// How sealing messages are batched, and how long sectors live.
    #[serde(default)]
    pub messages: MessagesConfig,
    /// Remote workers.
    #[serde(default)]
    pub workers: WorkersConfig,
    /// How long records are kept.
    #[serde(default)]
    pub history: HistoryConfig,
    /// Proving sectors: Window and Winning PoSt.
    #[serde(default)]
    pub proving: ProvingConfig,
    /// Prometheus metrics and the web view's history.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// Prometheus metrics (`GET /metrics` on the API, with the token) and the
/// web view's history of sectors per state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Also serve `/metrics` without a token on this loopback address (e.g.
    /// `127.0.0.1:9464`) for a Prometheus on the same machine; refused if it
    /// is reachable from other machines.
    pub listen: Option<String>,
    /// Connections the scrape address holds at once (a Prometheus needs one
    /// or two). Unset: 16, or what the descriptor budget leaves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// How often sectors per state are sampled for the web view's chart (ms).
    pub history_interval_ms: u64,
    /// Samples kept (the oldest go first).
    pub history_samples: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        // A day at 30 s.
        Self { listen: None, max_connections: None, history_interval_ms: 30_000, history_samples: 2_880 }
    }
}

/// How the daemon proves its sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvingConfig {
    /// Prove sectors at all (off only for tests of sealing alone with fake proofs).
    pub enabled: bool,
    /// Epochs before a deadline's window opens that its sectors are checked
    /// (faults declared, recoveries declared).
    pub check_ahead_epochs: u64,
    /// Sectors read at once for a PoSt (each holds its files open).
    pub read_parallel: usize,
    /// Time one sector's reads may take before it is reported faulty (ms).
    pub sector_timeout_ms: u64,
    /// Answer won elections with a Winning PoSt.
    pub winning: bool,
    /// Prove Window PoSt SNARKs on remote workers when one can (the vanilla
    /// proofs travel, the sectors do not); locally otherwise.
    pub remote_snark: bool,
    /// How long a worker may take for a Window PoSt SNARK before the daemon
    /// proves it itself (ms; keep it well inside a deadline window).
    pub remote_timeout_ms: u64,
}

impl Default for ProvingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            check_ahead_epochs: 6,
            read_parallel: 16,
            sector_timeout_ms: 60_000,
            winning: true,
            remote_snark: true,
            remote_timeout_ms: 60_000,
        }
    }
}

/// How long records are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Finished tasks (done, failed, expired, …) are deleted this long after
    /// their last change (ms); open ones always stay. Sector event logs are
    /// kept for the sector's life.
    pub tasks_keep_ms: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { tasks_keep_ms: 30 * 24 * 3_600_000 }
    }
}

/// The local API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on (port 0 picks a free one; the address in use is
    /// written to `DATA_DIR/api`).
    pub listen: String,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs `tls_key`.
    /// The chain is copied to `DATA_DIR/api.crt` for local `kiln` commands to trust.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Connections open at once (more are closed at once). Unset: as many as
    /// the file descriptor budget leaves, at most 8192; set by hand, it must
    /// fit in the budget or the daemon refuses to start ([`Config::descriptor_budget`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Longest wait for a request's headers; closes silent, slow and idle connections (ms).
    pub header_read_timeout_ms: u64,
    /// Longest a request may take once its headers are in (ms).
    pub request_timeout_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        let limits = ServerLimits::default();
        Self {
            listen: "127.0.0.1:2345".into(),
            tls_cert: None,
            tls_key: None,
            max_connections: None,
            header_read_timeout_ms: limits.header_read_timeout_ms,
            request_timeout_ms: limits.request_timeout_ms,
        }
    }
}

impl ApiConfig {
    /// The server's limits with `max_connections` connections (what the
    /// descriptor budget gave it).
    pub fn limits(&self, max_connections: usize) -> ServerLimits {
        ServerLimits {
            max_connections,
            header_read_timeout_ms: self.header_read_timeout_ms,
            request_timeout_ms: self.request_timeout_ms,
        }
    }
}

/// How many tasks of each phase run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// PC1 tasks (a batch of sectors labeled together is one).
    pub pre_commit: usize,
    /// PC2 tasks (trees and the replica; each reads its sector's layers).
    pub pc2: usize,
    /// C1 and C2 run in the daemon when no remote worker is free (C2 is the
    /// memory-heavy one: ~3 GiB at 2KiB, far more at 32GiB); 0 sends every C2
    /// to a worker.
    pub commit: usize,
    /// C1s run in the daemon for C2s that go to workers (each reads the
    /// sector's layers and trees, then uploads its output), at once.
    pub remote_c1: usize,
    /// Finalize.
    pub finalize: usize,
    /// Sectors of one size labeled together in one PC1 task (batch PC1: one
    /// parent gathering and interleaved hashing for all; more sectors per hour, each
    /// taking longer). 1 labels each sector alone.
    pub pc1_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { pre_commit: 1, pc2: 1, commit: 1, remote_c1: 4, finalize: 2, pc1_batch: 1 }
    }
}

/// Retries of failed steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Consecutive failures of one step before the sector is Failed.
    pub max_attempts: u32,
    /// Wait before the first retry (ms); doubles per failure.
    pub base_backoff_ms: u64,
    /// Longest wait (ms).
    pub max_backoff_ms: u64,
    /// While a kind of task is paused by a fault of the node (a corrupt
    /// parameter file, a full disk), one task of it is tried this often (ms)
    /// to see whether the operator fixed it.
    pub node_fault_probe_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let p = RetryPolicy::default();
        Self {
            max_attempts: p.max_attempts,
            base_backoff_ms: p.base_backoff.as_millis() as u64,
            max_backoff_ms: p.max_backoff.as_millis() as u64,
            node_fault_probe_ms: 60_000,
        }
    }
}

impl RetryConfig {
    /// As a lifecycle policy.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_backoff: Duration::from_millis(self.base_backoff_ms),
            max_backoff: Duration::from_millis(self.max_backoff_ms),
        }
    }
}

/// Filling data sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackingConfig {
    /// A data sector that is not full starts sealing this long after its first piece (ms).
    pub wait_ms: u64,
    /// Keep the unsealed copy of data sectors after finalize (for retrieval).
    pub keep_unsealed: bool,
    /// A piece is refused unless the data directory keeps at least this much
    /// free after its copy (bytes): sealing needs room for layers and trees.
    pub min_free_bytes: u64,
}

impl Default for PackingConfig {
    fn default() -> Self {
        Self { wait_ms: 60_000, keep_unsealed: true, min_free_bytes: 1 << 30 }
    }
}

/// The most sectors kiln puts in one sealing message (PreCommitSectorBatch2
/// takes at most 256).
pub const MAX_BATCH_SECTORS: usize = 256;

/// Sealing messages: PreCommits and ProveCommits go in batches (one
/// PreCommitSectorBatch2 or ProveCommitSectors3 carries up to `*_batch`
/// sectors). A batch is sent when it is full, when its oldest sector has
/// waited `*_wait_ms`, or when waiting longer would leave a sector less than
/// `slack_epochs` before its ticket or its PreCommit expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesConfig {
    /// The most sectors in one PreCommit message (1 to 256).
    pub precommit_batch: usize,
    /// The longest a sector ready to pre-commit waits for others (ms).
    pub precommit_wait_ms: u64,
    /// The most sectors in one ProveCommit message (1 to 256).
    pub commit_batch: usize,
    /// The longest a proven sector waits for others (ms).
    pub commit_wait_ms: u64,
    /// Epochs of margin kept before a ticket or a PreCommit would expire.
    pub slack_epochs: u64,
    /// How long sectors live, in days after their ticket (clamped to what
    /// the miner actor accepts: about 211 to 1278 days).
    pub sector_lifetime_days: u64,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        Self {
            precommit_batch: 32,
            precommit_wait_ms: 0,
            commit_batch: 32,
            commit_wait_ms: 0,
            slack_epochs: 60,
            sector_lifetime_days: 540,
        }
    }
}

/// The embedded devnet chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// Milliseconds per epoch.
    pub block_time_ms: u64,
    /// Epochs from a PreCommit landing to its seed (InteractivePoRepDelay).
    pub seed_delay: u64,
    /// Epochs after a PreCommit within which its ProveCommit must land.
    pub prove_commit_window: u64,
    /// Oldest ticket a PoRep may use, in epochs.
    pub max_ticket_age: u64,
    /// Deadlines per proving period (Filecoin: 48).
    pub deadlines: u64,
    /// Epochs of each deadline's challenge window (Filecoin: 60).
    pub deadline_window: u64,
    /// The Window PoSt challenge is drawn this many epochs before the window opens.
    pub challenge_lookback: u64,
    /// Chance per epoch, in thousandths, that the miner wins a block (and owes a Winning PoSt).
    pub election_per_mille: u64,
    /// Epochs a won election waits for its Winning PoSt.
    pub winning_window: u64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        let p = wire::chain::ProvingSchedule::default();
        Self {
            block_time_ms: 1_000,
            seed_delay: 10,
            prove_commit_window: 3_000,
            max_ticket_age: 900,
            deadlines: p.deadlines,
            deadline_window: p.window,
            challenge_lookback: p.lookback,
            election_per_mille: p.election_per_mille,
            winning_window: p.winning_window,
        }
    }
}

/// Remote workers (`kiln-worker`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// How often workers heartbeat (ms); told to each worker when it registers.
    pub heartbeat_ms: u64,
    /// A remote task runs elsewhere when its worker has not renewed its lease
    /// (with a heartbeat) for this long (ms); a worker silent this long is offline.
    pub lease_ms: u64,
    /// Longest wait for a worker to accept a task (ms).
    pub dispatch_timeout_ms: u64,
    /// PEM certificates trusted, besides the public web roots, for workers
    /// serving `https://` (their CA, or a self-signed worker's own certificate).
    pub ca_cert: Option<PathBuf>,
    /// A remote task not finished this long after it was handed out runs
    /// elsewhere, heartbeats or not (ms): a worker whose prover hangs cannot
    /// hold a sector.
    pub task_deadline_ms: u64,
    /// Consecutive failures of a worker (reported failures, lapsed leases,
    /// missed deadlines) after which it is benched.
    pub failures_before_bench: u32,
    /// How long a benched worker gets no task (ms).
    pub bench_ms: u64,
    /// Accept a worker's registration whose URL names a host other than the
    /// address it connects from (a worker behind NAT or a proxy). Off, such a
    /// registration is refused: a worker token cannot point the daemon's
    /// requests (with the C1 outputs and dispatch key) at another machine.
    pub trust_advertised_urls: bool,
}

impl WorkersConfig {
    /// The deadline of a remote C2 of `size`: `task_deadline_ms` for 32GiB and
    /// 64GiB, a quarter of it for 512MiB, a sixteenth for 2KiB and 8MiB (with
    /// the default, 4 h, 1 h and 15 min).
    pub fn task_deadline_ms_for(&self, size: proofs::SectorSize) -> u64 {
        use proofs::SectorSize as S;
        match size {
            S::GiB32 | S::GiB64 => self.task_deadline_ms,
            S::MiB512 => self.task_deadline_ms / 4,
            S::KiB2 | S::MiB8 => self.task_deadline_ms / 16,
        }
    }
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: 5_000,
            lease_ms: 60_000,
            dispatch_timeout_ms: 120_000,
            ca_cert: None,
            task_deadline_ms: 4 * 3_600_000,
            failures_before_bench: 3,
            bench_ms: 600_000,
            trust_advertised_urls: false,
        }
    }
}

fn default_node() -> String {
    crate::store::DEFAULT_NODE.to_string()
}

impl Config {
    /// A configuration with defaults for everything but the essentials.
    pub fn new(data_dir: PathBuf, sector_size: SectorSize, miner_id: u64) -> Self {
        Self {
            data_dir,
            sector_size,
            miner_id,
            node: default_node(),
            param_dir: None,
            parent_cache_dir: None,
            api: ApiConfig::default(),
            limits: Limits::default(),
            retry: RetryConfig::default(),
            packing: PackingConfig::default(),
            chain: ChainConfig::default(),
            messages: MessagesConfig::default(),
            workers: WorkersConfig::default(),
            history: HistoryConfig::default(),
            proving: ProvingConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let config: Self = toml::from_str(&text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        config.check().map_err(err)?;
        Ok(config)
    }

    /// Values TOML accepts but kiln cannot use.
    pub fn check(&self) -> Result<(), String> {
        let node_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.node.is_empty() || self.node.len() > 64 || !self.node.chars().all(node_ok) {
            return Err(format!(
                "node: {:?} is not a node name (1 to 64 letters, digits, '.', '_' or '-')",
                self.node
            ));
        }
        let l = &self.limits;
        if l.pre_commit == 0 || l.pc2 == 0 || l.finalize == 0 {
            return Err("limits: pre_commit, pc2 and finalize need at least 1 concurrent task".into());
        }
        if l.pc1_batch == 0 {
            return Err("limits: pc1_batch needs at least 1 sector".into());
        }
        let api_cap =
            self.api.max_connections.unwrap_or(wire::server::ServerLimits::default().max_connections);
        self.api.limits(api_cap).check().map_err(|e| format!("api: {e}"))?;
        if let Some(n) = self.metrics.max_connections {
            if n == 0 || n > wire::descriptors::MAX_CONNECTIONS {
                return Err(format!(
                    "metrics: max_connections must be between 1 and {}",
                    wire::descriptors::MAX_CONNECTIONS
                ));
            }
        }
        if self.api.tls_cert.is_some() != self.api.tls_key.is_some() {
            return Err("api: tls_cert and tls_key go together".into());
        }
        if let Some(addr) = &self.metrics.listen {
            wire::metrics::check_loopback(addr).map_err(|e| format!("metrics: {e}"))?;
        }
        if self.metrics.history_interval_ms < 100 || self.metrics.history_samples == 0 {
            return Err(
                "metrics: history_interval_ms must be at least 100 and history_samples above 0".into()
            );
        }
        let w = &self.workers;
        // Timestamps are i64 milliseconds: a lease of more than a day is a typo, and
        // bounding it keeps `now + lease_ms` far from overflowing.
        const DAY_MS: u64 = 86_400_000;
        if [w.lease_ms, w.heartbeat_ms, w.dispatch_timeout_ms, w.task_deadline_ms, w.bench_ms]
            .iter()
            .any(|&ms| ms > DAY_MS)
        {
            return Err(
                "workers: heartbeat_ms, lease_ms, dispatch_timeout_ms, task_deadline_ms and bench_ms \
                        must be at most a day (86400000)"
                    .into(),
            );
        }
        if w.task_deadline_ms == 0 || w.failures_before_bench == 0 {
            return Err("workers: task_deadline_ms and failures_before_bench must be above 0".into());
        }
        if w.heartbeat_ms == 0 || w.lease_ms < w.heartbeat_ms.saturating_mul(2) {
            return Err(
                "workers: lease_ms must be at least twice heartbeat_ms (and heartbeat_ms above 0)".into()
            );
        }
        if w.dispatch_timeout_ms == 0 {
            return Err("workers.dispatch_timeout_ms must be above 0".into());
        }
        if self.retry.max_attempts == 0 {
            return Err("retry.max_attempts must be at least 1".into());
        }
        let m = &self.messages;
        let max = MAX_BATCH_SECTORS;
        if !(1..=max).contains(&m.precommit_batch) || !(1..=max).contains(&m.commit_batch) {
            return Err(format!("messages: precommit_batch and commit_batch must be between 1 and {max}"));
        }
        if [m.precommit_wait_ms, m.commit_wait_ms].iter().any(|&ms| ms > DAY_MS * 7) {
            return Err("messages: precommit_wait_ms and commit_wait_ms must be at most a week".into());
        }
        if self.chain.block_time_ms == 0 {
            return Err("chain.block_time_ms must be at least 1".into());
        }
        if self.chain.prove_commit_window <= self.chain.seed_delay {
            return Err("chain.prove_commit_window must be longer than chain.seed_delay".into());
        }
        if self.chain.deadlines < 1 || self.chain.deadline_window < 2 {
            return Err("chain.deadlines must be at least 1 and chain.deadline_window at least 2".into());
        }
        if self.chain.election_per_mille > 1000 || self.chain.winning_window == 0 {
            return Err("chain.election_per_mille must be 0..=1000 and chain.winning_window above 0".into());
        }
        if self.proving.read_parallel == 0 || self.proving.sector_timeout_ms == 0 {
            return Err("proving.read_parallel and proving.sector_timeout_ms must be above 0".into());
        }
        Ok(())
    }

    /// File descriptors the daemon's own work may hold at once, kept out of
    /// the listeners' reach: the databases, logs and runtime, the dispatcher's
    /// connections, each sealing task's sector files (its layers, tree files,
    /// replica and metadata) at the limits, and each sector a PoSt reads at once.
    pub fn work_descriptors(&self) -> u64 {
        /// stdio, the lock, SQLite (store, chain, observer: database, WAL and
        /// shared memory each), the log, the runtime's epoll and wakers, spare.
        const BASE: u64 = 128;
        /// Outgoing connections to workers kept open for reuse, and in flight.
        const DISPATCH: u64 = 32;
        let shape = self.sector_size.shape();
        let trees = shape.tree.base_tree_count() as u64;
        let per_task = u64::from(shape.layers) + 2 * trees + 8;
        let l = &self.limits;
        let tasks = (l.pre_commit * l.pc1_batch + l.commit + l.remote_c1 + l.finalize) as u64;
        // The replica, its tree_r_last files, p_aux and the checks beside it.
        let per_read = trees + 3;
        BASE + DISPATCH
            + l.remote_c1 as u64
            + per_task.saturating_mul(tasks)
            + per_read.saturating_mul(self.proving.read_parallel as u64)
    }

    /// How `limit` file descriptors are shared: [`Config::work_descriptors`]
    /// for the work, the rest for the API's connections and, with
    /// `[metrics] listen`, the scrape address's (caps in that order). A cap
    /// set by hand that does not fit, or a limit that leaves the API fewer
    /// than 32 connections, is refused.
    pub fn descriptor_budget(&self, limit: u64) -> Result<wire::descriptors::Budget, String> {
        use wire::descriptors::ListenerCap;
        let mut listeners = vec![ListenerCap {
            setting: "[api] max_connections",
            set: self.api.max_connections,
            default: wire::server::ServerLimits::default().max_connections,
            least: 32,
        }];
        if self.metrics.listen.is_some() {
            listeners.push(ListenerCap {
                setting: "[metrics] max_connections",
                set: self.metrics.max_connections,
                default: 16,
                least: 2,
            });
        }
        wire::descriptors::plan(limit, self.work_descriptors(), &listeners)
    }

    /// The prover id.
    pub fn prover_id(&self) -> ProverId {
        ProverId::from_actor_id(self.miner_id)
    }

    /// Where Groth16 parameters are read.
    pub fn param_dir(&self) -> PathBuf {
        self.param_dir.clone().unwrap_or_else(crate::dirs::param_dir)
    }

    /// Where SDR parent caches are kept.
    pub fn parent_cache_dir(&self) -> PathBuf {
        self.parent_cache_dir.clone().unwrap_or_else(crate::dirs::parent_cache_dir)
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kiln.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn minimal_config_gets_defaults_and_round_trips() {
        let c = load("data_dir = \"/srv/kiln\"\nsector_size = \"2KiB\"\nminer_id = 1000\n").unwrap();
        assert_eq!(c, Config::new("/srv/kiln".into(), SectorSize::KiB2, 1000));
        let again: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn commit_limit_zero_means_workers_only() {
        let c =
            load("data_dir = \"/d\"\nsector_size = \"2KiB\"\nminer_id = 1\n[limits]\ncommit = 0\n").unwrap();
        assert_eq!(c.limits.commit, 0);
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let base = "data_dir = \"/d\"\nsector_size = \"2KiB\"\nminer_id = 1\n";
        let cases = [
            ("sector_size = \"2KiB\"\nminer_id = 1\n", "data_dir"),
            (&format!("{base}[limits]\nc2 = 2\n") as &str, "unknown field `c2`"),
            ("data_dir = \"/d\"\nsector_size = \"3KiB\"\nminer_id = 1\n", "3KiB"),
            (&format!("{base}[limits]\nfinalize = 0\n"), "at least 1 concurrent task"),
            (&format!("{base}[workers]\nheartbeat_ms = 5000\nlease_ms = 6000\n"), "lease_ms"),
            // Values that would overflow `2 * heartbeat_ms` or `now + lease_ms` are refused.
            (
                &format!("{base}[workers]\nheartbeat_ms = 9223372036854775807\nlease_ms = 1\n"),
                "at most a day",
            ),
            (&format!("{base}[workers]\nlease_ms = 9223372036854775807\n"), "at most a day"),
            (&format!("{base}[api]\ntls_cert = \"/etc/kiln/api.crt\"\n"), "tls_cert and tls_key"),
            // Beyond what a semaphore holds: refused, not a panic in the API thread.
            (
                &format!("{base}[api]\nmax_connections = 3000000000000000000\n"),
                "max_connections must be between",
            ),
            (&format!("{base}[metrics]\nmax_connections = 0\n"), "max_connections must be between"),
            (&format!("{base}[chain]\nseed_delay = 10\nprove_commit_window = 5\n"), "prove_commit_window"),
            ("data_dir = [", "kiln.toml"),
        ];
        for (text, expected) in cases {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text:?}: {e}");
            assert!(e.contains("kiln.toml"), "{e}");
        }
    }

    #[test]
    fn descriptors_are_shared_between_the_work_and_the_listeners() {
        let mut c = Config::new("/d".into(), SectorSize::KiB2, 1);
        // 2KiB, default limits: 128 + 32 + 4 + 12 per task x 8 + 4 per read x 16.
        assert_eq!(c.work_descriptors(), 128 + 32 + 4 + 12 * 8 + 4 * 16);
        let b = c.descriptor_budget(1024).unwrap();
        assert_eq!(b.caps, [1024 - c.work_descriptors() as usize - 2]);
        // 32GiB sectors hold more files per task and per PoSt read.
        let small = c.work_descriptors();
        c.sector_size = SectorSize::GiB32;
        assert_eq!(c.work_descriptors(), 128 + 32 + 4 + (11 + 16 + 8) * 8 + 11 * 16);
        assert!(c.work_descriptors() > small);
        assert!(c.descriptor_budget(512).unwrap_err().contains("fewer than the 32"));
        assert_eq!(c.descriptor_budget(65_536).unwrap().caps, [8192]);
        // A cap set by hand must fit; the metrics listener takes its share.
        c.sector_size = SectorSize::KiB2;
        c.api.max_connections = Some(8192);
        let e = c.descriptor_budget(1024).unwrap_err();
        assert!(e.contains("[api] max_connections = 8192"), "{e}");
        c.api.max_connections = None;
        c.metrics.listen = Some("127.0.0.1:0".into());
        let b = c.descriptor_budget(1024).unwrap();
        assert_eq!(b.caps[1], 16);
        assert_eq!(b.caps[0] as u64 + 16 + c.work_descriptors() + 4, 1024);
    }
}
