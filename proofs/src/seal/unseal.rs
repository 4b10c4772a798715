//! Unsealing: the original data back from the replica (porep-sdr.md §13).
//!
//! `data[v] = replica[v] − label[L][v]` in Fr. The key layer is taken from the
//! cache when PC1's layers are still there and intact. When finalize removed
//! them, they are regenerated as scratch: no file records, digests or syncs
//! (nothing of them outlives the call), in two buffers used in turn (layer
//! `ℓ + 1` overwrites layer `ℓ − 1`), held in memory when two layers fit in
//! half the available memory and in unlinked scratch files in the cache
//! directory otherwise. The last layer is never waited for: its labels are
//! decoded as the labeler publishes them, on a producer thread, so decoding
//! and the comm_d check overlap the hashing.
//!
//! Every node is decoded, so comm_d is recomputed over the whole result and
//! compared with the sector's before the requested range is released.

use super::SectorDir;
use crate::durable;
use crate::error::{Error, Result};
use crate::fr32::{unpad_block, PADDED_BLOCK, UNPADDED_BLOCK};
use crate::ids::Commitment;
use crate::merkle::sha_tree::StreamingRoot;
use crate::merkle::store::{available_memory, NodeBuffer, ReadMap, WriteMap};
use crate::sdr::graph::Graph;
use crate::sdr::label_par::{label_layer_par, LabelingConfig};
use crate::sdr::layers::{Layers, Progress};
use crate::sdr::parent_cache::ParentCache;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use tracing::{info, info_span};

/// What unsealing did.
#[derive(Clone, Debug)]
pub struct UnsealReport {
    /// Bytes written.
    pub bytes: u64,
    /// Whether the layers had to be regenerated.
    pub regenerated_layers: bool,
    /// Where regenerated layers were held.
    pub scratch: Option<Scratch>,
}

/// Where regenerated layers are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scratch {
    /// Anonymous memory.
    Memory,
    /// Unlinked files in the sector's cache directory.
    Files,
}

/// The BLS12-381 scalar field modulus, little-endian 64-bit limbs.
const MODULUS: [u64; 4] = [0xffffffff00000001, 0x53bda402fffe5bfe, 0x3339d80809a1d805, 0x73eda753299d7d48];

fn limbs(bytes: &[u8; 32]) -> [u64; 4] {
    std::array::from_fn(|i| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes")))
}

/// Whether little-endian limbs are below the modulus (a canonical field element).
fn canonical(a: &[u64; 4]) -> bool {
    for i in (0..4).rev() {
        if a[i] != MODULUS[i] {
            return a[i] < MODULUS[i];
        }
    }
    false
}

/// `a − b` in Fr on canonical little-endian encodings, without leaving the integer
/// form (no Montgomery conversions); `None` when an input is not canonical.
pub fn sub_mod(a: &[u8; 32], b: &[u8; 32]) -> Option<[u8; 32]> {
    let (a, b) = (limbs(a), limbs(b));
    if !canonical(&a) || !canonical(&b) {
        return None;
    }
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(borrow as u64);
        out[i] = d;
        borrow = b1 || b2;
    }
    if borrow {
        let mut carry = false;
        for i in 0..4 {
            let (s, c1) = out[i].overflowing_add(MODULUS[i]);
            let (s, c2) = s.overflowing_add(carry as u64);
            out[i] = s;
            carry = c1 || c2;
        }
    }
    let mut bytes = [0u8; 32];
    for (chunk, limb) in bytes.chunks_exact_mut(8).zip(out) {
        chunk.copy_from_slice(&limb.to_le_bytes());
    }
    Some(bytes)
}

/// Decodes key labels as they come, in node order: data = replica − key, into
/// comm_d's streaming root and, for the requested blocks, the output file.
struct Decoder<'a, W: Write> {
    replica: &'a ReadMap,
    next: usize,
    root: StreamingRoot,
    padded: [u8; PADDED_BLOCK],
    out: W,
    out_path: &'a Path,
    offset: u64,
    len: u64,
}

impl<W: Write> Decoder<'_, W> {
    fn push(&mut self, keys: &[[u8; 32]]) -> Result<()> {
        let nodes_per_block = PADDED_BLOCK / 32;
        let replica = self.replica.nodes();
        let (first_block, end_block) =
            (self.offset / UNPADDED_BLOCK as u64, (self.offset + self.len).div_ceil(UNPADDED_BLOCK as u64));
        for key in keys {
            let v = self.next;
            let node = sub_mod(&replica[v], key).ok_or_else(|| Error::Malformed {
                path: self.replica.path().to_path_buf(),
                reason: format!("node {v} or its key label is not a field element"),
            })?;
            self.root.push(node);
            let i = v % nodes_per_block;
            self.padded[i * 32..(i + 1) * 32].copy_from_slice(&node);
            self.next += 1;
            let block = (v / nodes_per_block) as u64;
            if i + 1 == nodes_per_block && (first_block..end_block).contains(&block) {
                let mut raw = [0u8; UNPADDED_BLOCK];
                unpad_block(&self.padded, &mut raw);
                let start = block * UNPADDED_BLOCK as u64;
                let from = self.offset.saturating_sub(start).min(UNPADDED_BLOCK as u64) as usize;
                let to = (self.offset + self.len - start).min(UNPADDED_BLOCK as u64) as usize;
                self.out.write_all(&raw[from..to]).map_err(Error::io("write", self.out_path))?;
            }
        }
        Ok(())
    }
}

/// A scratch layer: a zeroed buffer in memory or an unlinked, mapped file.
enum ScratchLayer {
    Memory(NodeBuffer),
    File(WriteMap),
}

impl ScratchLayer {
    fn new(kind: Scratch, nodes: u64, dir: &Path, name: &str) -> Result<Self> {
        match kind {
            Scratch::Memory => Ok(Self::Memory(NodeBuffer::new(nodes, false)?)),
            Scratch::Files => {
                let path: PathBuf = dir.join(name);
                let map = WriteMap::create(&path, nodes * 32)?;
                // Unlinked at once: the mapping keeps the space, a crash leaves nothing behind.
                std::fs::remove_file(&path).map_err(Error::io("remove", &path))?;
                Ok(Self::File(map))
            }
        }
    }

    fn nodes(&self) -> &[[u8; 32]] {
        match self {
            Self::Memory(b) => b.nodes(),
            Self::File(m) => m.nodes(),
        }
    }

    fn nodes_mut(&mut self) -> &mut [[u8; 32]] {
        match self {
            Self::Memory(b) => b.nodes_mut(),
            Self::File(m) => m.nodes_mut(),
        }
    }
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
    unseal_range_with(dir, offset, len, out, parent_cache_dir, None, cancel, progress)
}

/// [`unseal_range`] with the scratch for regenerated layers chosen by the caller
/// (`None`: memory when two layers fit in half the available memory, else files).
#[allow(clippy::too_many_arguments)]
pub fn unseal_range_with(
    dir: &SectorDir,
    offset: u64,
    len: u64,
    out: &Path,
    parent_cache_dir: &Path,
    scratch: Option<Scratch>,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<UnsealReport> {
    let meta = dir.open()?;
    refuse_output_in(dir, out)?;
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

    let (tmp, file) = durable::create_unique_temp(out)?;
    let mut decoder = Decoder {
        replica: &replica,
        next: 0,
        root: StreamingRoot::new(),
        padded: [0u8; PADDED_BLOCK],
        out: std::io::BufWriter::new(file),
        out_path: &tmp,
        offset,
        len,
    };
    let decoded = if intact {
        layers.open(shape.layers).and_then(|key| decoder.push(key.nodes())).map(|()| None)
    } else {
        let budget = available_memory().map_or(0, |m| m / 2);
        let kind =
            scratch.unwrap_or(if 2 * shape.size_bytes <= budget { Scratch::Memory } else { Scratch::Files });
        info!(?kind, "layers were removed; regenerating them to unseal");
        regenerate_and_decode(
            &shape,
            &pc1.replica_id,
            &cache,
            parent_cache_dir,
            kind,
            cancel,
            progress,
            &mut decoder,
        )
        .map(Some)
    };
    let scratch = match decoded {
        Ok(s) => s,
        Err(e) => {
            drop(decoder);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let Decoder { root, out: mut writer, .. } = decoder;
    let comm_d = Commitment(root.finish().expect("a sector is a power of two of nodes"));
    if comm_d != pc1.comm_d {
        drop(writer);
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::CommDMismatch { from_data: comm_d.to_hex(), from_pieces: pc1.comm_d.to_hex() });
    }
    writer.flush().map_err(Error::io("write", &tmp))?;
    writer.get_ref().sync_all().map_err(Error::io("sync", &tmp))?;
    drop(writer);
    durable::rename(&tmp, out)?;
    Ok(UnsealReport { bytes: len, regenerated_layers: !intact, scratch })
}

/// Refuses an output path inside the sector directory (after resolving
/// symlinks and `..`): the output is renamed into place, so `D/sealed` would
/// replace the replica.
fn refuse_output_in(dir: &SectorDir, out: &Path) -> Result<()> {
    let root = dir.root().canonicalize().map_err(Error::io("resolve", dir.root()))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // A parent that does not exist yet cannot be inside the sector directory.
    let Ok(parent) = parent.canonicalize() else { return Ok(()) };
    let resolved = match out.file_name() {
        Some(name) => parent.join(name),
        None => parent,
    };
    if resolved.starts_with(&root) {
        return Err(Error::OutputInSector { out: out.to_path_buf(), dir: dir.root().to_path_buf() });
    }
    Ok(())
}

/// Labels every layer into two scratch buffers used in turn, the last one straight
/// into `decoder` as its labels are published.
#[allow(clippy::too_many_arguments)]
fn regenerate_and_decode<W: Write + Send>(
    shape: &crate::SectorShape,
    replica_id: &crate::ReplicaId,
    cache_dir: &Path,
    parent_cache_dir: &Path,
    kind: Scratch,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
    decoder: &mut Decoder<'_, W>,
) -> Result<Scratch> {
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let parents = ParentCache::open_or_build(parent_cache_dir, &graph)?;
    let config = LabelingConfig::default();
    let pid = std::process::id();
    let mut buffers = [
        ScratchLayer::new(kind, shape.num_nodes, cache_dir, &format!("unseal-scratch-{pid}-a"))?,
        ScratchLayer::new(kind, shape.num_nodes, cache_dir, &format!("unseal-scratch-{pid}-b"))?,
    ];
    let total = shape.num_nodes;
    for layer in 1..=shape.layers {
        let _span = info_span!("layer", layer).entered();
        let [a, b] = &mut buffers;
        let (out, previous) = if layer % 2 == 1 { (a, b) } else { (b, a) };
        let previous = (layer > 1).then(|| previous.nodes());
        let mut report = |done| {
            progress(Progress {
                phase: crate::sdr::layers::ProgressPhase::Labeling,
                layer: Some(layer),
                done,
                total,
            })
        };
        let last = layer == shape.layers;
        let mut follow = |labels: &[[u8; 32]]| if last { decoder.push(labels) } else { Ok(()) };
        label_layer_par(
            &parents,
            replica_id,
            layer,
            previous,
            out.nodes_mut(),
            &config,
            cancel,
            &mut report,
            &mut follow,
        )?;
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poseidon::{fr_from_bytes, fr_to_bytes};
    use proptest::prelude::*;

    fn reduce(mut b: [u8; 32]) -> [u8; 32] {
        b[31] &= 0x3f;
        while fr_from_bytes(&b).is_none() {
            b[31] = b[31].wrapping_sub(0x10) & 0x3f;
        }
        b
    }

    proptest! {
        /// The integer subtraction agrees with blstrs' field arithmetic.
        #[test]
        fn sub_mod_matches_field_arithmetic(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            let (a, b) = (reduce(a), reduce(b));
            let want = fr_to_bytes(&(fr_from_bytes(&a).unwrap() - fr_from_bytes(&b).unwrap()));
            prop_assert_eq!(sub_mod(&a, &b), Some(want));
        }
    }

    #[test]
    fn sub_mod_rejects_non_canonical_inputs() {
        let mut p = [0u8; 32];
        for (chunk, limb) in p.chunks_exact_mut(8).zip(MODULUS) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        assert_eq!(sub_mod(&p, &[0; 32]), None);
        assert_eq!(sub_mod(&[0; 32], &p), None);
        assert_eq!(sub_mod(&[0; 32], &[0; 32]), Some([0; 32]));
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut minus_one = p;
        minus_one[0] -= 1;
        assert_eq!(sub_mod(&[0; 32], &one), Some(minus_one));
    }
}
