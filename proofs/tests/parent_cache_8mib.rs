//! The 8MiB V1_1 parent cache equals the reference's published digest
//! (params-table.md §3). 2KiB is checked in the unit tests.

use proofs::sdr::graph::Graph;
use proofs::sdr::parent_cache::ParentCache;
use proofs::SectorSize;

#[test]
fn parent_cache_8mib_matches_reference_digest() {
    let dir = tempfile::tempdir().unwrap();
    let shape = SectorSize::MiB8.shape();
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let cache = ParentCache::open_or_build(dir.path(), &graph).unwrap();
    assert_eq!(cache.digest(), "03cd13565ded97c240a5f52e54295ad127bd0461b57904cb3a4d79b097bbecab");
    assert_eq!(
        cache.path().file_name().unwrap().to_str().unwrap(),
        "v28-sdr-parent-5eed212119fd91aa6220a27f31a8966444a9381842bceb3a1ea61525bd47a5b5.cache"
    );
}
