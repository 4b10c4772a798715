//! Chain data as the API shows it and the event log records it: messages,
//! their ids and receipts, and a sector's PreCommit on chain.

use proofs::{Commitment, SectorSize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A message's id on its chain: opaque to everything but the chain that
/// gave it (the embedded chain's sequence number, a Lotus message CID). Read
/// and written as a string; a number is read as its decimal string (event
/// logs of the embedded chain recorded numbers).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

/// The longest message id taken (a CID's text is about 62 characters).
pub const MESSAGE_ID_MAX_LEN: usize = 256;

impl MessageId {
    /// The id `text`, if it is one: 1 to [`MESSAGE_ID_MAX_LEN`] printable
    /// characters without spaces.
    pub fn new(text: impl Into<String>) -> Result<Self, String> {
        let text = text.into();
        if text.is_empty() || text.len() > MESSAGE_ID_MAX_LEN {
            return Err(format!("a message id has 1 to {MESSAGE_ID_MAX_LEN} characters, not {}", text.len()));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("message id {text:?} has spaces or control characters"));
        }
        Ok(Self(text))
    }

    /// The id as its chain wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<u64> for MessageId {
    fn from(n: u64) -> Self {
        Self(n.to_string())
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for MessageId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::new(s.trim())
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
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
            Raw::Number(n) => Ok(Self::from(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// One sector of a PreCommit message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreCommitSector {
    /// The sector.
    pub sector: u64,
    /// Its size.
    pub sector_size: SectorSize,
    /// The replica commitment.
    pub comm_r: Commitment,
    /// The data commitment (a sector of zeros has the zero commitment: CC).
    pub comm_d: Commitment,
    /// The epoch the ticket was drawn at.
    pub ticket_epoch: u64,
    /// The epoch the sector expires.
    pub expiration: u64,
}

/// A piece of a sector, as it is declared when the sector is proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceRef {
    /// The piece commitment.
    pub comm_p: Commitment,
    /// Its padded size.
    pub padded_size: u64,
}

/// One sector of a ProveCommit message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProveCommitSector {
    /// The sector.
    pub sector: u64,
    /// Its pieces in order (none for CC).
    pub pieces: Vec<PieceRef>,
    /// The Groth16 proof bytes.
    #[serde(with = "hex_bytes")]
    pub proof: Vec<u8>,
}

/// A message the pipeline sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method")]
pub enum Message {
    /// Commit to replicas before proving them (the miner actor's
    /// PreCommitSectorBatch2: all sectors land or none).
    PreCommitSectors {
        /// The sectors, at least one.
        sectors: Vec<PreCommitSector>,
    },
    /// Prove pre-committed replicas, one proof each (ProveCommitSectors3
    /// requiring every activation: all sectors land or none).
    ProveCommitSectors {
        /// The sectors, at least one.
        sectors: Vec<ProveCommitSector>,
    },
    /// A Window PoSt of one partition of a deadline, in that deadline's
    /// challenge window.
    SubmitWindowedPoSt {
        /// The deadline (0 ..< deadlines).
        deadline: u64,
        /// The epoch its challenge window opened: names the window proven.
        open_epoch: u64,
        /// The partition of the deadline.
        partition: u64,
        /// Sectors of the partition left out of the proof (they become faulty).
        skipped: Vec<u64>,
        /// The Groth16 proofs, one per SNARK partition.
        #[serde(with = "hex_bytes")]
        proof: Vec<u8>,
    },
    /// Sectors that will not be provable: left out of Window PoSts until
    /// declared recovered.
    DeclareFaults {
        /// The sectors.
        sectors: Vec<u64>,
    },
    /// Faulty sectors that are readable again: proven in their next window.
    DeclareFaultsRecovered {
        /// The sectors.
        sectors: Vec<u64>,
    },
    /// The answer to a won election: a Winning PoSt of the chosen sector.
    SubmitWinningPoSt {
        /// The epoch whose election was won.
        epoch: u64,
        /// The sector the randomness chose.
        sector: u64,
        /// The Groth16 proof.
        #[serde(with = "hex_bytes")]
        proof: Vec<u8>,
    },
}

impl Message {
    /// The sectors a sealing message is about (none for proving messages).
    pub fn sectors(&self) -> Vec<u64> {
        match self {
            Self::PreCommitSectors { sectors } => sectors.iter().map(|s| s.sector).collect(),
            Self::ProveCommitSectors { sectors } => sectors.iter().map(|s| s.sector).collect(),
            _ => Vec::new(),
        }
    }

    /// The method's name, as messages are tagged.
    pub fn method(&self) -> &'static str {
        match self {
            Self::PreCommitSectors { .. } => "PreCommitSectors",
            Self::ProveCommitSectors { .. } => "ProveCommitSectors",
            Self::SubmitWindowedPoSt { .. } => "SubmitWindowedPoSt",
            Self::DeclareFaults { .. } => "DeclareFaults",
            Self::DeclareFaultsRecovered { .. } => "DeclareFaultsRecovered",
            Self::SubmitWinningPoSt { .. } => "SubmitWinningPoSt",
        }
    }
}

/// The sealing messages, for finding the one a sector was sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealingMethod {
    /// [`Message::PreCommitSectors`].
    PreCommit,
    /// [`Message::ProveCommitSectors`].
    ProveCommit,
}

impl SealingMethod {
    /// Whether `message` is of this method.
    pub fn is(self, message: &Message) -> bool {
        matches!(
            (self, message),
            (Self::PreCommit, Message::PreCommitSectors { .. })
                | (Self::ProveCommit, Message::ProveCommitSectors { .. })
        )
    }

    /// The method's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::PreCommit => "PreCommitSectors",
            Self::ProveCommit => "ProveCommitSectors",
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
    /// The comm_r it commits to.
    #[serde(default)]
    pub comm_r: Commitment,
    /// The comm_d it commits to.
    #[serde(default)]
    pub comm_d: Commitment,
    /// The epoch its ProveCommit landed in, once proven.
    #[serde(default)]
    pub proven_epoch: Option<u64>,
}

/// How the chain schedules proving: the proving period split into deadlines,
/// each with a challenge window; and the devnet's block elections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvingSchedule {
    /// Deadlines per proving period.
    pub deadlines: u64,
    /// Epochs of one deadline's challenge window.
    pub window: u64,
    /// The challenge (randomness) epoch is this many epochs before a window opens.
    pub lookback: u64,
    /// Chance per epoch, in thousandths, that the miner wins a block.
    pub election_per_mille: u64,
    /// Epochs after a won election within which its Winning PoSt must land.
    pub winning_window: u64,
}

/// One occurrence of a deadline: deadline `deadline` in proving period `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineWindow {
    /// Which deadline of the period.
    pub deadline: u64,
    /// Which proving period.
    pub period: u64,
    /// First epoch of the challenge window.
    pub open: u64,
    /// First epoch after it.
    pub close: u64,
    /// The epoch whose randomness challenges it.
    pub challenge: u64,
}

/// The devnet's schedule.
impl Default for ProvingSchedule {
    fn default() -> Self {
        Self {
            deadlines: 48,
            window: 20,
            lookback: 2,
            election_per_mille: 20,
            // 30 s at the devnet's second per epoch: a CPU Winning PoSt
            // SNARK (3 s for 2KiB, 6 s for 8MiB on two cores) fits with room.
            winning_window: 30,
        }
    }
}

impl ProvingSchedule {
    /// Epochs per proving period.
    pub fn period(&self) -> u64 {
        self.deadlines * self.window
    }

    /// The `n`-th deadline window since genesis.
    pub fn nth(&self, n: u64) -> DeadlineWindow {
        let open = n * self.window;
        DeadlineWindow {
            deadline: n % self.deadlines,
            period: n / self.deadlines,
            open,
            close: open + self.window,
            challenge: open.saturating_sub(self.lookback),
        }
    }

    /// The window open at `epoch`.
    pub fn current(&self, epoch: u64) -> DeadlineWindow {
        self.nth(epoch / self.window.max(1))
    }

    /// The first window of `deadline` that has not closed at `epoch`.
    pub fn next_of(&self, deadline: u64, epoch: u64) -> DeadlineWindow {
        let current = epoch / self.window.max(1);
        let base = current - current % self.deadlines;
        let n = if base + deadline >= current { base + deadline } else { base + self.deadlines + deadline };
        self.nth(n)
    }

    /// The window that opened at `open`, if a window opens there.
    pub fn opened_at(&self, open: u64) -> Option<DeadlineWindow> {
        (self.window > 0 && open.is_multiple_of(self.window)).then(|| self.nth(open / self.window))
    }
}

/// A sector's standing in Window PoSt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectorHealth {
    /// Proven in its deadlines.
    Active,
    /// Declared faulty, skipped, or its deadline was missed.
    Faulty,
    /// Declared recovered: proven in its next window, then active.
    Recovering,
}

impl SectorHealth {
    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Faulty => "faulty",
            Self::Recovering => "recovering",
        }
    }
}

/// A proven sector as the chain schedules it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvingSectorOnChain {
    /// The sector.
    pub sector: u64,
    /// Its size.
    pub sector_size: SectorSize,
    /// Its replica commitment.
    pub comm_r: Commitment,
    /// Its deadline.
    pub deadline: u64,
    /// Its partition in the deadline.
    pub partition: u64,
    /// Active, faulty or recovering.
    pub health: SectorHealth,
    /// The epoch its ProveCommit landed: windows challenged before it skip it.
    pub activation: u64,
}

/// A Window PoSt the chain accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostOnChain {
    /// The deadline.
    pub deadline: u64,
    /// The window's first epoch.
    pub open_epoch: u64,
    /// The partition.
    pub partition: u64,
    /// The message that proved it.
    pub message: MessageId,
    /// The epoch it landed in.
    pub epoch: u64,
    /// Sectors proven.
    pub proven: Vec<u64>,
    /// Sectors skipped (now faulty).
    pub skipped: Vec<u64>,
}

/// A change of a sector's health, as the chain recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// The epoch.
    pub epoch: u64,
    /// The sector.
    pub sector: u64,
    /// Its new health.
    pub health: SectorHealth,
    /// Why (declared, skipped, missed deadline N, proven).
    pub why: String,
}

/// A won election and its Winning PoSt, once one landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionOnChain {
    /// The epoch won.
    pub epoch: u64,
    /// The sector proven, once proven.
    pub sector: Option<u64>,
    /// The message that proved it.
    pub message: Option<MessageId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_written_as_strings_and_read_from_either() {
        assert_eq!(serde_json::to_string(&MessageId::from(7)).unwrap(), "\"7\"");
        assert_eq!(serde_json::from_str::<MessageId>("\"7\"").unwrap(), MessageId::from(7));
        assert_eq!(serde_json::from_str::<MessageId>("7").unwrap(), MessageId::from(7));
        // Opaque: another chain's ids (a CID) are taken as they are written.
        let cid = "bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4";
        assert_eq!(serde_json::from_str::<MessageId>(&format!("\"{cid}\"")).unwrap().as_str(), cid);
        for bad in ["\"\"", "\"m 1\"", "\"m\\n1\"", "-1"] {
            assert!(serde_json::from_str::<MessageId>(bad).is_err(), "{bad}");
        }
        assert!(MessageId::new("x".repeat(MESSAGE_ID_MAX_LEN + 1)).is_err());
    }

    #[test]
    fn deadline_windows_tile_the_periods() {
        let s = ProvingSchedule {
            deadlines: 4,
            window: 10,
            lookback: 2,
            election_per_mille: 0,
            winning_window: 5,
        };
        assert_eq!(s.period(), 40);
        let w = s.current(57);
        assert_eq!((w.deadline, w.period, w.open, w.close, w.challenge), (1, 1, 50, 60, 48));
        assert_eq!(s.next_of(1, 57), w, "the open window of the deadline itself");
        assert_eq!(s.next_of(0, 57).open, 80, "deadline 0 comes again next period");
        assert_eq!(s.next_of(3, 57).open, 70);
        assert_eq!(s.opened_at(70).unwrap().deadline, 3);
        assert!(s.opened_at(71).is_none());
        assert_eq!(s.nth(0).challenge, 0);
    }
}
