//! The chain as the sealing pipeline sees it, and kiln's embedded devnet chain.
//!
//! A chain backend implements four roles, each a small trait:
//!
//! - [`ChainHead`]: the head epoch, when epochs start, and randomness;
//! - [`ChainMessages`]: sending messages, their receipts, and the PreCommits
//!   they leave on chain;
//! - [`MessageLog`]: the messages this miner sent, in order (listed by the API,
//!   counted by the metrics);
//! - [`ChainProving`]: proving deadlines, the sectors they prove, PoSts and
//!   elections.
//!
//! [`Chain`] is all four. [`EmbeddedChain`] implements them over SQLite (the
//! sector database's file): epochs follow the clock at a configured block
//! time, a message sent in epoch `e` is executed in epoch `e + 1`, and
//! ProveCommits are checked by an on-chain verifier. Time is passed in
//! (milliseconds since the epoch) so that tests control it. Message ids are
//! opaque ([`MessageId`]): only the chain that gave one reads it.

use proofs::post::PostProof;
use proofs::snark::SealStatement;
use proofs::{Commitment, Randomness};
use std::path::PathBuf;
use std::sync::Arc;

/// An error of a chain backend's own, boxed so that no backend's types (a
/// database's, an RPC client's) show in [`ChainError`].
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

pub use wire::chain::{
    DeadlineWindow, ElectionOnChain, HealthEvent, Message, MessageId, PieceRef, PostOnChain,
    PreCommitOnChain, PreCommitSector, ProveCommitSector, ProvingSchedule, ProvingSectorOnChain, Receipt,
    SealingMethod, SectorHealth,
};

/// Exit code of a message that was executed successfully.
pub const EXIT_OK: i64 = 0;
/// Exit code of a message with invalid arguments (a bad proof, a stale ticket, too early or too late).
pub const EXIT_ILLEGAL_ARGUMENT: i64 = 16;
/// Exit code of a message about something that does not exist (no PreCommit).
pub const EXIT_NOT_FOUND: i64 = 17;
/// Exit code of a message the state forbids (a sector already pre-committed or proven).
pub const EXIT_FORBIDDEN: i64 = 18;

/// The name of an exit code, as Lotus prints it (`exitcode.ExitCode`'s
/// names in go-state-types); `None` for a code without one.
pub fn exit_code_name(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "Ok",
        1 => "SysErrSenderInvalid",
        2 => "SysErrSenderStateInvalid",
        4 => "SysErrIllegalInstruction",
        5 => "SysErrInvalidReceiver",
        6 => "SysErrInsufficientFunds",
        7 => "SysErrOutOfGas",
        9 => "SysErrIllegalExitCode",
        10 => "SysErrFatal",
        11 => "SysErrMissingReturn",
        16 => "ErrIllegalArgument",
        17 => "ErrNotFound",
        18 => "ErrForbidden",
        19 => "ErrInsufficientFunds",
        20 => "ErrIllegalState",
        21 => "ErrSerialization",
        22 => "ErrUnhandledMessage",
        23 => "ErrUnspecified",
        24 => "ErrAssertionFailed",
        25 => "ErrReadOnly",
        26 => "ErrNotPayable",
        _ => return None,
    })
}

/// Errors of a chain client (not of messages: those get receipts).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The chain's backend (its database, its node) failed.
    #[error("chain at {at}: {op}: {source}")]
    Backend {
        /// Where the chain is (a database file, a node's URL).
        at: String,
        /// What was being done.
        op: &'static str,
        /// The backend's error.
        #[source]
        source: BackendError,
    },
    /// Chain state that does not parse.
    #[error("chain at {at}: {reason}")]
    Corrupt {
        /// Where the chain is.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// A message that cannot be encoded.
    #[error("cannot encode a message: {0}")]
    Message(String),
    /// A message id the chain never gave.
    #[error("unknown message {0}")]
    UnknownMessage(MessageId),
    /// Randomness asked for an epoch that has not happened yet.
    #[error("epoch {asked} is in the future (head is {head})")]
    FutureEpoch {
        /// The epoch asked for.
        asked: u64,
        /// The head.
        head: u64,
    },
}

/// A message in the miner's log of sent messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// Its place in the log, from 1.
    pub seq: u64,
    /// Its id on the chain.
    pub id: MessageId,
    /// The message.
    pub message: Message,
    /// Its receipt, once executed.
    pub receipt: Option<Receipt>,
}

/// Checks PoRep proofs (on chain, and in the driver before a proof is sent)
/// and PoSt proofs (on chain).
pub trait SealVerifier: Send + Sync {
    /// Whether `proof` proves `statement`; `Err` for a verifier that cannot run
    /// (its disposition tells whether the node is at fault, e.g. a corrupt key).
    fn verify(&self, statement: &SealStatement, proof: &[u8]) -> Result<bool, proofs::Error>;

    /// Whether `proof` is a PoSt of type `post` over `sectors` (sector id,
    /// comm_r) for `randomness`. Verifiers of sealing only refuse to answer.
    fn verify_post(
        &self,
        post: &PostProof,
        randomness: &Randomness,
        sectors: &[(u64, Commitment)],
        proof: &[u8],
    ) -> Result<bool, proofs::Error> {
        let _ = (randomness, sectors, proof);
        Err(proofs::Error::InvalidProof(format!("this verifier does not check {post} proofs")))
    }
}

/// The real verifier: Groth16 verification with the parameter directory's keys.
pub struct ProofsVerifier {
    /// The parameter directory.
    pub param_dir: PathBuf,
}

impl SealVerifier for ProofsVerifier {
    fn verify(&self, statement: &SealStatement, proof: &[u8]) -> Result<bool, proofs::Error> {
        let params = proofs::snark::params::GrothParams::porep(&self.param_dir, statement.sector_size);
        let vk = params.seal_verifying_key()?;
        proofs::snark::verify_seal(statement, proof, &vk)
    }

    fn verify_post(
        &self,
        post: &PostProof,
        randomness: &Randomness,
        sectors: &[(u64, Commitment)],
        proof: &[u8],
    ) -> Result<bool, proofs::Error> {
        let vk = proofs::snark::params::GrothParams::post(&self.param_dir, *post).load_verifying_key()?;
        proofs::snark::post::verify(post, randomness, sectors, proof, &vk)
    }
}

/// The chain's clock and randomness. Every role is shared by the driver, the
/// prover and the API (`&self`, `Sync`); an implementation must not hold a
/// lock that readers wait on while it does slow work such as verifying a proof.
pub trait ChainHead: Send + Sync {
    /// The current epoch (executing any messages due, unless another caller is).
    fn head(&self, now_ms: i64) -> Result<u64, ChainError>;
    /// When `epoch` begins (ms since the Unix epoch): a message sent before
    /// the start of epoch `e` lands by epoch `e`, so deadlines are met by it.
    fn epoch_start_ms(&self, epoch: u64) -> i64;
    /// Randomness of `kind` at `epoch` (at most the head).
    fn randomness(&self, kind: RandomnessKind, epoch: u64, now_ms: i64) -> Result<Randomness, ChainError>;
    /// How far behind the head a seal ticket is drawn: a chain that can
    /// reorganise draws it where it is final, so the PreCommit that uses it
    /// stays valid (Filecoin: 900 epochs).
    fn ticket_lookback(&self) -> u64;
    /// The oldest a ticket may be, in epochs, when its PreCommit lands.
    fn max_ticket_age(&self) -> u64;
}

/// Sending messages, their receipts, and the PreCommits they leave.
pub trait ChainMessages: Send + Sync {
    /// Sends a message; it is executed in a later epoch.
    fn send(&self, message: &Message, now_ms: i64) -> Result<MessageId, ChainError>;
    /// The receipt of message `id`, once executed.
    fn receipt(&self, id: &MessageId, now_ms: i64) -> Result<Option<Receipt>, ChainError>;
    /// The PreCommit of `sector`, if one is live or proven.
    fn precommit(&self, sector: u64, now_ms: i64) -> Result<Option<PreCommitOnChain>, ChainError>;
    /// The newest message of `method` carrying `sector` that is pending or
    /// succeeded, so a sender that crashed before recording a send can adopt
    /// it instead of sending a duplicate.
    fn find_sent(
        &self,
        method: SealingMethod,
        sector: u64,
        now_ms: i64,
    ) -> Result<Option<MessageId>, ChainError>;
}

/// The messages this miner sent, in the order sent.
pub trait MessageLog: Send + Sync {
    /// Up to `limit` messages after the one at `after` (0: from the first),
    /// oldest first, each with its receipt once executed.
    fn messages_after(&self, after: u64, limit: usize, now_ms: i64) -> Result<Vec<SentMessage>, ChainError>;
    /// The message `id`, if this miner sent it.
    fn message(&self, id: &MessageId, now_ms: i64) -> Result<Option<SentMessage>, ChainError>;
    /// Every message sent, oldest first (page by page).
    fn messages(&self, now_ms: i64) -> Result<Vec<SentMessage>, ChainError> {
        let mut out: Vec<SentMessage> = Vec::new();
        loop {
            let after = out.last().map_or(0, |m| m.seq);
            let page = self.messages_after(after, 1_000, now_ms)?;
            let last = page.len() < 1_000;
            out.extend(page);
            if last {
                return Ok(out);
            }
        }
    }
    /// How many messages were sent and how many of them are executed (without reading them).
    fn message_counts(&self, now_ms: i64) -> Result<(u64, u64), ChainError>;
}

/// Proving: the deadlines, the sectors they prove, PoSts and elections.
pub trait ChainProving: Send + Sync {
    /// How proving is scheduled.
    fn proving_schedule(&self) -> ProvingSchedule;
    /// Every proven sector with its deadline, partition and health.
    fn proving_sectors(&self, now_ms: i64) -> Result<Vec<ProvingSectorOnChain>, ChainError>;
    /// The Window PoSts accepted for windows that opened at or after `since_open`.
    fn posts_since(&self, since_open: u64, now_ms: i64) -> Result<Vec<PostOnChain>, ChainError>;
    /// A SubmitWindowedPoSt for this window and partition that is pending or
    /// succeeded (so that a restarted prover never submits twice).
    fn find_post_message(
        &self,
        open_epoch: u64,
        partition: u64,
        now_ms: i64,
    ) -> Result<Option<MessageId>, ChainError>;
    /// Health changes at or after `since_epoch`, oldest first.
    fn health_events(&self, since_epoch: u64, now_ms: i64) -> Result<Vec<HealthEvent>, ChainError>;
    /// Whether the miner won the block election of `epoch`.
    fn won_election(&self, epoch: u64) -> bool;
    /// The sectors a Winning PoSt for the election of `epoch` draws from, by
    /// sector id: those active as of that epoch (what the chain checks the
    /// Winning PoSt against; a fault declared later does not change it).
    fn election_sectors(&self, epoch: u64, now_ms: i64) -> Result<Vec<ProvingSectorOnChain>, ChainError>;
    /// Won elections in `from..=to`, with their Winning PoSts once landed.
    fn elections(&self, from: u64, to: u64, now_ms: i64) -> Result<Vec<ElectionOnChain>, ChainError>;
}

/// A whole chain backend: every role.
pub trait Chain: ChainHead + ChainMessages + MessageLog + ChainProving {}

impl<T: ChainHead + ChainMessages + MessageLog + ChainProving + ?Sized> Chain for T {}

/// Every role trait, to call a concrete chain's methods: `use roles::*`.
pub mod roles {
    pub use super::{Chain, ChainHead, ChainMessages, ChainProving, MessageLog};
}

/// A chain assembled from one implementation per role: a backend that reuses
/// another's pieces, or a test double that replaces one role of a real chain.
#[derive(Clone)]
pub struct ComposedChain {
    /// The head and randomness.
    pub head: Arc<dyn ChainHead>,
    /// Sending and receipts.
    pub messages: Arc<dyn ChainMessages>,
    /// The log of sent messages.
    pub log: Arc<dyn MessageLog>,
    /// Proving.
    pub proving: Arc<dyn ChainProving>,
}

impl ComposedChain {
    /// Every role played by `chain`.
    pub fn of(chain: Arc<dyn Chain>) -> Self {
        Self { head: chain.clone(), messages: chain.clone(), log: chain.clone(), proving: chain }
    }
}

impl ChainHead for ComposedChain {
    fn head(&self, now_ms: i64) -> Result<u64, ChainError> {
        self.head.head(now_ms)
    }
    fn epoch_start_ms(&self, epoch: u64) -> i64 {
        self.head.epoch_start_ms(epoch)
    }
    fn randomness(&self, kind: RandomnessKind, epoch: u64, now_ms: i64) -> Result<Randomness, ChainError> {
        self.head.randomness(kind, epoch, now_ms)
    }
    fn ticket_lookback(&self) -> u64 {
        self.head.ticket_lookback()
    }
    fn max_ticket_age(&self) -> u64 {
        self.head.max_ticket_age()
    }
}

impl ChainMessages for ComposedChain {
    fn send(&self, message: &Message, now_ms: i64) -> Result<MessageId, ChainError> {
        self.messages.send(message, now_ms)
    }
    fn receipt(&self, id: &MessageId, now_ms: i64) -> Result<Option<Receipt>, ChainError> {
        self.messages.receipt(id, now_ms)
    }
    fn precommit(&self, sector: u64, now_ms: i64) -> Result<Option<PreCommitOnChain>, ChainError> {
        self.messages.precommit(sector, now_ms)
    }
    fn find_sent(
        &self,
        method: SealingMethod,
        sector: u64,
        now_ms: i64,
    ) -> Result<Option<MessageId>, ChainError> {
        self.messages.find_sent(method, sector, now_ms)
    }
}

impl MessageLog for ComposedChain {
    fn messages_after(&self, after: u64, limit: usize, now_ms: i64) -> Result<Vec<SentMessage>, ChainError> {
        self.log.messages_after(after, limit, now_ms)
    }
    fn message(&self, id: &MessageId, now_ms: i64) -> Result<Option<SentMessage>, ChainError> {
        self.log.message(id, now_ms)
    }
    fn message_counts(&self, now_ms: i64) -> Result<(u64, u64), ChainError> {
        self.log.message_counts(now_ms)
    }
}

impl ChainProving for ComposedChain {
    fn proving_schedule(&self) -> ProvingSchedule {
        self.proving.proving_schedule()
    }
    fn proving_sectors(&self, now_ms: i64) -> Result<Vec<ProvingSectorOnChain>, ChainError> {
        self.proving.proving_sectors(now_ms)
    }
    fn posts_since(&self, since_open: u64, now_ms: i64) -> Result<Vec<PostOnChain>, ChainError> {
        self.proving.posts_since(since_open, now_ms)
    }
    fn find_post_message(
        &self,
        open_epoch: u64,
        partition: u64,
        now_ms: i64,
    ) -> Result<Option<MessageId>, ChainError> {
        self.proving.find_post_message(open_epoch, partition, now_ms)
    }
    fn health_events(&self, since_epoch: u64, now_ms: i64) -> Result<Vec<HealthEvent>, ChainError> {
        self.proving.health_events(since_epoch, now_ms)
    }
    fn won_election(&self, epoch: u64) -> bool {
        self.proving.won_election(epoch)
    }
    fn election_sectors(&self, epoch: u64, now_ms: i64) -> Result<Vec<ProvingSectorOnChain>, ChainError> {
        self.proving.election_sectors(epoch, now_ms)
    }
    fn elections(&self, from: u64, to: u64, now_ms: i64) -> Result<Vec<ElectionOnChain>, ChainError> {
        self.proving.elections(from, to, now_ms)
    }
}

mod embedded;
pub mod lotus;
pub mod miner_actor;
pub mod randomness;

pub use embedded::{EmbeddedChain, EmbeddedChainConfig};
pub use randomness::RandomnessKind;
