//! The chain's head, clock and randomness as a Lotus node gives them: the
//! first role of the Lotus backend.

use super::json::TipSetKey;
use super::rpc::{LotusClient, RpcError};
use crate::chain::miner_actor::policy::{CHAIN_FINALITY, MAX_PRE_COMMIT_RANDOMNESS_LOOKBACK};
use crate::chain::randomness::RandomnessSource;
use crate::chain::{ChainError, ChainHead, RandomnessKind};
use proofs::Randomness;
use std::sync::Arc;

/// Seconds per epoch on Filecoin (mainnet and calibnet).
pub const BLOCK_DELAY_SECS: u64 = 30;

/// A Lotus node's head, clock and randomness, for miner `f0<miner_id>`.
pub struct LotusHead {
    client: Arc<LotusClient>,
    miner_id: u64,
    /// When epoch 0 began (ms since the Unix epoch): every tipset's
    /// timestamp is genesis + height × block delay, null rounds or not.
    genesis_ms: i64,
}

/// A node's failure as a chain error naming the node and the method.
pub(super) fn backend<'a>(
    client: &'a LotusClient,
    op: &'static str,
) -> impl FnOnce(RpcError) -> ChainError + 'a {
    move |e| ChainError::Backend { at: client.url().to_string(), op, source: Box::new(e) }
}

impl LotusHead {
    /// Connects: reads the head once to learn the chain's genesis time.
    pub fn connect(client: Arc<LotusClient>, miner_id: u64) -> Result<Self, ChainError> {
        let head = client.chain_head().map_err(backend(&client, "ChainHead"))?;
        let Some(block) = head.blocks.first() else {
            return Err(ChainError::Corrupt {
                at: client.url().to_string(),
                reason: "the head has no block".into(),
            });
        };
        let since_genesis = (head.height.max(0) as u64).saturating_mul(BLOCK_DELAY_SECS);
        let genesis_ms = (block.timestamp.saturating_sub(since_genesis) as i64).saturating_mul(1_000);
        Ok(Self { client, miner_id, genesis_ms })
    }

    /// The head's epoch and key.
    pub fn tipset(&self) -> Result<(u64, TipSetKey), ChainError> {
        let head = self.client.chain_head().map_err(backend(&self.client, "ChainHead"))?;
        let height = u64::try_from(head.height).map_err(|_| ChainError::Corrupt {
            at: self.client.url().to_string(),
            reason: format!("head at negative height {}", head.height),
        })?;
        Ok((height, head.key()))
    }
}

impl ChainHead for LotusHead {
    fn head(&self, _now_ms: i64) -> Result<u64, ChainError> {
        Ok(self.tipset()?.0)
    }

    fn epoch_start_ms(&self, epoch: u64) -> i64 {
        let offset = epoch.saturating_mul(BLOCK_DELAY_SECS * 1_000).min(i64::MAX as u64) as i64;
        self.genesis_ms.saturating_add(offset)
    }

    fn randomness(&self, kind: RandomnessKind, epoch: u64, _now_ms: i64) -> Result<Randomness, ChainError> {
        let (head, key) = self.tipset()?;
        if epoch > head {
            return Err(ChainError::FutureEpoch { asked: epoch, head });
        }
        let (tag, entropy) = (kind.tag() as i64, kind.entropy(self.miner_id));
        let bytes = match kind.source() {
            RandomnessSource::Tickets => self
                .client
                .state_get_randomness_from_tickets(tag, epoch as i64, &entropy, &key)
                .map_err(backend(&self.client, "StateGetRandomnessFromTickets"))?,
            RandomnessSource::Beacon => self
                .client
                .state_get_randomness_from_beacon(tag, epoch as i64, &entropy, &key)
                .map_err(backend(&self.client, "StateGetRandomnessFromBeacon"))?,
        };
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| ChainError::Corrupt {
            at: self.client.url().to_string(),
            reason: format!("randomness of {} bytes, expected 32", b.len()),
        })?;
        Ok(Randomness(bytes))
    }

    /// Tickets are drawn where the chain is final, so a reorganisation never
    /// changes the ticket a PreCommit carries.
    fn ticket_lookback(&self) -> u64 {
        CHAIN_FINALITY
    }

    fn max_ticket_age(&self) -> u64 {
        MAX_PRE_COMMIT_RANDOMNESS_LOOKBACK
    }
}
