//! The daemon–worker protocol: message types, endpoints, limits and the
//! token-derived secrets. Version [`PROTOCOL_VERSION`]; see `docs/protocol.md`.

use proofs::post::PostProof;
use proofs::snark::params::GrothParams;
use proofs::{Randomness, SectorSize};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The protocol version both sides must speak (sent at registration).
pub const PROTOCOL_VERSION: u32 = 4;

/// The daemon's endpoints for workers, under the API prefix.
pub const DAEMON_WORKER_PATH: &str = "/worker";

/// Largest task body a worker reads: the largest input of any kind.
pub const MAX_TASK_BYTES: usize = {
    let (c2, post) = (RemoteTask::C2.max_input_bytes(), RemoteTask::WindowPost.max_input_bytes());
    (if c2 > post { c2 } else { post }) as usize
};

/// Largest result of any type: what the result route refuses from
/// `Content-Length` alone, before it knows the task.
pub const MAX_RESULT_BYTES: u64 = {
    let (c2, post) = (RemoteTask::C2.max_result_bytes(), RemoteTask::WindowPost.max_result_bytes());
    if c2 > post {
        c2
    } else {
        post
    }
};

/// The request header carrying a task's [`TaskEnvelope`] (JSON) on
/// `POST /v0/tasks/{id}`; the body is the task's input.
pub const TASK_HEADER: &str = "kiln-task";

/// Most tasks a heartbeat may list (each is a lease renewal in one transaction).
pub const MAX_HEARTBEAT_TASKS: usize = 1024;

/// Most slots a worker may advertise (tasks it runs at once).
pub const MAX_SLOTS: u32 = 256;

/// Task types a worker can take: each names its input, its result and
/// their limits, so the one task route and the one result route serve them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteTask {
    /// The Groth16 proof of a sector's C1 output.
    C2,
    /// The Groth16 proofs of a Window PoSt from its vanilla proofs.
    #[serde(rename = "wdpost")]
    WindowPost,
}

impl RemoteTask {
    /// Every type.
    pub const ALL: [Self; 2] = [Self::C2, Self::WindowPost];

    /// Largest input a worker reads: a binary C1 output; a partition's
    /// vanilla proofs ([`WindowPostInput`]).
    pub const fn max_input_bytes(self) -> u64 {
        match self {
            Self::C2 => proofs::seal::c1::MAX_C1_BYTES,
            Self::WindowPost => 1 << 30,
        }
    }

    /// Largest result the daemon takes (streamed to a file, never held whole
    /// in memory): Groth16 proofs of 192 bytes, one per partition.
    pub const fn max_result_bytes(self) -> u64 {
        match self {
            Self::C2 | Self::WindowPost => 64 * 1024,
        }
    }

    /// Checks a delivered result's length: both types deliver whole proofs.
    pub fn check_result_len(self, len: u64) -> Result<(), String> {
        let unit = proofs::snark::PROOF_BYTES as u64;
        if len == 0 || !len.is_multiple_of(unit) || len > self.max_result_bytes() {
            return Err(format!(
                "a {} result is a positive multiple of {unit} bytes up to {}, not {len} bytes",
                self.name(),
                self.max_result_bytes()
            ));
        }
        Ok(())
    }

    /// The name as written on the wire, in `--tasks` and in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::C2 => "c2",
            Self::WindowPost => "wdpost",
        }
    }

    /// Parses a task name as `--tasks` takes it.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "c2" => Ok(Self::C2),
            "wdpost" => Ok(Self::WindowPost),
            "c1" | "pc1" | "pc2" => Err(format!(
                "task type {s:?} is not offered by kiln-worker yet (its sector files stay on the daemon); c2 and wdpost are"
            )),
            other => Err(format!("unknown task type {other:?} (known: c2, wdpost)")),
        }
    }
}

pub use proofs::gpu::GpuInfo;

/// Host memory one C2 of `size` may take at its peak, as the scheduler
/// counts it. Measured peaks: 1.3 GiB (2KiB) and 1.6 GiB (8MiB) with kiln's
/// CPU prover, 3.1 and 3.9 GB with bellperson's GPU prover, which synthesises
/// every partition at once; 32GiB and 64GiB take the reference's published
/// ~190 GiB for ten partitions synthesised together.
pub fn c2_memory_bytes(size: SectorSize) -> u64 {
    const GIB: u64 = 1 << 30;
    match size {
        SectorSize::KiB2 | SectorSize::MiB8 => 4 * GIB,
        SectorSize::MiB512 => 6 * GIB,
        SectorSize::GiB32 | SectorSize::GiB64 => 192 * GIB,
    }
}

/// GPUs a worker may list.
pub const MAX_GPUS: usize = 64;

/// Parameter files a worker holds, by sector size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamFile {
    /// The sector size the parameters prove.
    pub sector_size: SectorSize,
    /// The `.params` file name.
    pub file: String,
}

impl ParamFile {
    /// The entry of a parameter set.
    pub fn of(params: &GrothParams) -> Self {
        Self {
            sector_size: params.sector_size(),
            file: params
                .params_path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
    /// The entry of `size`'s PoRep parameters.
    pub fn porep(size: SectorSize) -> Self {
        Self::of(&GrothParams::porep(Path::new(""), size))
    }
    /// The entry of `size`'s Window PoSt parameters.
    pub fn window_post(size: SectorSize) -> Self {
        Self::of(&GrothParams::post(Path::new(""), PostProof::window(size)))
    }
}

/// What a worker can run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Task types it takes.
    pub tasks: Vec<RemoteTask>,
    /// Tasks it runs at once.
    pub slots: u32,
    /// CPU cores.
    pub cores: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// GPUs it proves on: none for a build without `gpu`, with `--no-gpu`, or
    /// where CUDA finds none.
    pub gpus: Vec<GpuInfo>,
    /// Whether it was built with the `gpu` feature (CUDA proving).
    pub gpu_build: bool,
    /// Parameter files it holds.
    pub params: Vec<ParamFile>,
}

impl Capabilities {
    /// Whether it can prove C2 for `size`.
    pub fn proves(&self, size: SectorSize) -> bool {
        self.tasks.contains(&RemoteTask::C2) && self.holds(&GrothParams::porep(Path::new(""), size))
    }

    /// Whether it can prove Window PoSt SNARKs for `size`.
    pub fn proves_window_post(&self, size: SectorSize) -> bool {
        self.tasks.contains(&RemoteTask::WindowPost)
            && self.holds(&GrothParams::post(Path::new(""), PostProof::window(size)))
    }

    fn holds(&self, params: &GrothParams) -> bool {
        self.params.contains(&ParamFile::of(params))
    }

    /// C2s of `size` it may run at once: its slots, but no more than its
    /// memory holds ([`c2_memory_bytes`]); a worker that reports no memory
    /// figure gets its slots.
    pub fn slots_for(&self, size: SectorSize) -> u32 {
        if self.memory_bytes == 0 {
            return self.slots;
        }
        let fit = self.memory_bytes / c2_memory_bytes(size);
        self.slots.min(u32::try_from(fit).unwrap_or(u32::MAX))
    }

    /// Whether it proves C2 for `size` on GPUs: each GPU it has holds what
    /// such a proof needs (bellperson spreads one proof over all of them).
    pub fn proves_on_gpu(&self, size: SectorSize) -> bool {
        let need = proofs::gpu::c2_memory_needed(size);
        !self.gpus.is_empty() && self.gpus.iter().all(|g| g.memory_bytes >= need)
    }
}

/// What `POST /v0/tasks/{id}` on a worker carries in its [`TASK_HEADER`]:
/// the task's type and what it is for. The body is the type's input; the
/// worker answers 202 [`TaskAccepted`] and later delivers the result to
/// `POST /v0/worker/tasks/{id}/result` (or a failure).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskEnvelope {
    /// The task's type.
    pub kind: RemoteTask,
    /// The sectors' size.
    pub sector_size: SectorSize,
    /// The sector it is for; none for a task over many (a Window PoSt partition).
    pub sector: Option<u64>,
}

impl TaskEnvelope {
    /// The header value.
    pub fn to_header(&self) -> String {
        serde_json::to_string(self).expect("serialises")
    }

    /// Reads a header value.
    pub fn from_header(value: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(value).map_err(|e| format!("the {TASK_HEADER} header: {e}"))
    }
}

/// A Window PoSt task's input: prove one partition (V1_2) from its sectors'
/// vanilla proofs. Binary: the 32-byte randomness, a little-endian `u32`
/// count, then each proof as a little-endian `u32` length and the
/// reference's bincode bytes, in ascending sector id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowPostInput {
    /// The window's randomness (masked).
    pub randomness: Randomness,
    /// Each sector's vanilla proof in the reference's bincode.
    pub vanilla: Vec<Vec<u8>>,
}

impl WindowPostInput {
    /// The bytes sent.
    pub fn encode(&self) -> Vec<u8> {
        let len = 36 + self.vanilla.iter().map(|v| 4 + v.len()).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&self.randomness.0);
        out.extend_from_slice(&(self.vanilla.len() as u32).to_le_bytes());
        for v in &self.vanilla {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }

    /// Reads the bytes sent; says what is wrong with malformed ones.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        fn take<'a>(rest: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
            if rest.len() < n {
                return Err(format!("Window PoSt input: {what} is cut short"));
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head)
        }
        let u32_at = |rest: &mut &[u8], what: &str| -> Result<usize, String> {
            let b = take(rest, 4, what)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let mut rest = bytes;
        let mut randomness = [0u8; 32];
        randomness.copy_from_slice(take(&mut rest, 32, "the randomness")?);
        let count = u32_at(&mut rest, "the proof count")?;
        // Each proof takes at least its length: a count the body cannot hold is refused before allocating.
        if count > rest.len() / 4 {
            return Err(format!("Window PoSt input: {count} proofs cannot fit in {} bytes", rest.len()));
        }
        let mut vanilla = Vec::with_capacity(count);
        for i in 0..count {
            let len = u32_at(&mut rest, &format!("proof {i}'s length"))?;
            vanilla.push(take(&mut rest, len, &format!("proof {i}"))?.to_vec());
        }
        if !rest.is_empty() {
            return Err(format!("Window PoSt input: {} bytes after the last proof", rest.len()));
        }
        Ok(Self { randomness: Randomness(randomness), vanilla })
    }
}

/// `POST /v0/worker/register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// [`PROTOCOL_VERSION`] of the worker.
    pub protocol: u32,
    /// The worker process's random id.
    pub instance: String,
    /// Where its task API listens (`http://host:port`).
    pub url: String,
    /// The worker's build (`kiln-worker --version`).
    pub version: String,
    /// What it can run.
    pub capabilities: Capabilities,
}

/// The daemon's answer to a registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The name the worker's token carries.
    pub name: String,
    /// The daemon process's random id; a change means it restarted.
    pub daemon_instance: String,
    /// How often to heartbeat (ms).
    pub heartbeat_ms: u64,
    /// A task's lease: it runs elsewhere if not renewed for this long (ms).
    pub lease_ms: u64,
}

/// `POST /v0/worker/heartbeat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The worker process's id (as registered).
    pub instance: String,
    /// Tasks it is running or has results of not yet delivered.
    pub running: Vec<u64>,
}

/// The daemon's answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The daemon process's id.
    pub daemon_instance: String,
    /// Tasks of `running` the worker should drop (cancelled or no longer its own).
    pub drop: Vec<u64>,
}

/// `POST /v0/worker/tasks/{id}/failure`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFailure {
    /// Why the task failed.
    pub message: String,
}

/// A worker's task as its info shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerTask {
    /// Task id (the daemon's).
    pub id: u64,
    /// Its type.
    pub kind: RemoteTask,
    /// The sector; none for a task over many.
    pub sector: Option<u64>,
    /// `proving`, `reporting` or `cancelled`.
    pub state: String,
    /// When it was accepted (ms since the epoch).
    pub accepted_ms: i64,
}

/// `GET /v0/info` on a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The worker's build.
    pub version: String,
    /// Its process id for the daemon.
    pub instance: String,
    /// Its daemon.
    pub miner: String,
    /// Whether the daemon has accepted its registration.
    pub registered: bool,
    /// What it can run.
    pub capabilities: Capabilities,
    /// Tasks it holds.
    pub tasks: Vec<WorkerTask>,
}

/// The answer to a task a worker accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskAccepted {
    /// The task id.
    pub id: u64,
}

/// Makes a new worker token: 32 random bytes, hex, after a recognisable prefix.
pub fn new_worker_token() -> String {
    format!("kiln-worker-{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// What the daemon stores to recognise a worker token (never the token).
pub fn token_hash(token: &str) -> String {
    derive("kiln worker token v1", token)
}

/// The key the daemon presents to a worker's task API. Both sides derive it
/// from the worker's token, so nothing else has to be exchanged, and a
/// stolen daemon database yields no token that passes as the worker.
pub fn dispatch_key(token: &str) -> String {
    derive("kiln dispatch key v1", token)
}

fn derive(domain: &str, token: &str) -> String {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0]);
    h.update(token.trim().as_bytes());
    hex::encode(h.finalize())
}

/// A worker name: 1 to 64 of `A-Z a-z 0-9 - _ .`.
pub fn check_worker_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!("worker name {name:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'"))
    }
}

/// Constant-time comparison, so a secret cannot be guessed byte by byte from timings.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_secrets_differ_from_each_other_and_from_the_token() {
        let t = new_worker_token();
        assert!(t.starts_with("kiln-worker-") && t.len() == 12 + 64);
        assert_ne!(token_hash(&t), dispatch_key(&t));
        assert_ne!(token_hash(&t), token_hash(&new_worker_token()));
        assert_eq!(dispatch_key(&t), dispatch_key(&format!(" {t}\n")), "surrounding whitespace is ignored");
        assert!(!token_hash(&t).contains(&t[12..]));
    }

    #[test]
    fn names_and_task_types_are_checked() {
        assert!(check_worker_name("gpu-box_1.a").is_ok());
        for bad in ["", "a b", "x/y", &"n".repeat(65)] {
            assert!(check_worker_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(RemoteTask::parse("c2"), Ok(RemoteTask::C2));
        for task in [RemoteTask::C2, RemoteTask::WindowPost] {
            assert_eq!(RemoteTask::parse(task.name()), Ok(task));
            assert_eq!(serde_json::to_string(&task).unwrap(), format!("\"{}\"", task.name()));
        }
        assert!(RemoteTask::parse("pc2").unwrap_err().contains("not offered"));
        for task in RemoteTask::ALL {
            let kinds = crate::api::TaskKind::ALL.into_iter().filter(|k| k.remote() == Some(task)).count();
            assert_eq!(kinds, 1, "{task:?} runs one task kind");
        }
        let envelope =
            TaskEnvelope { kind: RemoteTask::WindowPost, sector_size: SectorSize::KiB2, sector: None };
        assert_eq!(TaskEnvelope::from_header(envelope.to_header().as_bytes()), Ok(envelope));
        assert!(TaskEnvelope::from_header(br#"{"kind":"pc9","sector_size":"2KiB","sector":1}"#).is_err());
        assert!(RemoteTask::parse("c9").unwrap_err().contains("unknown task type"));
    }

    #[test]
    fn window_post_inputs_round_trip_and_malformed_ones_are_named() {
        let input = WindowPostInput {
            randomness: Randomness([7; 32]),
            vanilla: vec![vec![1, 2, 3], vec![], vec![9; 300]],
        };
        let bytes = input.encode();
        assert_eq!(WindowPostInput::decode(&bytes), Ok(input));
        assert!(WindowPostInput::decode(&bytes[..bytes.len() - 1]).unwrap_err().contains("proof 2"));
        assert!(WindowPostInput::decode(&bytes[..20]).unwrap_err().contains("randomness"));
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(WindowPostInput::decode(&extra).unwrap_err().contains("after the last proof"));
        let mut huge = bytes[..32].to_vec();
        huge.extend(u32::MAX.to_le_bytes());
        assert!(WindowPostInput::decode(&huge).unwrap_err().contains("cannot fit"));
        assert!(RemoteTask::C2.check_result_len(192 * 10).is_ok());
        for bad in [0, 100, 193, 192 * 1000] {
            assert!(RemoteTask::WindowPost.check_result_len(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_worker_proves_only_sizes_and_circuits_it_holds_parameters_for() {
        let caps = Capabilities {
            tasks: vec![RemoteTask::C2, RemoteTask::WindowPost],
            params: vec![ParamFile::porep(SectorSize::KiB2)],
            ..Default::default()
        };
        assert!(caps.proves(SectorSize::KiB2));
        assert!(!caps.proves(SectorSize::GiB32));
        assert!(!caps.proves_window_post(SectorSize::KiB2), "PoRep parameters only");
        let caps = Capabilities { params: vec![ParamFile::window_post(SectorSize::KiB2)], ..caps };
        assert!(caps.proves_window_post(SectorSize::KiB2));
        assert!(!caps.proves(SectorSize::KiB2), "Window parameters only");
        assert!(!Capabilities { tasks: vec![], ..caps }.proves_window_post(SectorSize::KiB2));
    }
}
