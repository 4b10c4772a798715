//! Proofs of spacetime: Winning and Window PoSt, the "fallback" PoSt of the
//! reference over tree_r_last (post.md).
//!
//! A PoSt proves that the prover still holds sealed sectors: for each
//! challenged sector, openings of a few replica nodes in tree_r_last and the
//! commitments that tie tree_r_last to the sector's comm_r.
//!
//! 1. **Challenges** ([`challenges`]): which sector wins (Winning) and which
//!    leaves of each sector are opened, from the chain's randomness.
//! 2. **Vanilla proofs** ([`vanilla`]): the openings, read from the replica,
//!    the cached tree_r_last rows and p_aux; unreadable or inconsistent sectors
//!    come back as faults, one list, as the reference reports them.
//!    [`encoding`] writes and reads them in the reference's bincode form.
//! 3. **SNARKs** (`crate::snark::post`, above this module as PoRep's are
//!    above `seal`): Groth16 proofs of `crate::circuit::post::PostCircuit`, one
//!    for Winning, one per partition for Window; verification from public
//!    values alone.

pub mod challenges;
pub mod encoding;
pub mod vanilla;

use crate::shape::SectorSize;
use serde::{Deserialize, Serialize};

/// Leaves opened in the one sector of a Winning PoSt.
pub const WINNING_CHALLENGES: usize = 66;
/// Leaves opened in every sector of a Window PoSt.
pub const WINDOW_CHALLENGES: usize = 10;

/// Sectors in one Window PoSt partition (one SNARK) of a sector size
/// (`WINDOW_POST_SECTOR_COUNT`).
pub fn window_sectors_per_partition(size: SectorSize) -> usize {
    match size {
        SectorSize::GiB32 => 2349,
        SectorSize::GiB64 => 2300,
        _ => 2,
    }
}

/// Winning or Window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostKind {
    /// Proves one sector chosen by the randomness when the miner wins a block.
    Winning,
    /// Proves every sector of a deadline's partition.
    Window,
}

impl std::fmt::Display for PostKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PostKind::Winning => "winning",
            PostKind::Window => "window",
        })
    }
}

/// How a sector's leaf challenges are numbered: the proof type's API version
/// (post.md §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChallengeRules {
    /// 1.0.0: the index counts on across sectors (`position · count + n`).
    V1_0,
    /// 1.2.0: every sector numbers its challenges from 0 (Window PoSt on mainnet).
    V1_2,
}

/// A registered PoSt proof type (proofs-api `RegisteredPoStProof`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PostProof {
    kind: PostKind,
    size: SectorSize,
    rules: ChallengeRules,
}

impl PostProof {
    /// `StackedDrgWinning<size>V1`.
    pub fn winning(size: SectorSize) -> Self {
        Self { kind: PostKind::Winning, size, rules: ChallengeRules::V1_0 }
    }
    /// `StackedDrgWindow<size>V1_2`, the rules mainnet uses.
    pub fn window(size: SectorSize) -> Self {
        Self { kind: PostKind::Window, size, rules: ChallengeRules::V1_2 }
    }
    /// `StackedDrgWindow<size>V1`, the rules before the grindability fix.
    pub fn window_v1(size: SectorSize) -> Self {
        Self { kind: PostKind::Window, size, rules: ChallengeRules::V1_0 }
    }
    /// The proof type of `kind` that kiln uses.
    pub fn of(kind: PostKind, size: SectorSize) -> Self {
        match kind {
            PostKind::Winning => Self::winning(size),
            PostKind::Window => Self::window(size),
        }
    }

    /// Winning or Window.
    pub fn kind(&self) -> PostKind {
        self.kind
    }
    /// The sector size.
    pub fn sector_size(&self) -> SectorSize {
        self.size
    }
    /// The challenge numbering.
    pub fn rules(&self) -> ChallengeRules {
        self.rules
    }

    /// The proofs-api name, e.g. `StackedDrgWindow2KiBV1_2`.
    pub fn name(&self) -> String {
        let (kind, version) = match (self.kind, self.rules) {
            (PostKind::Winning, _) => ("Winning", "V1"),
            (PostKind::Window, ChallengeRules::V1_0) => ("Window", "V1"),
            (PostKind::Window, ChallengeRules::V1_2) => ("Window", "V1_2"),
        };
        format!("StackedDrg{kind}{}{version}", self.size.name())
    }

    /// Leaves opened per proven sector.
    pub fn challenges_per_sector(&self) -> usize {
        match self.kind {
            PostKind::Winning => WINNING_CHALLENGES,
            PostKind::Window => WINDOW_CHALLENGES,
        }
    }

    /// Sectors proven by one SNARK (Window: a partition; Winning: one).
    pub fn sectors_per_partition(&self) -> usize {
        match self.kind {
            PostKind::Winning => 1,
            PostKind::Window => window_sectors_per_partition(self.size),
        }
    }

    /// `(challenges, sector slots)` of the circuit: Winning's one sector is
    /// re-expressed as 66 slots of one challenge each (post.md §4).
    pub fn circuit_counts(&self) -> (usize, usize) {
        match self.kind {
            PostKind::Winning => (1, WINNING_CHALLENGES),
            PostKind::Window => (WINDOW_CHALLENGES, window_sectors_per_partition(self.size)),
        }
    }

    /// Partitions (SNARKs) needed for `sectors` sectors (at least one).
    pub fn partitions(&self, sectors: usize) -> usize {
        sectors.div_ceil(self.sectors_per_partition()).max(1)
    }
}

impl std::fmt::Display for PostProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}
