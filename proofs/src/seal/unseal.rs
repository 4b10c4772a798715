//! Unsealing: the original data back from the replica (porep-sdr.md §13).
//!
//! `data[v] = replica[v] − label[L][v]` in Fr. The key layer is taken from the
//! cache when PC1's layers are still there and intact, and regenerated (all
//! layers, into a scratch directory removed afterwards) when finalize removed
//! them. Every node is decoded, so comm_d is recomputed over the whole result
//! and compared with the sector's before the requested range is released.

use super::SectorDir;
use crate::durable;
use crate::error::{Error, Result};
use crate::fr32::{unpad_block, PADDED_BLOCK, UNPADDED_BLOCK};
use crate::ids::Commitment;
use crate::merkle::sha_tree::StreamingRoot;
use crate::merkle::store::ReadMap;
use crate::poseidon::fr_to_bytes;
use crate::sdr::graph::Graph;
use crate::sdr::label_par::LabelingConfig;
use crate::sdr::layers::{Layers, Progress};
use crate::sdr::parent_cache::ParentCache;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use tracing::{info, info_span};

/// Scratch directory (inside the cache) for layers regenerated to unseal.
const SCRATCH_DIR: &str = "unseal-layers";

/// What unsealing did.
#[derive(Clone, Debug)]
pub struct UnsealReport {
    /// Bytes written.
    pub bytes: u64,
    /// Whether the layers had to be regenerated.
    pub regenerated_layers: bool,
}

/// Writes unpadded bytes `[offset, offset + len)` of the sector's original data to
/// `out` (atomically: a temporary file renamed into place once comm_d matched).
pub fn unseal_range(
    dir: &SectorDir,
    offset: u64,
    len: u64,
    out: &Path,
    parent_cache_dir: &Path,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<UnsealReport> {
    let meta = dir.open()?;
    let shape = meta.identity.sector_size.shape();
    let _span = info_span!("unseal", sector_id = meta.identity.sector_id).entered();
    let pc1 = meta.pc1.ok_or(Error::MissingInput { step: "unseal", missing: "a finished PC1".into() })?;
    if meta.pc2.is_none() {
        return Err(Error::MissingInput { step: "unseal", missing: "a sealed replica (PC2)".into() });
    }
    let capacity = shape.unpadded_bytes();
    if offset.checked_add(len).is_none_or(|end| end > capacity) {
        return Err(Error::PieceSize(format!(
            "range {offset}+{len} is outside the sector's {capacity} unpadded bytes"
        )));
    }
    let replica = ReadMap::open(&dir.sealed_path(), Some(shape.size_bytes))?;

    // The key: PC1's last layer if it is still there and matches its record.
    let cache = dir.cache_dir();
    let layers = Layers::new(&cache, shape.num_nodes, shape.layers);
    let intact = layers
        .record()?
        .is_some_and(|r| r.replica_id == pc1.replica_id && r.layers.len() == shape.layers as usize)
        && layers.open(shape.layers).is_ok();
    let scratch = cache.join(SCRATCH_DIR);
    let key = if intact {
        layers.open(shape.layers)?
    } else {
        info!("layers were removed; regenerating them to unseal");
        durable::create_dir(&scratch)?;
        let graph = Graph::new(shape.num_nodes, shape.porep_id);
        let parents = ParentCache::open_or_build(parent_cache_dir, &graph)?;
        let regenerated = Layers::new(&scratch, shape.num_nodes, shape.layers);
        regenerated.generate(&parents, &pc1.replica_id, &LabelingConfig::default(), cancel, progress)?;
        regenerated.open(shape.layers)?
    };

    let first_block = offset / UNPADDED_BLOCK as u64;
    let end_block = (offset + len).div_ceil(UNPADDED_BLOCK as u64);
    let tmp = durable::temp_path(out);
    let file = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
    let mut writer = std::io::BufWriter::new(file);
    let mut root = StreamingRoot::new();
    let mut padded = [0u8; PADDED_BLOCK];
    let mut raw = [0u8; UNPADDED_BLOCK];
    let nodes_per_block = PADDED_BLOCK / 32;
    for block in 0..shape.size_bytes / PADDED_BLOCK as u64 {
        for i in 0..nodes_per_block {
            let v = block as usize * nodes_per_block + i;
            let node = fr_to_bytes(&(replica.fr(v, "node")? - key.fr(v, "label")?));
            root.push(node);
            padded[i * 32..(i + 1) * 32].copy_from_slice(&node);
        }
        if (first_block..end_block).contains(&block) {
            unpad_block(&padded, &mut raw);
            let start = block * UNPADDED_BLOCK as u64;
            let from = offset.saturating_sub(start).min(UNPADDED_BLOCK as u64) as usize;
            let to = (offset + len - start).min(UNPADDED_BLOCK as u64) as usize;
            writer.write_all(&raw[from..to]).map_err(Error::io("write", &tmp))?;
        }
    }
    drop(key);
    if !intact {
        std::fs::remove_dir_all(&scratch).map_err(Error::io("remove", &scratch))?;
    }
    let comm_d = Commitment(root.finish().expect("a sector is a power of two of nodes"));
    if comm_d != pc1.comm_d {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::CommDMismatch { from_data: comm_d.to_hex(), from_pieces: pc1.comm_d.to_hex() });
    }
    writer.flush().map_err(Error::io("write", &tmp))?;
    writer.get_ref().sync_all().map_err(Error::io("sync", &tmp))?;
    drop(writer);
    durable::rename(&tmp, out)?;
    Ok(UnsealReport { bytes: len, regenerated_layers: !intact })
}
