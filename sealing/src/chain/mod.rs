//! The chain as the sealing pipeline sees it, and kiln's embedded devnet chain.
//!
//! [`Chain`] is the pipeline's whole view of a chain: the head, ticket and
//! seed randomness, sending PreCommit and ProveCommit messages and reading
//! their receipts. [`EmbeddedChain`] implements it over SQLite (the sector
//! database's file): epochs follow the clock at a configured block time, a
//! message sent in epoch `e` is executed in epoch `e + 1`, and ProveCommits
//! are checked by an on-chain verifier. Time is passed in (milliseconds since
//! the epoch) so that tests control it.

use proofs::snark::SealStatement;
use proofs::Randomness;
use std::path::PathBuf;

pub use wire::chain::{Message, MessageId, PreCommitOnChain, Receipt};

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

/// The two kinds of chain randomness sealing uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandomnessKind {
    /// The seal ticket (drawn before PC1).
    Ticket,
    /// The interactive seed (drawn after the PreCommit lands).
    Seed,
}

/// Checks PoRep proofs (on chain, and in the driver before a proof is sent).
pub trait SealVerifier: Send + Sync {
    /// Whether `proof` proves `statement`; `Err` for a verifier that cannot run
    /// (its disposition tells whether the node is at fault, e.g. a corrupt key).
    fn verify(&self, statement: &SealStatement, proof: &[u8]) -> Result<bool, proofs::Error>;
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
}

/// What the pipeline needs from a chain. Shared by the driver and the API
/// (`&self`, `Sync`); an implementation must not hold a lock that readers
/// wait on while it does slow work such as verifying a proof.
pub trait Chain: Send + Sync {
    /// The current epoch (executing any messages due, unless another caller is).
    fn head(&self, now_ms: i64) -> Result<u64, ChainError>;
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
}

mod embedded;

pub use embedded::{EmbeddedChain, EmbeddedChainConfig};
