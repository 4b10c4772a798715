//! The chain as the sealing pipeline sees it, and kiln's embedded devnet chain.
//!
//! [`Chain`] is the pipeline's whole view of a chain: the head, ticket and
//! seed randomness, sending PreCommit and ProveCommit messages and reading
//! their receipts. [`EmbeddedChain`] implements it over SQLite (the sector
//! database's file): epochs follow the clock at a configured block time, a
//! message sent in epoch `e` is executed in epoch `e + 1`, and ProveCommits
//! are checked by an on-chain verifier. Time is passed in (milliseconds since
//! the epoch) so that tests control it.

use proofs::post::PostProof;
use proofs::snark::SealStatement;
use proofs::{Commitment, Randomness};
use std::path::PathBuf;

pub use wire::chain::{
    DeadlineWindow, ElectionOnChain, HealthEvent, Message, MessageId, PostOnChain, PreCommitOnChain,
    ProvingSchedule, ProvingSectorOnChain, Receipt, SectorHealth,
};

/// Exit code of a message that was executed successfully.
pub const EXIT_OK: i64 = 0;
/// Exit code of a message with invalid arguments (a bad proof, a stale ticket, too early or too late).
pub const EXIT_ILLEGAL_ARGUMENT: i64 = 16;
/// Exit code of a message about something that does not exist (no PreCommit).
pub const EXIT_NOT_FOUND: i64 = 17;
/// Exit code of a message the state forbids (a sector already pre-committed or proven).
pub const EXIT_FORBIDDEN: i64 = 18;

/// Errors of a chain client (not of messages: those get receipts).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The chain's storage failed.
    #[error("chain database {path}: {op}")]
    Storage {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// Stored chain state that does not parse.
    #[error("chain database {path}: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A message that cannot be encoded.
    #[error("cannot encode a message: {0}")]
    Message(String),
    /// A message id the chain never saw.
    #[error("unknown message {0}")]
    UnknownMessage(u64),
    /// Randomness asked for an epoch that has not happened yet.
    #[error("epoch {asked} is in the future (head is {head})")]
    FutureEpoch {
        /// The epoch asked for.
        asked: u64,
        /// The head.
        head: u64,
    },
}

/// The kinds of chain randomness sealing and proving use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandomnessKind {
    /// The seal ticket (drawn before PC1).
    Ticket,
    /// The interactive seed (drawn after the PreCommit lands).
    Seed,
    /// A deadline's Window PoSt challenge.
    WindowPost,
    /// A won election's Winning PoSt challenge.
    WinningPost,
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
        proofs::post::snark::verify(post, randomness, sectors, proof, &vk)
    }
}

/// What the pipeline needs from a chain. Shared by the driver and the API
/// (`&self`, `Sync`); an implementation must not hold a lock that readers
/// wait on while it does slow work such as verifying a proof.
pub trait Chain: Send + Sync {
    /// The current epoch (executing any messages due, unless another caller is).
    fn head(&self, now_ms: i64) -> Result<u64, ChainError>;
    /// When `epoch` begins (ms since the Unix epoch): a message sent before
    /// the start of epoch `e` lands by epoch `e`, so deadlines are met by it.
    fn epoch_start_ms(&self, epoch: u64) -> i64;
    /// Randomness of `kind` at `epoch` (at most the head).
    fn randomness(&self, kind: RandomnessKind, epoch: u64, now_ms: i64) -> Result<Randomness, ChainError>;
    /// Sends a message; it is executed in the next epoch.
    fn send(&self, message: &Message, now_ms: i64) -> Result<MessageId, ChainError>;
    /// The receipt of message `id`, once executed.
    fn receipt(&self, id: MessageId, now_ms: i64) -> Result<Option<Receipt>, ChainError>;
    /// The PreCommit of `sector`, if one is live or proven.
    fn precommit(&self, sector: u64, now_ms: i64) -> Result<Option<PreCommitOnChain>, ChainError>;
    /// The newest message identical to `message` that is pending or succeeded,
    /// so a sender that crashed before recording a send can adopt it instead
    /// of sending a duplicate.
    fn find_message(&self, message: &Message, now_ms: i64) -> Result<Option<MessageId>, ChainError>;
    /// Up to `limit` messages with ids above `after`, oldest first, each with
    /// its receipt once executed.
    fn messages_after(
        &self,
        after: u64,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<(MessageId, Message, Option<Receipt>)>, ChainError>;
    /// Every message sent, oldest first (page by page).
    fn messages(&self, now_ms: i64) -> Result<Vec<(MessageId, Message, Option<Receipt>)>, ChainError> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map_or(0, |m: &(MessageId, Message, Option<Receipt>)| m.0 .0);
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

mod embedded;

pub use embedded::{EmbeddedChain, EmbeddedChainConfig};
