//! Staging: writing a sector's pieces, fr32-padded and aligned, into its
//! unsealed file, committing to each on the way (one read per piece).

use super::{SectorDir, SectorMeta};
use crate::durable;
use crate::error::{Error, Result};
use crate::ids::Commitment;
use crate::pieces::{comm_d_from_pieces, commit_piece, place_pieces, unpadded_piece_size, PieceInfo};
use crate::shape::SectorShape;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tracing::info;

/// One piece or zero filler in the staged sector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedPiece {
    /// The file the piece came from; None for a zero filler.
    pub source: Option<PathBuf>,
    /// Raw bytes read from the file (before zero-padding to a piece size).
    pub raw_len: u64,
    /// Commitment and padded size.
    pub info: PieceInfo,
    /// Padded offset in the sector.
    pub offset: u64,
}

/// comm_d folded from the staged pieces.
pub fn comm_d(pieces: &[StagedPiece], shape: &SectorShape) -> Result<Commitment> {
    let infos: Vec<PieceInfo> = pieces.iter().map(|p| p.info).collect();
    comm_d_from_pieces(&infos, shape.size_bytes)
}

/// Where one piece file, or one zero filler, will go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPiece {
    /// The piece file; None for a zero filler.
    pub source: Option<PathBuf>,
    /// Bytes in the file.
    pub raw_len: u64,
    /// Padded offset in the sector.
    pub offset: u64,
    /// Padded size.
    pub padded_size: u64,
}

/// Plans the layout of `sources` in the sector, checking every file is readable
/// and that they fit, before anything is written.
pub fn plan(sources: &[PathBuf], shape: &SectorShape) -> Result<Vec<PlannedPiece>> {
    let mut lens = Vec::with_capacity(sources.len());
    for path in sources {
        let f = File::open(path).map_err(Error::io("open piece", path))?;
        let len = f.metadata().map_err(Error::io("stat piece", path))?.len();
        if len > shape.unpadded_bytes() {
            return Err(Error::PiecesTooLarge {
                needed: crate::fr32::to_padded(len).next_power_of_two(),
                capacity: shape.size_bytes,
            });
        }
        lens.push(len);
    }
    let padded: Vec<u64> = lens.iter().map(|&l| unpadded_piece_size(l) / 127 * 128).collect();
    let placed = place_pieces(&padded, shape.size_bytes)?;
    Ok(placed
        .into_iter()
        .map(|p| match p.source {
            Some(i) => PlannedPiece {
                source: Some(sources[i].clone()),
                raw_len: lens[i],
                offset: p.offset,
                padded_size: p.padded_size,
            },
            None => PlannedPiece { source: None, raw_len: 0, offset: p.offset, padded_size: p.padded_size },
        })
        .collect())
}

fn same_sources(staged: &[StagedPiece], plan: &[PlannedPiece]) -> bool {
    staged.len() == plan.len()
        && staged
            .iter()
            .zip(plan)
            .all(|(s, p)| s.source == p.source && s.raw_len == p.raw_len && s.offset == p.offset)
}

/// Stages the planned pieces into the sector's unsealed file, or keeps an earlier
/// staging of the same files. Returns the pieces with fillers.
pub fn stage(
    dir: &SectorDir,
    meta: &mut SectorMeta,
    plan: Vec<PlannedPiece>,
    shape: &SectorShape,
) -> Result<Vec<StagedPiece>> {
    let sources: Vec<&PathBuf> = plan.iter().filter_map(|p| p.source.as_ref()).collect();
    let unsealed = dir.unsealed_path();
    if let Some(staged) = &meta.pieces {
        if !same_sources(staged, &plan) {
            return Err(Error::ForeignSector {
                dir: dir.root().to_path_buf(),
                expected: format!("{} with pieces {:?}", meta.identity, sources),
                found: format!(
                    "{} with other pieces {:?}",
                    meta.identity,
                    staged.iter().filter_map(|p| p.source.as_ref()).collect::<Vec<_>>()
                ),
            });
        }
        let len = std::fs::metadata(&unsealed).map(|m| m.len()).ok();
        if len == Some(shape.size_bytes) {
            return Ok(staged.clone());
        }
    }
    info!(pieces = sources.len(), "staging pieces");
    let tmp = durable::temp_path(&unsealed);
    let file = File::create(&tmp).map_err(Error::io("create", &tmp))?;
    file.set_len(shape.size_bytes).map_err(Error::io("resize", &tmp))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut staged = Vec::with_capacity(plan.len());
    for PlannedPiece { source, raw_len, offset, padded_size } in plan {
        let info = match &source {
            None => PieceInfo::zero(padded_size),
            Some(path) => {
                out.seek(SeekFrom::Start(offset)).map_err(Error::io("seek", &tmp))?;
                let f = File::open(path).map_err(Error::io("open piece", path))?;
                let (info, read) = commit_piece(f, Some(shape.unpadded_bytes()), Some(&mut out))
                    .map_err(|e| with_path(e, path))?;
                if read != raw_len || info.padded_size != padded_size {
                    return Err(Error::Malformed {
                        path: path.clone(),
                        reason: format!("piece changed while staging ({raw_len} bytes, then {read})"),
                    });
                }
                info
            }
        };
        staged.push(StagedPiece { source, raw_len, info, offset });
    }
    let file = out.into_inner().map_err(|e| Error::io("write", &tmp)(e.into_error()))?;
    file.sync_all().map_err(Error::io("sync", &tmp))?;
    drop(file);
    durable::rename(&tmp, &unsealed)?;
    meta.pieces = Some(staged.clone());
    meta.pc1 = None;
    meta.pc2 = None;
    dir.write_meta(meta)?;
    Ok(staged)
}

/// Checks the staged pieces against the comm_p recorded for each when it was
/// taken in (`expected`, in order; empty: nothing to check).
pub fn check_comm_p(staged: &[StagedPiece], expected: &[Commitment]) -> Result<()> {
    if expected.is_empty() {
        return Ok(());
    }
    let pieces: Vec<&StagedPiece> = staged.iter().filter(|p| p.source.is_some()).collect();
    if pieces.len() != expected.len() {
        return Err(Error::MissingInput {
            step: "staging",
            missing: format!("{} recorded comm_p for {} pieces", expected.len(), pieces.len()),
        });
    }
    for (piece, want) in pieces.into_iter().zip(expected) {
        if piece.info.comm_p != *want {
            return Err(Error::CommPMismatch {
                path: piece.source.clone().unwrap_or_default(),
                recorded: want.to_hex(),
                found: piece.info.comm_p.to_hex(),
            });
        }
    }
    Ok(())
}

fn with_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Stream { what, source } => Error::Io {
            op: if what.starts_with("read") { "read piece" } else { "write staged data for" },
            path: path.to_path_buf(),
            source,
        },
        e => e,
    }
}
