//! Sector sizes and everything that follows from them (params-table.md §1).
//!
//! A [`SectorShape`] is a runtime value, validated once when it is built from a
//! sector size; the rest of the crate takes it by reference instead of encoding
//! the tree shape in the type system.

use crate::error::{Error, Result};
use crate::ids::PorepId;
use serde::{Deserialize, Serialize};

/// Bytes per node (one field element).
pub const NODE_SIZE: usize = 32;
/// DRG (bucket-sampling) parents per node.
pub const BASE_DEGREE: usize = 6;
/// Expander (Feistel) parents per node.
pub const EXP_DEGREE: usize = 8;
/// All parents per node.
pub const DEGREE: usize = BASE_DEGREE + EXP_DEGREE;

/// The sector sizes with a registered V1_1 seal proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SectorSize {
    /// 2 KiB (devnets and tests).
    #[serde(rename = "2KiB")]
    KiB2,
    /// 8 MiB (tests).
    #[serde(rename = "8MiB")]
    MiB8,
    /// 512 MiB (tests).
    #[serde(rename = "512MiB")]
    MiB512,
    /// 32 GiB (mainnet).
    #[serde(rename = "32GiB")]
    GiB32,
    /// 64 GiB (mainnet).
    #[serde(rename = "64GiB")]
    GiB64,
}

impl SectorSize {
    /// Every registered size, smallest first.
    pub const ALL: [SectorSize; 5] = [Self::KiB2, Self::MiB8, Self::MiB512, Self::GiB32, Self::GiB64];

    /// Size in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            Self::KiB2 => 2 << 10,
            Self::MiB8 => 8 << 20,
            Self::MiB512 => 512 << 20,
            Self::GiB32 => 32 << 30,
            Self::GiB64 => 64 << 30,
        }
    }

    /// The size for a byte count, if one is registered.
    pub fn from_bytes(bytes: u64) -> Result<Self> {
        Self::ALL.into_iter().find(|s| s.bytes() == bytes).ok_or_else(|| Error::SectorSize(bytes.to_string()))
    }

    /// Parses `2KiB`, `8MiB`, `512MiB`, `32GiB`, `64GiB` (case-insensitive) or a byte count.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u64>() {
            return Self::from_bytes(n).map_err(|_| Error::SectorSize(s.to_string()));
        }
        Self::ALL
            .into_iter()
            .find(|size| size.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| Error::SectorSize(s.to_string()))
    }

    /// The canonical name (`2KiB`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::KiB2 => "2KiB",
            Self::MiB8 => "8MiB",
            Self::MiB512 => "512MiB",
            Self::GiB32 => "32GiB",
            Self::GiB64 => "64GiB",
        }
    }

    /// The registered proof id of `StackedDrg<size>V1_1` (lotus `abi.RegisteredSealProof`).
    pub fn registered_seal_proof_v1_1(self) -> u64 {
        match self {
            Self::KiB2 => 5,
            Self::MiB8 => 6,
            Self::MiB512 => 7,
            Self::GiB32 => 8,
            Self::GiB64 => 9,
        }
    }

    /// The full shape of this size's V1_1 sector.
    pub fn shape(self) -> SectorShape {
        let (layers, partitions, min_challenges): (u32, usize, usize) = match self {
            Self::GiB32 | Self::GiB64 => (11, 10, 176),
            _ => (2, 1, 2),
        };
        let tree = match self {
            Self::GiB32 => TreeShape { base_arity: 8, sub_arity: 8, top_arity: 0 },
            Self::GiB64 => TreeShape { base_arity: 8, sub_arity: 8, top_arity: 2 },
            _ => TreeShape { base_arity: 8, sub_arity: 0, top_arity: 0 },
        };
        SectorShape {
            size: self,
            size_bytes: self.bytes(),
            num_nodes: self.bytes() / NODE_SIZE as u64,
            layers,
            partitions,
            challenges_per_partition: min_challenges.div_ceil(partitions),
            tree,
            porep_id: porep_id(self.registered_seal_proof_v1_1()),
        }
    }
}

impl std::fmt::Display for SectorSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SectorSize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// `porep_id` of a registered proof: id as u64 LE, nonce 0 as u64 LE, 16 zero bytes (porep-sdr.md §4.1).
pub fn porep_id(registered_proof_id: u64) -> PorepId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&registered_proof_id.to_le_bytes());
    PorepId(id)
}

/// Arities of a (possibly compound) Poseidon tree: tree_c and tree_r_last (porep-sdr.md §9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeShape {
    /// Arity of each base tree (8).
    pub base_arity: usize,
    /// Arity of the level over the base roots (0 = none).
    pub sub_arity: usize,
    /// Arity of the level over the sub roots (0 = none).
    pub top_arity: usize,
}

impl TreeShape {
    /// Number of base trees (and of tree files).
    pub fn base_tree_count(&self) -> usize {
        self.sub_arity.max(1) * self.top_arity.max(1)
    }

    /// Shape string as the reference names it (`8-0-0`, `8-8-2`).
    pub fn name(&self) -> String {
        format!("{}-{}-{}", self.base_arity, self.sub_arity, self.top_arity)
    }
}

/// Everything about a V1_1 sector that follows from its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectorShape {
    /// The registered size.
    pub size: SectorSize,
    /// Bytes in the sector (padded).
    pub size_bytes: u64,
    /// Nodes (32-byte field elements) in the sector.
    pub num_nodes: u64,
    /// SDR layers.
    pub layers: u32,
    /// Groth16 partitions of the PoRep proof.
    pub partitions: usize,
    /// Interactive challenges per partition.
    pub challenges_per_partition: usize,
    /// Shape of tree_c and tree_r_last.
    pub tree: TreeShape,
    /// The porep id that seeds the graph.
    pub porep_id: PorepId,
}

impl SectorShape {
    /// Leaves of each base tree.
    pub fn leaves_per_base_tree(&self) -> u64 {
        self.num_nodes / self.tree.base_tree_count() as u64
    }

    /// Unpadded bytes the sector holds (`127/128` of its size).
    pub fn unpadded_bytes(&self) -> u64 {
        self.size_bytes / 128 * 127
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_params_table() {
        let rows = [
            ("2KiB", 64u64, 2u32, "8-0-0", 1usize, 1usize, 2usize, 5u8),
            ("8MiB", 1 << 18, 2, "8-0-0", 1, 1, 2, 6),
            ("512MiB", 1 << 24, 2, "8-0-0", 1, 1, 2, 7),
            ("32GiB", 1 << 30, 11, "8-8-0", 8, 10, 18, 8),
            ("64GiB", 1 << 31, 11, "8-8-2", 16, 10, 18, 9),
        ];
        for (name, nodes, layers, tree, files, parts, chal, id) in rows {
            let s = SectorSize::parse(name).unwrap().shape();
            assert_eq!(s.num_nodes, nodes, "{name}");
            assert_eq!(s.layers, layers, "{name}");
            assert_eq!(s.tree.name(), tree, "{name}");
            assert_eq!(s.tree.base_tree_count(), files, "{name}");
            assert_eq!(s.partitions, parts, "{name}");
            assert_eq!(s.challenges_per_partition, chal, "{name}");
            assert_eq!(s.porep_id.0[0], id, "{name}");
            assert!(s.porep_id.0[1..].iter().all(|&b| b == 0));
            // leaves per base tree must be a power of 8
            let leaves = s.leaves_per_base_tree();
            assert_eq!(leaves.trailing_zeros() % 3, 0, "{name}");
        }
    }

    #[test]
    fn parse_forms_and_errors() {
        assert_eq!(SectorSize::parse("2kib").unwrap(), SectorSize::KiB2);
        assert_eq!(SectorSize::parse("2048").unwrap(), SectorSize::KiB2);
        assert_eq!(SectorSize::parse("34359738368").unwrap(), SectorSize::GiB32);
        assert!(matches!(SectorSize::parse("4KiB"), Err(Error::SectorSize(s)) if s == "4KiB"));
        assert!(matches!(SectorSize::parse("1000"), Err(Error::SectorSize(_))));
    }
}
