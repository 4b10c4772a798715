//! Chain data as the API shows it and the event log records it: messages,
//! their ids and receipts, and a sector's PreCommit on chain.

use proofs::{Commitment, SectorSize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A message's id on the chain. Written as a decimal string (as event logs
/// have always recorded it); read from a string or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for MessageId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim().parse().map(Self).map_err(|_| format!("message id {s:?} is not a non-negative integer"))
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Self(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A message the pipeline sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method")]
pub enum Message {
    /// Commit to a replica before proving it.
    PreCommit {
        /// The sector.
        sector: u64,
        /// Its size.
        sector_size: SectorSize,
        /// The replica commitment.
        comm_r: Commitment,
        /// The data commitment.
        comm_d: Commitment,
        /// The epoch the ticket was drawn at.
        ticket_epoch: u64,
    },
    /// Prove the pre-committed replica.
    ProveCommit {
        /// The sector.
        sector: u64,
        /// The Groth16 proof bytes.
        #[serde(with = "hex_bytes")]
        proof: Vec<u8>,
    },
}

impl Message {
    /// The sector the message is about.
    pub fn sector(&self) -> u64 {
        match self {
            Self::PreCommit { sector, .. } | Self::ProveCommit { sector, .. } => *sector,
        }
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The outcome of an executed message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The epoch it was executed in.
    pub epoch: u64,
    /// 0, or an error code.
    pub exit_code: i64,
    /// Why it failed, for non-zero exit codes.
    pub error: Option<String>,
}

/// A sector's PreCommit as the chain holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreCommitOnChain {
    /// The epoch it landed in.
    pub epoch: u64,
    /// The epoch whose randomness is the seed (available from the next epoch on).
    pub seed_epoch: u64,
    /// The last epoch a ProveCommit may land in.
    pub expiry: u64,
    /// Whether the sector has been proven.
    pub proven: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_written_as_strings_and_read_from_either() {
        assert_eq!(serde_json::to_string(&MessageId(7)).unwrap(), "\"7\"");
        assert_eq!(serde_json::from_str::<MessageId>("\"7\"").unwrap(), MessageId(7));
        assert_eq!(serde_json::from_str::<MessageId>("7").unwrap(), MessageId(7));
        assert!(serde_json::from_str::<MessageId>("\"m1\"").is_err());
    }
}
