//! The reference's binary form of a PoSt vanilla proof: bincode (fixed-width
//! little-endian integers, u64 lengths, u32 enum tags) of filecoin-proofs'
//! `FallbackPoStSectorProof`, so that a vanilla proof can cross to another
//! prover (post.md §4).
//!
//! ```text
//! sector_id u64 | comm_r [32] | sectors: u64 = 1 |
//!   inclusion_proofs: u64 n, n × merkle proof | comm_c [32] | comm_r_last [32]
//! merkle proof: u32 tag, then
//!   0 Single: root, leaf, path
//!   1 Sub:    base path, sub path, root, leaf
//!   2 Top:    base path, sub path, top path, root, leaf
//! path: u64 levels, each: u64 k, k × [32] siblings, u64 position
//! ```

use super::vanilla::SectorProof;
use crate::error::{Error, Result};
use crate::ids::{Commitment, Node};
use crate::merkle::proof::{path_arities, InclusionProof, PathElement};
use crate::shape::SectorSize;

/// Most inclusion proofs one sector proof may hold (Winning's 66 is the most
/// any proof type asks).
const MAX_PROOFS: u64 = 1024;

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend(v.to_le_bytes());
}

fn put_path(out: &mut Vec<u8>, levels: &[PathElement]) {
    put_u64(out, levels.len() as u64);
    for e in levels {
        put_u64(out, e.siblings.len() as u64);
        for s in &e.siblings {
            out.extend(s.0);
        }
        put_u64(out, e.index as u64);
    }
}

/// How many path levels belong to the base, sub and top trees of `size`.
fn level_groups(size: SectorSize) -> (usize, usize, usize) {
    let shape = size.shape();
    let all = path_arities(&shape.tree, shape.leaves_per_base_tree()).len();
    let sub = usize::from(shape.tree.sub_arity > 0);
    let top = usize::from(shape.tree.top_arity > 0);
    (all - sub - top, sub, top)
}

/// The reference's bytes of `proof`, a proof of a sector of `size`.
pub fn encode(size: SectorSize, proof: &SectorProof) -> Vec<u8> {
    let (base, sub, top) = level_groups(size);
    let mut out = Vec::new();
    put_u64(&mut out, proof.sector_id);
    out.extend(proof.comm_r.0);
    put_u64(&mut out, 1);
    put_u64(&mut out, proof.inclusion_proofs.len() as u64);
    for p in &proof.inclusion_proofs {
        let (b, rest) = p.path.split_at(base.min(p.path.len()));
        let (s, t) = rest.split_at(sub.min(rest.len()));
        match (sub, top) {
            (0, _) => {
                out.extend(0u32.to_le_bytes());
                out.extend(p.root.0);
                out.extend(p.leaf.0);
                put_path(&mut out, &p.path);
            }
            (_, 0) => {
                out.extend(1u32.to_le_bytes());
                put_path(&mut out, b);
                put_path(&mut out, s);
                out.extend(p.root.0);
                out.extend(p.leaf.0);
            }
            _ => {
                out.extend(2u32.to_le_bytes());
                put_path(&mut out, b);
                put_path(&mut out, s);
                put_path(&mut out, t);
                out.extend(p.root.0);
                out.extend(p.leaf.0);
            }
        }
    }
    out.extend(proof.comm_c.0);
    out.extend(proof.comm_r_last.0);
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn fail(&self, what: &str) -> Error {
        Error::InvalidProof(format!("vanilla PoSt proof: {what} (at byte {})", self.at))
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.fail(&format!("truncated in {what}")))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn node(&mut self, what: &str) -> Result<Node> {
        Ok(Node(self.take(32, what)?.try_into().expect("32 bytes")))
    }
    /// A path whose levels have exactly `arities`.
    fn path(&mut self, arities: &[usize]) -> Result<Vec<PathElement>> {
        let levels = self.u64("path length")?;
        if levels != arities.len() as u64 {
            return Err(self.fail(&format!("path of {levels} levels, the sector size has {}", arities.len())));
        }
        arities
            .iter()
            .map(|&arity| {
                let k = self.u64("level width")?;
                if k != arity as u64 - 1 {
                    return Err(self.fail(&format!("level of {k} siblings in an arity-{arity} tree")));
                }
                let siblings = (0..k).map(|_| self.node("sibling")).collect::<Result<_>>()?;
                let index = self.u64("position")?;
                if index >= arity as u64 {
                    return Err(self.fail(&format!("position {index} in an arity-{arity} node")));
                }
                Ok(PathElement { siblings, index: index as u8 })
            })
            .collect()
    }
}

/// Reads the reference's bytes of a proof of a sector of `size`; anything but
/// exactly that shape, with no trailing bytes, is refused.
pub fn decode(size: SectorSize, bytes: &[u8]) -> Result<SectorProof> {
    let shape = size.shape();
    let arities = path_arities(&shape.tree, shape.leaves_per_base_tree());
    let (base, sub, top) = level_groups(size);
    let mut r = Reader { bytes, at: 0 };
    let sector_id = r.u64("sector id")?;
    let comm_r = Commitment(r.node("comm_r")?.0);
    let sectors = r.u64("sector count")?;
    if sectors != 1 {
        return Err(r.fail(&format!("{sectors} sector proofs, expected 1")));
    }
    let n = r.u64("proof count")?;
    if n > MAX_PROOFS {
        return Err(r.fail(&format!("{n} inclusion proofs, at most {MAX_PROOFS}")));
    }
    let mut inclusion_proofs = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let tag = r.u32("proof kind")?;
        let want = if sub == 0 {
            0
        } else if top == 0 {
            1
        } else {
            2
        };
        if tag != want {
            return Err(r.fail(&format!("merkle proof kind {tag}, a {size} sector has kind {want}")));
        }
        let proof = if tag == 0 {
            let root = r.node("root")?;
            let leaf = r.node("leaf")?;
            InclusionProof { root, leaf, path: r.path(&arities)? }
        } else {
            let mut path = r.path(&arities[..base])?;
            path.extend(r.path(&arities[base..base + sub])?);
            if top > 0 {
                path.extend(r.path(&arities[base + sub..])?);
            }
            let root = r.node("root")?;
            let leaf = r.node("leaf")?;
            InclusionProof { root, leaf, path }
        };
        inclusion_proofs.push(proof);
    }
    let comm_c = Commitment(r.node("comm_c")?.0);
    let comm_r_last = Commitment(r.node("comm_r_last")?.0);
    if r.at != bytes.len() {
        return Err(r.fail(&format!("{} trailing bytes", bytes.len() - r.at)));
    }
    Ok(SectorProof { sector_id, comm_r, inclusion_proofs, comm_c, comm_r_last })
}
