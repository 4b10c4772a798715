//! Pre-committing a sector on disk: staging pieces, PC1 and PC2.
//!
//! A sector lives in one directory:
//!
//! ```text
//! DIR/sector.json   identity, ticket, pieces and the outputs of finished phases
//! DIR/unsealed      the staged data: padded pieces and fillers, exactly the sector size
//! DIR/sealed        the replica (after PC2)
//! DIR/cache/        layers, trees, p_aux, t_aux, with the reference's file names
//! ```
//!
//! The staged file is never modified after staging, which is what makes PC2
//! safe to re-run: the replica is always re-encoded from it, into a temporary
//! file renamed into place.

pub mod c1;
pub mod challenges;
pub mod finalize;
pub mod pc1;
pub mod pc2;
/// The reference prover's exact JSON form of a C1 output (for byte comparison).
pub mod reference_json;
pub mod staging;
pub mod unseal;
pub mod vanilla;

use crate::durable;
use crate::error::{Error, Result};
use crate::ids::{Commitment, ProverId, Randomness, ReplicaId};
use crate::shape::SectorSize;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use staging::StagedPiece;

/// What makes a sector itself: a directory holds exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorIdentity {
    /// The sector size (V1_1 proof type).
    pub sector_size: SectorSize,
    /// The miner's prover id.
    pub prover_id: ProverId,
    /// The sector number.
    pub sector_id: u64,
}

impl std::fmt::Display for SectorIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of prover {} ({})", self.sector_id, self.prover_id, self.sector_size)
    }
}

/// Commitments after PC1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pc1Output {
    /// The ticket the layers were labeled with.
    pub ticket: Randomness,
    /// The data commitment.
    pub comm_d: Commitment,
    /// The replica id.
    pub replica_id: ReplicaId,
}

/// Commitments after PC2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pc2Output {
    /// Root of tree_c.
    pub comm_c: Commitment,
    /// Root of tree_r_last.
    pub comm_r_last: Commitment,
    /// `Poseidon(comm_c, comm_r_last)`.
    pub comm_r: Commitment,
}

/// The persistent record of a sector directory (`sector.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectorMeta {
    /// Format version.
    pub version: u32,
    /// The sector.
    pub identity: SectorIdentity,
    /// Pieces and fillers in sector order, once staged.
    pub pieces: Option<Vec<StagedPiece>>,
    /// PC1 result.
    pub pc1: Option<Pc1Output>,
    /// PC2 result.
    pub pc2: Option<Pc2Output>,
}

/// The files of one sector.
#[derive(Clone, Debug)]
pub struct SectorDir {
    root: PathBuf,
}

impl SectorDir {
    /// The sector directory at `root` (nothing is touched yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `sector.json`.
    pub fn meta_path(&self) -> PathBuf {
        self.root.join("sector.json")
    }
    /// The staged (unsealed, padded) data.
    pub fn unsealed_path(&self) -> PathBuf {
        self.root.join("unsealed")
    }
    /// The replica.
    pub fn sealed_path(&self) -> PathBuf {
        self.root.join("sealed")
    }
    /// The cache directory (layers, trees, aux files).
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Reads `sector.json`, if present.
    pub fn read_meta(&self) -> Result<Option<SectorMeta>> {
        let path = self.meta_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Malformed { path, reason: format!("sector metadata: {e}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", path)(e)),
        }
    }

    /// Writes `sector.json` atomically.
    pub fn write_meta(&self, meta: &SectorMeta) -> Result<()> {
        let json = serde_json::to_vec_pretty(meta).expect("metadata serialises");
        durable::write_file(&self.meta_path(), &json)
    }

    /// Opens the directory for `identity`: creates it if absent or empty, returns its
    /// record if it already holds this sector, and refuses a directory that holds
    /// another sector or files that are not a sector's (nothing is touched then).
    pub fn claim(&self, identity: &SectorIdentity) -> Result<SectorMeta> {
        if let Some(meta) = self.read_meta()? {
            if meta.identity != *identity {
                return Err(Error::ForeignSector {
                    dir: self.root.clone(),
                    expected: identity.to_string(),
                    found: meta.identity.to_string(),
                });
            }
            return Ok(meta);
        }
        if let Ok(mut entries) = std::fs::read_dir(&self.root) {
            if entries.next().is_some() {
                return Err(Error::ForeignSector {
                    dir: self.root.clone(),
                    expected: identity.to_string(),
                    found: "files that are not a kiln sector (no sector.json)".into(),
                });
            }
        }
        durable::create_dir(&self.root)?;
        durable::create_dir(&self.cache_dir())?;
        let meta = SectorMeta { version: 1, identity: *identity, pieces: None, pc1: None, pc2: None };
        self.write_meta(&meta)?;
        Ok(meta)
    }

    /// Opens an existing sector directory (for the phases after PC1).
    pub fn open(&self) -> Result<SectorMeta> {
        self.read_meta()?.ok_or_else(|| Error::MissingInput {
            step: "this phase",
            missing: format!("a sector in {} (no sector.json)", self.root.display()),
        })
    }
}
