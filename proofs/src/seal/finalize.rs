//! Finalize: after the proof is on chain, drop what only sealing needed.
//!
//! Removed: the SDR layers and their record, tree_c, tree_d and the staged
//! copy of the data (the data can be unsealed from the replica). Kept: the
//! replica, tree_r_last, p_aux, t_aux and `sector.json` — what Winning and
//! Window PoSt and unsealing need.

use super::pc1::TREE_D_FILE;
use super::pc2::tree_file_name;
use super::SectorDir;
use crate::error::{Error, Result};
use crate::sdr::layers::{layer_file_name, RECORD_FILE};
use std::path::PathBuf;

/// Removes the sector's sealing-only files; returns what was removed. Idempotent.
pub fn finalize(dir: &SectorDir, keep_unsealed: bool) -> Result<Vec<PathBuf>> {
    let meta = dir.open()?;
    if meta.pc2.is_none() {
        return Err(Error::MissingInput { step: "finalize", missing: "a sealed replica (PC2)".into() });
    }
    let shape = meta.identity.sector_size.shape();
    let cache = dir.cache_dir();
    let count = shape.tree.base_tree_count();
    let mut doomed: Vec<PathBuf> = (1..=shape.layers).map(|l| cache.join(layer_file_name(l))).collect();
    doomed.push(cache.join(RECORD_FILE));
    doomed.push(cache.join(TREE_D_FILE));
    doomed.extend((0..count).map(|i| cache.join(tree_file_name("tree-c", i, count))));
    if !keep_unsealed {
        doomed.push(dir.unsealed_path());
    }
    let mut removed = Vec::new();
    for path in doomed {
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path)(e)),
        }
    }
    crate::durable::sync_dir(&cache)?;
    Ok(removed)
}
