//! A `.params` file opened for proving: memory-mapped, the verifying key
//! decoded, the five queries located by offset. Bases are decoded only when a
//! proof uses them ([`super::msm`]), so opening costs nothing per point (no
//! table of ~20 million ranges, as bellperson's `MappedParameters` builds), and
//! a truncated or malformed file is an error naming the file, not a panic.
//! (The file is held under a shared lock, which keeps kiln's own writers out;
//! another process truncating it while it is mapped would fault the reader,
//! as with any mapping.)
//!
//! Layout (bellperson's `Parameters::write`): the verifying key, then H, L,
//! A, B in G1 and B in G2, each a big-endian u32 count and that many
//! uncompressed points.

use crate::error::{Error, Result};
use crate::merkle::store::ReadMap;
use bellperson::groth16::VerifyingKey;
use blstrs::Bls12;
use std::path::Path;

/// Bytes of an uncompressed G1 point.
pub const G1_BYTES: usize = 96;
/// Bytes of an uncompressed G2 point.
pub const G2_BYTES: usize = 192;
/// The verifying key before its IC points: α₁, β₁, β₂, γ₂, δ₁, δ₂ and the IC count.
const VK_FIXED_BYTES: usize = 3 * G1_BYTES + 3 * G2_BYTES + 4;

/// One query of the file: `len` points of `point` bytes from `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query {
    offset: usize,
    len: usize,
    point: usize,
}

impl Query {
    /// How many bases it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded base `i` (< len) within `file`.
    pub fn base<'a>(&self, file: &'a [u8], i: usize) -> &'a [u8] {
        let start = self.offset + i * self.point;
        &file[start..start + self.point]
    }
}

/// The proving key of one circuit.
pub struct ProvingKey {
    map: ReadMap,
    /// The verifying key at the head of the file.
    pub vk: VerifyingKey<Bls12>,
    /// τ^i · t(τ)/δ, i < m − 1.
    pub h: Query,
    /// (β·u + α·v + w)/δ per aux variable.
    pub l: Query,
    /// u(τ) per variable, the zero ones left out.
    pub a: Query,
    /// v(τ) in G1 per variable, the zero ones left out.
    pub b_g1: Query,
    /// v(τ) in G2 per variable, the zero ones left out.
    pub b_g2: Query,
}

impl ProvingKey {
    /// Maps and checks the layout of `path` (the caller checks its digest).
    pub fn open(path: &Path) -> Result<Self> {
        let map = ReadMap::open(path, None)?;
        let bad = |reason: String| Error::Params { path: path.to_path_buf(), reason };
        let bytes = map.bytes();
        let count = |offset: usize, what: &str| -> Result<usize> {
            let raw = bytes
                .get(offset..offset + 4)
                .ok_or_else(|| bad(format!("truncated: the count of {what} at byte {offset} is missing")))?;
            Ok(u32::from_be_bytes(raw.try_into().expect("4 bytes")) as usize)
        };
        let ic = count(VK_FIXED_BYTES - 4, "IC points")?;
        let vk_len = ic
            .checked_mul(G1_BYTES)
            .and_then(|b| b.checked_add(VK_FIXED_BYTES))
            .ok_or_else(|| bad(format!("the verifying key declares {ic} IC points")))?;
        let vk_bytes = bytes
            .get(..vk_len)
            .ok_or_else(|| bad(format!("truncated: the verifying key needs {vk_len} bytes")))?;
        let vk = VerifyingKey::<Bls12>::read(vk_bytes)
            .map_err(|e| bad(format!("the verifying key does not decode: {e}")))?;
        let mut offset = vk_len;
        let mut query = |what: &str, point: usize| -> Result<Query> {
            let len = count(offset, what)?;
            let start = offset + 4;
            let end = len.checked_mul(point).and_then(|b| b.checked_add(start)).filter(|&e| e <= bytes.len());
            let end = end.ok_or_else(|| {
                bad(format!(
                    "truncated: query {what} declares {len} points from byte {start}, the file has {} bytes",
                    bytes.len()
                ))
            })?;
            offset = end;
            Ok(Query { offset: start, len, point })
        };
        let h = query("H", G1_BYTES)?;
        let l = query("L", G1_BYTES)?;
        let a = query("A", G1_BYTES)?;
        let b_g1 = query("B in G1", G1_BYTES)?;
        let b_g2 = query("B in G2", G2_BYTES)?;
        if offset != bytes.len() {
            return Err(bad(format!("{} bytes follow the last query", bytes.len() - offset)));
        }
        Ok(ProvingKey { map, vk, h, l, a, b_g1, b_g2 })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.map.path()
    }

    /// The mapped file.
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// Drops bytes `from..to` of the mapping from the resident set (they are
    /// read back from the file if used again).
    pub fn release(&self, from: usize, to: usize) {
        self.map.release(from, to);
    }

    /// The mapped file's metadata.
    pub fn metadata(&self) -> Result<std::fs::Metadata> {
        self.map.metadata()
    }
}
