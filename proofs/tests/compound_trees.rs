//! Compound tree_r_last / tree_c shapes (32GiB: 8-8-0, 64GiB: 8-8-2) on small
//! test-sized sectors (16KiB and 32KiB, which the reference uses for the same
//! shapes): the reference's file split, file names and sizes, and the root folded
//! over the base trees.

use blstrs::Scalar as Fr;
use proofs::merkle::poseidon_tree::{build_upper_rows, cached_len, tree_len, TreeHashing};
use proofs::poseidon::{fr_to_bytes, hash};
use proofs::seal::pc2::{build_tree_r_last, tree_file_name};
use proofs::shape::{SectorShape, SectorSize, TreeShape};
use std::sync::atomic::AtomicBool;

fn test_shape(nodes: u64, tree: TreeShape) -> SectorShape {
    SectorShape { size_bytes: nodes * 32, num_nodes: nodes, tree, ..SectorSize::KiB2.shape() }
}

fn root_of(leaves: &[[u8; 32]]) -> [u8; 32] {
    let mut upper = vec![[0u8; 32]; tree_len(leaves.len(), 8) - leaves.len()];
    build_upper_rows(leaves, 8, &mut upper).unwrap()
}

#[test]
fn compound_tree_r_last_files_and_root() {
    for (nodes, tree) in [
        (512u64, TreeShape { base_arity: 8, sub_arity: 8, top_arity: 0 }),
        (1024, TreeShape { base_arity: 8, sub_arity: 8, top_arity: 2 }),
    ] {
        let shape = test_shape(nodes, tree);
        let dir = tempfile::tempdir().unwrap();
        let replica: Vec<[u8; 32]> = (0..nodes).map(|i| fr_to_bytes(&Fr::from(i * i + 3))).collect();
        let sealed = dir.path().join("sealed");
        std::fs::write(&sealed, replica.as_flattened()).unwrap();
        let root = build_tree_r_last(
            &mut TreeHashing::Cpu,
            &sealed,
            &shape,
            dir.path(),
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();

        let count = tree.base_tree_count();
        let per_tree = nodes as usize / count;
        let base_roots: Vec<[u8; 32]> = replica.chunks(per_tree).map(root_of).collect();
        for (i, base_root) in base_roots.iter().enumerate() {
            let name = tree_file_name("tree-r-last", i, count);
            assert_eq!(name, format!("sc-02-data-tree-r-last-{i}.dat"));
            let file = std::fs::read(dir.path().join(&name)).unwrap();
            assert_eq!(file.len(), cached_len(per_tree, 8) * 32, "{name}");
            // 64 leaves per base tree: 3 rows, the bottom two dropped, the root kept
            assert_eq!(&file[file.len() - 32..], base_root, "{name}");
        }
        let frs: Vec<Fr> = base_roots.iter().map(|r| proofs::poseidon::fr_from_bytes(r).unwrap()).collect();
        let subs: Vec<Fr> = frs.chunks(8).map(hash).collect();
        let expected = if tree.top_arity == 0 { subs[0] } else { hash(&subs) };
        assert_eq!(root.0, fr_to_bytes(&expected), "{}", tree.name());
    }
}
