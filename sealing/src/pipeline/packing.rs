//! Getting sectors to seal: pledging committed capacity, and packing data
//! pieces into open sectors with lotus's placement rules (each piece aligned
//! to its own size, zero fillers before it and after the last).

use super::PipelineConfig;
use crate::ledger::SharedLedger;
use crate::lifecycle::SectorState;
use crate::store::{NewPiece, PieceTarget, StoreError};
use proofs::pieces::{commit_piece, place_pieces, unpadded_piece_size};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
pub use wire::api::AddedPiece;

/// A piece that cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum PackingError {
    /// The piece file cannot be read or copied.
    #[error("piece {path}: {reason}")]
    Piece {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The piece is larger than a sector holds.
    #[error("piece {path} is {len} bytes; a {sector_size} sector holds at most {capacity} bytes of data")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The sector size.
        sector_size: String,
        /// Unpadded bytes a sector holds.
        capacity: u64,
    },
    /// The data directory has too little room for the piece and what sealing needs.
    #[error("not enough free space in {dir}: {free} bytes free, the piece needs {piece} and sealing keeps {reserve} in reserve ([packing] min_free_bytes)")]
    NoSpace {
        /// The pieces directory.
        dir: PathBuf,
        /// Bytes free there.
        free: u64,
        /// The piece's length.
        piece: u64,
        /// The reserve kept.
        reserve: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates `count` committed-capacity sectors; the driver seals them at once.
pub fn pledge(
    ledger: &SharedLedger,
    config: &PipelineConfig,
    count: u32,
    now_ms: i64,
) -> Result<Vec<u64>, StoreError> {
    let mut store = ledger.store();
    (0..count).map(|_| store.create_sector(config.sector_size, true, now_ms)).collect()
}

/// Copies `source` into the data directory and packs it into the oldest open
/// data sector it fits, or a new one. Nothing is recorded unless the piece is
/// readable and fits a sector.
pub fn add_piece(
    ledger: &SharedLedger,
    config: &PipelineConfig,
    source: &Path,
    now_ms: i64,
) -> Result<AddedPiece, PackingError> {
    let err = |reason: String| PackingError::Piece { path: source.to_path_buf(), reason };
    let shape = config.sector_size.shape();
    // Not followed: a symlink could point anywhere the daemon can read.
    let meta = std::fs::symlink_metadata(source).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file (symlinks, FIFOs and devices are refused)".into()));
    }
    if meta.len() == 0 {
        return Err(err("the file is empty".into()));
    }
    if meta.len() > shape.unpadded_bytes() {
        return Err(PackingError::TooLarge {
            path: source.to_path_buf(),
            len: meta.len(),
            sector_size: config.sector_size.to_string(),
            capacity: shape.unpadded_bytes(),
        });
    }
    let padded = unpadded_piece_size(meta.len()) / 127 * 128;

    // Copy first (no lock held for a long read), committing on the way.
    let dir = config.pieces_dir();
    proofs::durable::create_dir(&dir).map_err(|e| err(format!("{e:#}")))?;
    let free = proofs::durable::available_bytes(&dir).map_err(|e| err(format!("{e:#}")))?;
    let need = meta.len().saturating_add(config.packing.min_free_bytes);
    if free < need {
        return Err(PackingError::NoSpace {
            dir,
            free,
            piece: meta.len(),
            reserve: config.packing.min_free_bytes,
        });
    }
    let copy = dir.join(format!("{}.piece", hex::encode(rand::random::<[u8; 16]>())));
    let info = copy_and_commit(source, &copy, shape.unpadded_bytes()).inspect_err(|_| {
        let _ = std::fs::remove_file(&copy);
    })?;
    // The copy's directory entry must survive a crash as its record will.
    proofs::durable::sync_dir(&dir).map_err(|e| err(format!("{e:#}")))?;
    if info.1 != meta.len() || info.0.padded_size != padded {
        let _ = std::fs::remove_file(&copy);
        return Err(err(format!(
            "the file changed while being read ({} bytes, then {})",
            meta.len(),
            info.1
        )));
    }
    let comm_p = info.0.comm_p;

    let mut store = ledger.store();
    let open: Vec<u64> = store
        .sectors()?
        .into_iter()
        .filter(|r| {
            r.lifecycle.state == SectorState::Packing && !r.pledged && r.sector_size == config.sector_size
        })
        .map(|r| r.number)
        .collect();
    let mut target = PieceTarget::NewSector(config.sector_size);
    for n in open {
        let mut sizes: Vec<u64> = store.pieces(n)?.iter().map(|p| p.padded_size).collect();
        sizes.push(padded);
        if place_pieces(&sizes, config.sector_size.bytes()).is_ok() {
            target = PieceTarget::Sector(n);
            break;
        }
    }
    let piece = NewPiece { path: &copy, raw_len: meta.len(), padded_size: padded, comm_p };
    match store.add_piece(target, &piece, now_ms) {
        Ok((sector, row)) => {
            tracing::info!(sector, index = row.index, %comm_p, "piece added");
            Ok(AddedPiece { sector, index: row.index, comm_p, padded_size: padded, raw_len: meta.len() })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&copy);
            Err(e.into())
        }
    }
}

/// Deletes piece copies that no sector records: what a crash between copying
/// a piece and recording it leaves behind. Run before the API serves, so no
/// add-piece is in flight. Returns how many were removed.
pub fn remove_orphan_copies(ledger: &SharedLedger, config: &PipelineConfig) -> Result<usize, PackingError> {
    let dir = config.pieces_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(PackingError::Piece { path: dir, reason: e.to_string() }),
    };
    // Compared by file name: the recorded paths may name the data directory by
    // another path (moved, symlinked, relative) than this start does.
    let recorded: std::collections::HashSet<std::ffi::OsString> = {
        let store = ledger.store();
        let mut set = std::collections::HashSet::new();
        for row in store.sectors()? {
            set.extend(
                store.pieces(row.number)?.into_iter().filter_map(|p| p.path.file_name().map(Into::into)),
            );
        }
        set
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "piece") && !recorded.contains(&entry.file_name()) {
            std::fs::remove_file(&path)
                .map_err(|e| PackingError::Piece { path: path.clone(), reason: e.to_string() })?;
            tracing::info!(path = %path.display(), "removed a piece copy no sector records");
            removed += 1;
        }
    }
    Ok(removed)
}

/// Copies `source` to `dest` durably while computing its piece commitment.
fn copy_and_commit(
    source: &Path,
    dest: &Path,
    max: u64,
) -> Result<(proofs::pieces::PieceInfo, u64), PackingError> {
    let err = |path: &Path, reason: String| PackingError::Piece { path: path.to_path_buf(), reason };
    // O_NOFOLLOW and O_NONBLOCK: a symlink or FIFO swapped in after the check is
    // refused instead of followed or waited on forever; what was opened is checked.
    let input = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(source)
        .map_err(|e| err(source, e.to_string()))?;
    if !input.metadata().is_ok_and(|m| m.is_file()) {
        return Err(err(source, "not a regular file".into()));
    }
    // A fresh name, never an existing file; readable by the daemon's user only.
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| err(dest, format!("create: {e}")))?;
    let mut tee = Tee { input, out: BufWriter::with_capacity(1 << 20, out), error: None };
    let result = commit_piece(&mut tee, Some(max), None);
    if let Some(e) = tee.error.take() {
        return Err(err(dest, format!("write: {e}")));
    }
    let info = result.map_err(|e| err(source, e.to_string()))?;
    let file = tee.out.into_inner().map_err(|e| err(dest, format!("write: {}", e.error())))?;
    file.sync_all().map_err(|e| err(dest, format!("sync: {e}")))?;
    Ok(info)
}

/// Copies what is read from `input` to `out`, keeping the first write error.
struct Tee {
    input: File,
    out: BufWriter<File>,
    error: Option<std::io::Error>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            self.error.get_or_insert(e);
            return Err(std::io::Error::other("cannot write the piece copy"));
        }
        Ok(n)
    }
}
