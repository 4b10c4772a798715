//! The parent cache: every node's 14 parents as `u32` little-endian, one file per
//! graph, built once and memory-mapped (porep-sdr.md §6.3, params-table.md §3).
//!
//! The file name is the reference's (`v28-sdr-parent-<hash>.cache`), so caches
//! are interchangeable with rust-fil-proofs'. The content is checked against
//! the reference's published digest where one is known, else against the
//! digest recorded when kiln built it. Hashing the whole file on every open
//! would cost ~0.5 s at 512MiB and ~30 s at 32GiB per sector, so the full
//! check runs once and is *stamped*: a `.stamp` file beside the cache records
//! the file's device, inode, size and modification time with the digest that
//! was verified. An open whose file still matches its stamp only spot-checks
//! [`SPOT_CHECKS`] randomly chosen nodes (and the first and last) against the
//! graph itself; any other open hashes the whole file again and re-stamps it.
//! A truncated or corrupt cache is reported, rebuilt and never used.

use super::graph::Graph;
use crate::durable;
use crate::error::{Error, Result};
use crate::merkle::store::{ReadMap, WriteMap};
use crate::shape::DEGREE;
use crate::stamp::Stamp;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};
use tracing::{debug, info, warn};

/// Nodes compared with the graph on an open that matched its stamp.
pub const SPOT_CHECKS: usize = 256;

/// Bytes per node in the cache.
const NODE_BYTES: usize = DEGREE * 4;

/// `(file name hash, content SHA-256)` of the production graphs, from the reference's
/// `parent_cache.json` (params-table.md §3).
const KNOWN_DIGESTS: [(&str, &str); 10] = [
    (
        "494d91dc80f2df5272c4b9e129bc7ade9405225993af9fe34e6542a39a47554b",
        "840057702eea7652cf97e04306c30fe57174714d90de156a25eddd6075c25b97",
    ),
    (
        "5eed212119fd91aa6220a27f31a8966444a9381842bceb3a1ea61525bd47a5b5",
        "03cd13565ded97c240a5f52e54295ad127bd0461b57904cb3a4d79b097bbecab",
    ),
    (
        "7ba215a1d2345774ab90b8cb1158d296e409d6068819d7b8c7baf0b25d63dc34",
        "b5877d1963793efebc261fd8fde4dd6bc59e6b5c7abf52617a4ee023b8dc173a",
    ),
    (
        "21981246c370f9d76c7a77ab273d94bde0ceb4e938292334960bce05585dc117",
        "93deeac5e3052b6927467d4b2641bb782f05491de18d510147c93eeedd8672da",
    ),
    (
        "4905486b7af19558ac3649bc6261411858b6add534438878c4ee3b29d8b9de0b",
        "2698b74eb2606b55b98d8b095e18b6320b47f46e00075956d48640ccd1641b03",
    ),
    (
        "3f0eef38bb48af1f48ad65e14eb85b4ebfc167cec18cd81764f6d998836c9899",
        "3da49221e2ed55371b86d0bf3d6526fcf128af61bed904f966428db1b531750d",
    ),
    (
        "dcdabb0fbe4364bf0ac28b6a18c66de246409fa1a9020a00f33fb3e3053da6dc",
        "a76604f2f59f2744c7151653bbb1d8596b6b57d295e6fa6c1f0c41d725b502ce",
    ),
    (
        "2aa9c77c3e58259481351cc4be2079cc71e1c9af39700866545c043bfa30fb42",
        "3adcc092423aa76d6a7184016893406da44dd974b219a89cd3ece25e4e3018f5",
    ),
    (
        "e1fa5d5b811ddbd118be3412c4a8c329156b8b8acc72632bca459455b5a05a13",
        "3c4f9841fcc75aed8c695800e58d08480629f25af3a2aefd81904181d75cc0b6",
    ),
    (
        "8a99e8d6b6be7ab87a56b632e6739ff201c23ea14e99737c74690f0e265574d6",
        "2778a732ad46a7dc18e0564dfdf59fd321dcde74ab476fd6d3c4e6735d7cd89c",
    ),
];

/// The hash in the cache's file name: SHA-256 of the reference's graph identifier.
pub fn cache_id(graph: &Graph) -> String {
    let graph_id = format!(
        "stacked_graph::StackedGraph{{expansion_degree: 8 base_graph: drgraph::BucketGraph{{size: {}; degree: 6; hasher: poseidon_hasher}} }}",
        graph.num_nodes()
    );
    let mut h = Sha256::new();
    h.update(b"poseidon_hasher");
    h.update(graph_id.as_bytes());
    for k in graph.feistel_keys() {
        h.update(k.to_le_bytes());
    }
    h.update(graph.num_nodes().to_le_bytes());
    hex::encode(h.finalize())
}

/// `v28-sdr-parent-<cache id>.cache`.
pub fn file_name(graph: &Graph) -> String {
    format!("v28-sdr-parent-{}.cache", cache_id(graph))
}

/// The reference's content digest for this graph, if it is a production graph.
pub fn known_digest(graph: &Graph) -> Option<&'static str> {
    let id = cache_id(graph);
    KNOWN_DIGESTS.iter().find(|(name, _)| *name == id).map(|(_, d)| *d)
}

/// An open, verified parent cache.
pub struct ParentCache {
    map: ReadMap,
    num_nodes: u32,
    check: Check,
}

/// How an open verified the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The whole file was hashed and compared with the expected digest.
    Full,
    /// The file matched its stamp; sampled nodes were compared with the graph.
    Stamped,
}

impl ParentCache {
    /// Opens the cache for `graph` in `dir`, building it first if it is missing,
    /// truncated or corrupt.
    pub fn open_or_build(dir: &Path, graph: &Graph) -> Result<Self> {
        durable::create_dir(dir)?;
        let path = dir.join(file_name(graph));
        // One builder at a time per graph, across threads and processes; others wait
        // here and then find the finished cache.
        let lock_path = path.with_extension("cache.lock");
        let lock = File::create(&lock_path).map_err(Error::io("create", &lock_path))?;
        lock.lock().map_err(Error::io("lock", &lock_path))?;
        if path.exists() {
            match Self::open_verified(&path, graph) {
                Ok(cache) => return Ok(cache),
                Err(e @ (Error::FileLength { .. } | Error::Malformed { .. })) => {
                    warn!(path = %path.display(), "parent cache rejected, rebuilding: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Self::build(&path, graph)?;
        Self::open_verified(&path, graph)
    }

    fn digest_sidecar(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".sha256");
        path.with_file_name(name)
    }

    fn expected_digest(path: &Path, graph: &Graph) -> Option<String> {
        known_digest(graph).map(str::to_string).or_else(|| {
            std::fs::read_to_string(Self::digest_sidecar(path)).ok().map(|s| s.trim().to_string())
        })
    }

    /// Opens an existing cache and checks its length, then its content: sampled
    /// nodes against the graph when the file matches its stamp, else its digest.
    pub fn open_verified(path: &Path, graph: &Graph) -> Result<Self> {
        let len = graph.num_nodes() as u64 * NODE_BYTES as u64;
        let map = ReadMap::open(path, Some(len))?;
        let Some(expected) = Self::expected_digest(path, graph) else {
            return Err(Error::Malformed {
                path: path.to_path_buf(),
                reason: "parent cache has no recorded digest to check it against".into(),
            });
        };
        let now = map.metadata().ok().and_then(|m| Stamp::of(&m, &expected));
        let mut cache = Self { map, num_nodes: graph.num_nodes(), check: Check::Full };
        if now.is_some() && now == Stamp::read(path) {
            cache.check = Check::Stamped;
            if let Err(e) = cache.spot_check(graph) {
                Stamp::remove(path);
                return Err(e);
            }
            debug!(path = %path.display(), "parent cache matches its stamp; {SPOT_CHECKS} nodes spot-checked");
            return Ok(cache);
        }
        let digest = sha256_hex(cache.map.bytes());
        if digest != expected {
            return Err(Error::Malformed {
                path: path.to_path_buf(),
                reason: format!("parent cache digest {digest} differs from the expected {expected}"),
            });
        }
        if let Some(stamp) = now {
            stamp.write(path);
        }
        Ok(cache)
    }

    /// Compares randomly chosen nodes (and the first and the last) with the graph.
    fn spot_check(&self, graph: &Graph) -> Result<()> {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let last = self.num_nodes - 1;
        let mut want = [0u32; DEGREE];
        for v in [0, last].into_iter().chain((0..SPOT_CHECKS).map(|_| rng.gen_range(0..=last))) {
            graph.parents(v, &mut want);
            if self.parents(v) != want {
                return Err(Error::Malformed {
                    path: self.path().to_path_buf(),
                    reason: format!("parent cache node {v} differs from the graph (spot check)"),
                });
            }
        }
        Ok(())
    }

    /// How this open verified the cache.
    pub fn check(&self) -> Check {
        self.check
    }

    fn build(path: &Path, graph: &Graph) -> Result<()> {
        let n = graph.num_nodes() as usize;
        info!(path = %path.display(), nodes = n, "building parent cache");
        let tmp = durable::temp_path(path);
        let mut out = WriteMap::create(&tmp, (n * NODE_BYTES) as u64)?;
        const CHUNK: usize = 4096;
        out.bytes_mut().par_chunks_mut(CHUNK * NODE_BYTES).enumerate().for_each(|(c, chunk)| {
            let mut parents = [0u32; DEGREE];
            for (i, node) in chunk.chunks_exact_mut(NODE_BYTES).enumerate() {
                graph.parents((c * CHUNK + i) as u32, &mut parents);
                for (dst, p) in node.chunks_exact_mut(4).zip(parents) {
                    dst.copy_from_slice(&p.to_le_bytes());
                }
            }
        });
        out.sync()?;
        let digest = sha256_hex(out.bytes());
        drop(out);
        if let Some(expected) = known_digest(graph) {
            if expected != digest {
                let _ = std::fs::remove_file(&tmp);
                // Not corruption: the graph itself disagrees with the reference.
                return Err(Error::Malformed {
                    path: path.to_path_buf(),
                    reason: format!("built parent cache has digest {digest}, reference has {expected}"),
                });
            }
        }
        durable::write_file(&Self::digest_sidecar(path), digest.as_bytes())?;
        Stamp::remove(path);
        durable::rename(&tmp, path)
    }

    /// Nodes covered.
    pub fn num_nodes(&self) -> u32 {
        self.num_nodes
    }

    /// The 14 parents of `node`: 6 DRG (same layer) then 8 expander (previous layer).
    #[inline]
    pub fn parents(&self, node: u32) -> [u32; DEGREE] {
        let start = node as usize * NODE_BYTES;
        let bytes = &self.map.bytes()[start..start + NODE_BYTES];
        let mut out = [0u32; DEGREE];
        for (o, b) in out.iter_mut().zip(bytes.as_chunks::<4>().0) {
            *o = u32::from_le_bytes(*b);
        }
        out
    }

    /// Drops the parents of nodes below `node` from this process's resident set
    /// (they stay cached by the kernel and are read again if needed): labelers read the
    /// cache front to back once per layer.
    pub fn release_before(&self, node: u32) {
        self.map.release(0, node as usize * NODE_BYTES);
    }

    /// SHA-256 of the cache file.
    pub fn digest(&self) -> String {
        sha256_hex(self.map.bytes())
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        self.map.path()
    }
}

/// Lowercase hex SHA-256 of a byte slice.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::SectorSize;

    #[test]
    fn file_names_match_the_reference() {
        for (size, name) in [
            (SectorSize::KiB2, "494d91dc80f2df5272c4b9e129bc7ade9405225993af9fe34e6542a39a47554b"),
            (SectorSize::MiB8, "5eed212119fd91aa6220a27f31a8966444a9381842bceb3a1ea61525bd47a5b5"),
            (SectorSize::MiB512, "7ba215a1d2345774ab90b8cb1158d296e409d6068819d7b8c7baf0b25d63dc34"),
            (SectorSize::GiB32, "21981246c370f9d76c7a77ab273d94bde0ceb4e938292334960bce05585dc117"),
            (SectorSize::GiB64, "4905486b7af19558ac3649bc6261411858b6add534438878c4ee3b29d8b9de0b"),
        ] {
            let shape = size.shape();
            let g = Graph::new(shape.num_nodes, shape.porep_id);
            assert_eq!(cache_id(&g), name, "{size}");
            assert!(known_digest(&g).is_some());
        }
    }

    #[test]
    fn cache_2kib_matches_reference_digest_and_corruption_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let shape = SectorSize::KiB2.shape();
        let g = Graph::new(shape.num_nodes, shape.porep_id);
        let cache = ParentCache::open_or_build(dir.path(), &g).unwrap();
        assert_eq!(cache.digest(), "840057702eea7652cf97e04306c30fe57174714d90de156a25eddd6075c25b97");
        let path = cache.path().to_path_buf();
        let mut p = [0u32; DEGREE];
        g.parents(37, &mut p);
        assert_eq!(cache.parents(37), p);
        drop(cache);

        // truncated: rejected by length, rebuilt
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(100).unwrap();
        drop(f);
        assert!(matches!(ParentCache::open_verified(&path, &g), Err(Error::FileLength { .. })));
        let cache = ParentCache::open_or_build(dir.path(), &g).unwrap();
        assert_eq!(cache.digest(), "840057702eea7652cf97e04306c30fe57174714d90de156a25eddd6075c25b97");
        drop(cache);

        // one flipped byte: rejected by digest, rebuilt
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[1000] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(ParentCache::open_verified(&path, &g), Err(Error::Malformed { .. })));
        let cache = ParentCache::open_or_build(dir.path(), &g).unwrap();
        assert_eq!(cache.digest(), "840057702eea7652cf97e04306c30fe57174714d90de156a25eddd6075c25b97");
    }

    /// The first open hashes the file and stamps it; later opens only spot-check;
    /// a rewritten file (new mtime) is hashed again; a corrupt node under an intact
    /// stamp is caught by the spot check (the first and last nodes are always checked).
    #[test]
    fn stamped_cache_is_spot_checked_and_rehashed_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let shape = SectorSize::KiB2.shape();
        let g = Graph::new(shape.num_nodes, shape.porep_id);
        let path = ParentCache::open_or_build(dir.path(), &g).unwrap().path().to_path_buf();
        assert!(Stamp::path(&path).exists(), "stamped at build or first open");
        let cache = ParentCache::open_verified(&path, &g).unwrap();
        assert_eq!(cache.check(), Check::Stamped);
        drop(cache);

        // Rewritten with the same bytes: mtime moves, so the whole file is hashed again.
        let bytes = std::fs::read(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(ParentCache::open_verified(&path, &g).unwrap().check(), Check::Full);
        assert_eq!(ParentCache::open_verified(&path, &g).unwrap().check(), Check::Stamped);

        // The last node corrupted and the mtime restored: the change time still
        // moved, so the stamp no longer matches and the full hash catches it.
        let good = Stamp::read(&path).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let mut bad = bytes.clone();
        let at = bad.len() - 4;
        bad[at] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
        let err = ParentCache::open_verified(&path, &g).err().expect("full check fails");
        assert!(err.to_string().contains("differs from the expected"), "{err}");

        // Corruption the stamp cannot see (as bit rot would be), simulated by a
        // stamp written for the corrupt file: the spot check catches it.
        let digest = good.digest().to_string();
        Stamp::of(&std::fs::metadata(&path).unwrap(), &digest).unwrap().write(&path);
        let err = ParentCache::open_verified(&path, &g).err().expect("spot check fails");
        assert!(err.to_string().contains("spot check"), "{err}");
        assert!(!Stamp::path(&path).exists(), "a failed spot check drops the stamp");
        // open_or_build then rebuilds it.
        let cache = ParentCache::open_or_build(dir.path(), &g).unwrap();
        assert_eq!(cache.digest(), "840057702eea7652cf97e04306c30fe57174714d90de156a25eddd6075c25b97");
    }

    #[test]
    fn legacy_2kib_graph_digest_is_known() {
        // The V1 graph's name is in the table, so a cache built for it is checked against it too.
        let g = Graph::new(64, crate::shape::porep_id(0));
        assert_eq!(cache_id(&g), "3f0eef38bb48af1f48ad65e14eb85b4ebfc167cec18cd81764f6d998836c9899");
    }
}
