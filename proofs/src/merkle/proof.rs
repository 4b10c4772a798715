//! Inclusion proofs in the trees of a sector (porep-sdr.md §9.2, §12).
//!
//! A path runs bottom-up. Each element holds the `arity − 1` siblings of the
//! current node in order and the current node's position among the `arity`
//! children; hashing the children gives the next node. Compound trees simply
//! continue the path with one element for the sub level and one for the top
//! level, so the positions, read as a mixed-radix number (least significant
//! first), are the leaf index for every shape.

use super::poseidon_tree::{build_upper_rows, cached_len, row_count, rows_to_discard, tree_len};
use crate::error::{Error, Result};
use crate::ids::{sha254_pair, Node};
use crate::poseidon::hash_nodes;
use crate::shape::TreeShape;
use serde::{Deserialize, Serialize};

/// One level of an inclusion path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathElement {
    /// The other children of the parent node, in order.
    pub siblings: Vec<Node>,
    /// Position of the current node among all `siblings.len() + 1` children.
    pub index: u8,
}

/// A leaf, its inclusion path and the root it leads to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The root the path claims.
    pub root: Node,
    /// The proven leaf.
    pub leaf: Node,
    /// Levels bottom-up.
    pub path: Vec<PathElement>,
}

/// The hash of a tree's inner nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeHash {
    /// `trim(SHA-256(left || right))`, binary (tree_d).
    Sha254,
    /// Poseidon of the children (tree_c, tree_r_last).
    Poseidon,
}

/// Arities of the path elements of a tree: `levels` base levels of `arity`, then
/// the compound levels the shape has.
pub fn path_arities(shape: &TreeShape, leaves_per_base_tree: u64) -> Vec<usize> {
    let mut out = vec![shape.base_arity; row_count(leaves_per_base_tree as usize, shape.base_arity) - 1];
    if shape.sub_arity > 0 {
        out.push(shape.sub_arity);
    }
    if shape.top_arity > 0 {
        out.push(shape.top_arity);
    }
    out
}

/// Arities of tree_d's path over `leaves` leaves.
pub fn binary_arities(leaves: u64) -> Vec<usize> {
    vec![2; leaves.trailing_zeros() as usize]
}

impl InclusionProof {
    /// The leaf index the path opens.
    pub fn leaf_index(&self) -> u64 {
        let mut index = 0u64;
        let mut weight = 1u64;
        for e in &self.path {
            index += e.index as u64 * weight;
            weight *= e.siblings.len() as u64 + 1;
        }
        index
    }

    /// Checks that the path has exactly the given arities and in-range positions,
    /// so that hashing it and synthesizing it cannot fail on its shape.
    pub fn check_shape(&self, arities: &[usize]) -> std::result::Result<(), String> {
        if self.path.len() != arities.len() {
            return Err(format!("path has {} levels, expected {}", self.path.len(), arities.len()));
        }
        for (level, (e, &arity)) in self.path.iter().zip(arities).enumerate() {
            if e.siblings.len() + 1 != arity {
                return Err(format!(
                    "level {level} has {} siblings, expected {}",
                    e.siblings.len(),
                    arity - 1
                ));
            }
            if e.index as usize >= arity {
                return Err(format!("level {level} has position {} in an arity-{arity} node", e.index));
            }
        }
        Ok(())
    }

    /// The root obtained by hashing the leaf up the path.
    pub fn computed_root(&self, hash: TreeHash) -> Result<Node> {
        let mut cur = self.leaf;
        for e in &self.path {
            let mut children = e.siblings.clone();
            children.insert((e.index as usize).min(children.len()), cur);
            cur = match hash {
                TreeHash::Sha254 if children.len() == 2 => Node(sha254_pair(&children[0].0, &children[1].0)),
                TreeHash::Sha254 => {
                    return Err(Error::InvalidProof(format!(
                        "SHA-256 tree level of arity {}",
                        children.len()
                    )))
                }
                TreeHash::Poseidon => {
                    if !crate::poseidon::supports_arity(children.len()) {
                        return Err(Error::InvalidProof(format!(
                            "Poseidon level of arity {}",
                            children.len()
                        )));
                    }
                    let nodes: Vec<[u8; 32]> = children.iter().map(|n| n.0).collect();
                    Node(hash_nodes(&nodes)?)
                }
            };
        }
        Ok(cur)
    }

    /// Whether the proof opens `index` under `root` with exactly `arities`.
    pub fn verifies(&self, hash: TreeHash, root: &Node, index: u64, arities: &[usize]) -> bool {
        self.check_shape(arities).is_ok()
            && self.root == *root
            && self.leaf_index() == index
            && self.computed_root(hash).is_ok_and(|r| r == *root)
    }
}

/// Inclusion proof of leaf `index` in a full binary SHA-256 tree stored rows
/// bottom-up (tree_d's file layout).
pub fn sha_tree_proof(tree: &[[u8; 32]], leaves: usize, index: usize) -> InclusionProof {
    assert_eq!(tree.len(), 2 * leaves - 1, "binary tree length");
    let mut path = Vec::new();
    let (mut start, mut width, mut i) = (0, leaves, index);
    while width > 1 {
        path.push(PathElement { siblings: vec![Node(tree[start + (i ^ 1)])], index: (i & 1) as u8 });
        start += width;
        width /= 2;
        i /= 2;
    }
    InclusionProof { root: Node(tree[tree.len() - 1]), leaf: Node(tree[index]), path }
}

/// Where a Poseidon tree's nodes come from.
pub trait PoseidonTreeSource {
    /// Node `index` of row `row` (0 = leaves) of base tree `tree`.
    fn node(&self, tree: usize, row: usize, index: usize) -> Result<Node>;
    /// Root of base tree `tree`.
    fn base_root(&self, tree: usize) -> Result<Node>;
}

/// Base trees stored whole, rows bottom-up (tree_c's files).
pub struct FullTrees<'a> {
    /// One slice per base tree file.
    pub trees: Vec<&'a [[u8; 32]]>,
    /// Leaves per base tree.
    pub leaves: usize,
    /// Base arity.
    pub arity: usize,
}

impl PoseidonTreeSource for FullTrees<'_> {
    fn node(&self, tree: usize, row: usize, index: usize) -> Result<Node> {
        let mut start = 0;
        let mut width = self.leaves;
        for _ in 0..row {
            start += width;
            width /= self.arity;
        }
        Ok(Node(self.trees[tree][start + index]))
    }
    fn base_root(&self, tree: usize) -> Result<Node> {
        let t = self.trees[tree];
        Ok(Node(t[t.len() - 1]))
    }
}

/// Rows `1..=discard` of one subtree of a base tree: (tree, first leaf, rows).
type LocalRows = (usize, usize, Vec<Vec<[u8; 32]>>);

/// Base trees whose bottom rows are not stored (tree_r_last): the leaves come
/// from the replica, the discarded rows are re-hashed from it around the
/// challenged leaf, and the rows above come from the cached files.
pub struct CachedTrees<'a> {
    /// The replica's nodes (all base trees' leaves, in order).
    pub leaves: &'a [[u8; 32]],
    /// One slice per cached tree file.
    pub cached: Vec<&'a [[u8; 32]]>,
    /// Leaves per base tree.
    pub leaves_per_tree: usize,
    /// Base arity.
    pub arity: usize,
    /// The discarded rows around the leaf being proven.
    local: std::cell::RefCell<Option<LocalRows>>,
}

impl<'a> CachedTrees<'a> {
    /// A view over the replica and the cached files.
    pub fn new(
        leaves: &'a [[u8; 32]],
        cached: Vec<&'a [[u8; 32]]>,
        leaves_per_tree: usize,
        arity: usize,
    ) -> Self {
        Self { leaves, cached, leaves_per_tree, arity, local: Default::default() }
    }

    fn discard(&self) -> usize {
        rows_to_discard(self.leaves_per_tree, self.arity)
    }

    fn local_row(&self, tree: usize, row: usize, index: usize) -> Result<Node> {
        let span = self.arity.pow(self.discard() as u32 + 1);
        let first = index * self.arity.pow(row as u32) / span * span;
        let mut local = self.local.borrow_mut();
        let fresh = !matches!(&*local, Some((t, f, _)) if *t == tree && *f == first);
        if fresh {
            let base = tree * self.leaves_per_tree + first;
            let leaves = &self.leaves[base..base + span];
            let mut upper = vec![[0u8; 32]; tree_len(span, self.arity) - span];
            build_upper_rows(leaves, self.arity, &mut upper)?;
            let mut rows = Vec::new();
            let (mut start, mut width) = (0, span / self.arity);
            for _ in 0..self.discard() {
                rows.push(upper[start..start + width].to_vec());
                start += width;
                width /= self.arity;
            }
            *local = Some((tree, first, rows));
        }
        let (_, _, rows) = local.as_ref().expect("filled above");
        let offset = index - first / self.arity.pow(row as u32);
        Ok(Node(rows[row - 1][offset]))
    }
}

impl PoseidonTreeSource for CachedTrees<'_> {
    fn node(&self, tree: usize, row: usize, index: usize) -> Result<Node> {
        let discard = self.discard();
        if row == 0 {
            return Ok(Node(self.leaves[tree * self.leaves_per_tree + index]));
        }
        if row <= discard {
            return self.local_row(tree, row, index);
        }
        let mut start = 0;
        let mut width = self.leaves_per_tree / self.arity.pow(discard as u32 + 1);
        for _ in discard + 1..row {
            start += width;
            width /= self.arity;
        }
        Ok(Node(self.cached[tree][start + index]))
    }
    fn base_root(&self, tree: usize) -> Result<Node> {
        let t = self.cached[tree];
        debug_assert_eq!(t.len(), cached_len(self.leaves_per_tree, self.arity));
        Ok(Node(t[t.len() - 1]))
    }
}

/// Inclusion proof of leaf `index` of a (possibly compound) Poseidon tree.
pub fn poseidon_tree_proof(
    source: &dyn PoseidonTreeSource,
    shape: &TreeShape,
    leaves_per_tree: usize,
    index: u64,
) -> Result<InclusionProof> {
    let arity = shape.base_arity;
    let tree = (index / leaves_per_tree as u64) as usize;
    let mut i = (index % leaves_per_tree as u64) as usize;
    let mut path = Vec::new();
    for row in 0..row_count(leaves_per_tree, arity) - 1 {
        let group = i / arity * arity;
        let siblings = (group..group + arity)
            .filter(|&j| j != i)
            .map(|j| source.node(tree, row, j))
            .collect::<Result<Vec<_>>>()?;
        path.push(PathElement { siblings, index: (i - group) as u8 });
        i /= arity;
    }
    let roots = (0..shape.base_tree_count()).map(|t| source.base_root(t)).collect::<Result<Vec<_>>>()?;
    let mut root = roots[0];
    if shape.sub_arity > 0 {
        let sub_roots = roots
            .chunks_exact(shape.sub_arity)
            .map(|c| hash_nodes(&c.iter().map(|n| n.0).collect::<Vec<_>>()).map(Node))
            .collect::<Result<Vec<_>>>()?;
        let group = tree / shape.sub_arity;
        let at = tree % shape.sub_arity;
        let siblings = roots[group * shape.sub_arity..(group + 1) * shape.sub_arity]
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != at)
            .map(|(_, n)| *n)
            .collect();
        path.push(PathElement { siblings, index: at as u8 });
        root = sub_roots[group];
        if shape.top_arity > 0 {
            let siblings =
                sub_roots.iter().enumerate().filter(|&(j, _)| j != group).map(|(_, n)| *n).collect();
            path.push(PathElement { siblings, index: group as u8 });
            root = Node(hash_nodes(&sub_roots.iter().map(|n| n.0).collect::<Vec<_>>())?);
        }
    }
    Ok(InclusionProof { root, leaf: source.node(tree, 0, (index % leaves_per_tree as u64) as usize)?, path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{poseidon_tree, sha_tree};
    use crate::poseidon::fr_to_bytes;
    use blstrs::Scalar as Fr;

    fn leaves(n: usize, salt: u64) -> Vec<[u8; 32]> {
        (0..n as u64).map(|i| fr_to_bytes(&Fr::from(i * 31 + salt))).collect()
    }

    #[test]
    fn sha_proofs_open_every_leaf() {
        let data = leaves(16, 3);
        let mut tree = vec![[0u8; 32]; 31];
        let root = sha_tree::build_tree(&data, &mut tree).unwrap();
        for i in 0..16 {
            let p = sha_tree_proof(&tree, 16, i);
            assert!(p.verifies(TreeHash::Sha254, &Node(root), i as u64, &binary_arities(16)));
            assert!(!p.verifies(TreeHash::Sha254, &Node(root), (i as u64 + 1) % 16, &binary_arities(16)));
        }
    }

    #[test]
    fn cached_and_full_trees_give_the_same_proofs() {
        // 512 leaves, arity 8: 4 rows, 2 of them discarded in the cached form.
        let data = leaves(512, 5);
        let mut full = data.clone();
        full.resize(tree_len(512, 8), [0u8; 32]);
        let (l, upper) = full.split_at_mut(512);
        let root = build_upper_rows(l, 8, upper).unwrap();
        let cached_nodes = &full[full.len() - cached_len(512, 8)..];
        let shape = TreeShape { base_arity: 8, sub_arity: 0, top_arity: 0 };
        let f = FullTrees { trees: vec![&full], leaves: 512, arity: 8 };
        let c = CachedTrees::new(&data, vec![cached_nodes], 512, 8);
        for i in [0u64, 7, 8, 63, 64, 300, 511] {
            let a = poseidon_tree_proof(&f, &shape, 512, i).unwrap();
            let b = poseidon_tree_proof(&c, &shape, 512, i).unwrap();
            assert_eq!(a, b);
            assert!(a.verifies(TreeHash::Poseidon, &Node(root), i, &path_arities(&shape, 512)));
        }
    }

    #[test]
    fn compound_proofs_reach_the_compound_root() {
        let shape = TreeShape { base_arity: 8, sub_arity: 8, top_arity: 2 };
        let per = 64;
        let mut files = Vec::new();
        let mut roots = Vec::new();
        for t in 0..16 {
            let mut full = leaves(per, t as u64 * 1000);
            full.resize(tree_len(per, 8), [0u8; 32]);
            let (l, upper) = full.split_at_mut(per);
            roots.push(build_upper_rows(l, 8, upper).unwrap());
            files.push(full);
        }
        let root = poseidon_tree::compound_root(&roots, &shape).unwrap();
        let f = FullTrees { trees: files.iter().map(|v| v.as_slice()).collect(), leaves: per, arity: 8 };
        for i in [0u64, 65, 511, 512, 1023] {
            let p = poseidon_tree_proof(&f, &shape, per, i).unwrap();
            assert_eq!(p.leaf_index(), i);
            assert!(p.verifies(TreeHash::Poseidon, &Node(root), i, &path_arities(&shape, per as u64)));
        }
    }
}
