//! Groth16 parameter files: naming, generation, integrity, loading
//! (circuit.md §7, params-table.md §6).
//!
//! Files are named as the reference names them (`v28-<cache id>.params`,
//! `.vk`, `.meta`) so that the published files can be dropped into the
//! parameter directory. Every file is checked against a manifest before its
//! first use in a process: the published digests ship with kiln
//! (`parameters/parameters.json`); a local test setup records its own digests in
//! `kiln-local-manifest.json` next to the files it generates.

use super::key::ProvingKey;
use super::setup;
use crate::durable;
use crate::error::{Error, Result};
use crate::post::{PostKind, PostProof};
use crate::shape::{SectorShape, SectorSize};
use crate::stamp::Stamp;
use bellperson::groth16::{self, PreparedVerifyingKey, VerifyingKey};
use blake2::{Blake2b512, Digest};
use blstrs::Bls12;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rand_xorshift::XorShiftRng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{info, info_span};

/// The reference's parameter format version (file name prefix `v28-`).
pub const PARAMETER_VERSION: u32 = 28;
/// The manifest of published files, as shipped.
const PUBLISHED_MANIFEST: &str = include_str!("../../../parameters/parameters.json");
/// File the digests of locally generated parameters are recorded in.
pub const LOCAL_MANIFEST: &str = "kiln-local-manifest.json";

/// Seed of kiln's shared test setup: anyone can recompute its toxic waste, which
/// is what makes it reproducible for tests and devnets and insecure anywhere else.
pub const TEST_SETUP_SEED: [u8; 32] = *b"kiln insecure test setup, v1 ...";

/// The reference's test seed (storage-proofs-core `TEST_SEED`), with which its
/// `paramcache` draws test parameters from an XorShift RNG.
pub const REFERENCE_TEST_SEED: [u8; 16] =
    [0x59, 0x62, 0xbe, 0x5d, 0x76, 0x3d, 0x31, 0x8d, 0x17, 0xdb, 0x37, 0x32, 0x54, 0x06, 0xbc, 0xe5];

/// Where a test setup's randomness comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupSeed {
    /// ChaCha20 seeded with these bytes: kiln's test setups.
    ChaCha20([u8; 32]),
    /// The reference's own test RNG and seed: the files equal the reference's
    /// test parameters byte for byte when the circuits are the same.
    Reference,
}

impl SetupSeed {
    /// Kiln's shared test setup.
    pub const KILN: SetupSeed = SetupSeed::ChaCha20(TEST_SETUP_SEED);

    fn origin(&self) -> &'static str {
        match self {
            SetupSeed::ChaCha20(_) => "kiln test setup: INSECURE, for tests and devnets only",
            SetupSeed::Reference => "test setup with the reference's TEST_SEED: INSECURE, for tests only",
        }
    }
}

/// One manifest entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Sector size in bytes.
    pub sector_size: u64,
    /// Which circuit (`PoRep`, `Winning`, `Window`).
    pub circuit: String,
    /// First 32 hex characters of BLAKE2b-512 of the file.
    pub digest: String,
    /// Where the file came from; absent for published files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// File name → entry.
pub type Manifest = BTreeMap<String, ManifestEntry>;

/// The published files' manifest.
pub fn published_manifest() -> Manifest {
    serde_json::from_str(PUBLISHED_MANIFEST).expect("the shipped manifest is valid JSON")
}

/// The reference's cache identifier of a sector shape's PoRep circuit.
pub fn porep_cache_id(shape: &SectorShape) -> String {
    let tree = format!("merkletree-poseidon_hasher-{}", shape.tree.name());
    let graph = format!(
        "stacked_graph::StackedGraph{{expansion_degree: 8 base_graph: drgraph::BucketGraph{{size: {}; degree: 6; hasher: poseidon_hasher}} }}",
        shape.num_nodes
    );
    let ident = format!(
        "layered_drgporep::PublicParams{{ graph: {graph}, challenges: LayerChallenges {{ layers: {}, max_count: {} }}, tree: {tree} }}",
        shape.layers, shape.challenges_per_partition
    );
    format!(
        "stacked-proof-of-replication-{tree}-sha256_hasher-{}",
        hex::encode(Sha256::digest(ident.as_bytes()))
    )
}

/// The reference's digest of bytes: BLAKE2b-512, first 32 hex characters.
pub fn bytes_digest(bytes: &[u8]) -> String {
    hex::encode(Blake2b512::digest(bytes))[..32].to_string()
}

/// [`bytes_digest`] of a mapped parameter file, read in slices that are
/// dropped from the resident set once hashed (a C2 does not keep 1.1 GB of
/// file pages it may never use).
fn mapped_digest(key: &ProvingKey) -> String {
    const SLICE: usize = 64 << 20;
    let mut hasher = Blake2b512::new();
    for (i, slice) in key.bytes().chunks(SLICE).enumerate() {
        hasher.update(slice);
        key.release(i * SLICE, i * SLICE + slice.len());
    }
    hex::encode(hasher.finalize())[..32].to_string()
}

/// The reference's digest of a file: BLAKE2b-512, first 32 hex characters.
pub fn file_digest(path: &Path) -> Result<String> {
    let mut file = BufReader::with_capacity(1 << 20, File::open(path).map_err(Error::io("open", path))?);
    let mut hasher = Blake2b512::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(Error::io("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize())[..32].to_string())
}

/// The reference's cache identifier of a fallback PoSt circuit: its public
/// parameters' identifier hashed (post.md §6: `(challenge_count, sector_count)`
/// of the circuit, not of the proof; the API version is not part of it).
pub fn post_cache_id(proof: &PostProof) -> String {
    let shape = proof.sector_size().shape();
    let (challenges, sectors) = proof.circuit_counts();
    let ident = format!(
        "FallbackPoSt::PublicParams{{sector_size: {}, challenge_count: {challenges}, sector_count: {sectors}}}",
        shape.size_bytes
    );
    format!(
        "proof-of-spacetime-fallback-merkletree-poseidon_hasher-{}-{}",
        shape.tree.name(),
        hex::encode(Sha256::digest(ident.as_bytes()))
    )
}

/// Which circuit a parameter set is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CircuitKind {
    /// SDR PoRep (C2).
    Porep,
    /// Winning PoSt.
    Winning,
    /// Window PoSt, one partition.
    Window,
}

impl CircuitKind {
    /// The manifest's name of the circuit.
    pub fn name(self) -> &'static str {
        match self {
            CircuitKind::Porep => "PoRep",
            CircuitKind::Winning => "Winning",
            CircuitKind::Window => "Window",
        }
    }
}

/// The parameter files of one circuit of one sector size in a directory.
#[derive(Clone, Debug)]
pub struct GrothParams {
    dir: PathBuf,
    size: SectorSize,
    circuit: Circuit,
    id: String,
}

/// The circuit behind a parameter set, with what its blank form needs.
#[derive(Clone, Copy, Debug)]
enum Circuit {
    Porep,
    Post(PostProof),
}

/// Files already checked in this process: (path, device, inode, length,
/// modification time).
#[allow(clippy::type_complexity)]
static CHECKED: Mutex<Option<HashSet<(PathBuf, u64, u64, u64, std::time::SystemTime)>>> = Mutex::new(None);

/// The file's device and inode (zeros where the platform has none).
fn file_identity(meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

impl GrothParams {
    /// The PoRep files for `size` in `dir` (nothing is read yet).
    pub fn porep(dir: impl Into<PathBuf>, size: SectorSize) -> Self {
        Self { dir: dir.into(), size, circuit: Circuit::Porep, id: porep_cache_id(&size.shape()) }
    }

    /// The files of a PoSt proof type's circuit in `dir` (nothing is read yet).
    pub fn post(dir: impl Into<PathBuf>, proof: PostProof) -> Self {
        Self {
            dir: dir.into(),
            size: proof.sector_size(),
            circuit: Circuit::Post(proof),
            id: post_cache_id(&proof),
        }
    }

    /// Which circuit the files are for.
    pub fn kind(&self) -> CircuitKind {
        match self.circuit {
            Circuit::Porep => CircuitKind::Porep,
            Circuit::Post(p) if p.kind() == PostKind::Winning => CircuitKind::Winning,
            Circuit::Post(_) => CircuitKind::Window,
        }
    }

    /// The three parameter sets a sector size needs: PoRep, Winning and Window PoSt.
    pub fn all(dir: &Path, size: SectorSize) -> [Self; 3] {
        [
            Self::porep(dir, size),
            Self::post(dir, PostProof::winning(size)),
            Self::post(dir, PostProof::window(size)),
        ]
    }

    /// The parameter directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The sector size.
    pub fn sector_size(&self) -> SectorSize {
        self.size
    }
    fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("v{PARAMETER_VERSION}-{}.{ext}", self.id))
    }
    /// The proving parameters (`.params`).
    pub fn params_path(&self) -> PathBuf {
        self.path("params")
    }
    /// The verifying key (`.vk`).
    pub fn vk_path(&self) -> PathBuf {
        self.path("vk")
    }
    /// The metadata (`.meta`).
    pub fn meta_path(&self) -> PathBuf {
        self.path("meta")
    }

    /// Whether both the parameters and the verifying key exist.
    pub fn exist(&self) -> bool {
        self.params_path().is_file() && self.vk_path().is_file()
    }

    /// The manifest entries that may vouch for `path`: the published one (a
    /// drop-in of the published file) and the local one (a setup generated here
    /// under the same name).
    fn manifest_entries(&self, path: &Path) -> Result<Vec<ManifestEntry>> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let entries: Vec<ManifestEntry> =
            [published_manifest().remove(&name), read_local_manifest(&self.dir)?.remove(&name)]
                .into_iter()
                .flatten()
                .collect();
        if entries.is_empty() {
            return Err(Error::Params {
                path: path.to_path_buf(),
                reason: "no manifest lists this file (neither published nor generated here); \
                         run `kiln params generate` or install the published file"
                    .into(),
            });
        }
        Ok(entries)
    }

    /// Checks `path` against its manifest digest, once per process per file version.
    pub fn check(&self, path: &Path) -> Result<()> {
        let meta = self.metadata(path)?;
        self.check_file(path, &meta, || file_digest(path))
    }

    /// `path`'s metadata, a missing file named as such.
    fn metadata(&self, path: &Path) -> Result<std::fs::Metadata> {
        std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Params {
                path: path.to_path_buf(),
                reason: format!(
                    "missing ({} circuit); run `kiln params generate --sector-size {}`",
                    self.kind().name(),
                    self.size
                ),
            },
            _ => Error::io("stat", path)(e),
        })
    }

    /// Checks the file opened from `path`, whose metadata is `meta` (taken from
    /// the open file, so that what is checked is what is used); `digest`
    /// hashes its content when no stamp vouches for it.
    fn check_file(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
        digest: impl FnOnce() -> Result<String>,
    ) -> Result<()> {
        let (device, inode) = file_identity(meta);
        let modified = meta.modified().map_err(Error::io("stat", path))?;
        let key = (path.to_path_buf(), device, inode, meta.len(), modified);
        if CHECKED.lock().expect("checked set").get_or_insert_with(HashSet::new).contains(&key) {
            return Ok(());
        }
        self.verify(path, meta, digest)?;
        CHECKED.lock().expect("checked set").get_or_insert_with(HashSet::new).insert(key);
        Ok(())
    }

    /// Compares the file's digest with its manifest entries: the stamped digest
    /// when the file is unchanged since it was last hashed, else a fresh one
    /// (~1 s per GB), stamped when it matches. Returns whether the stamp served.
    fn verify(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
        digest: impl FnOnce() -> Result<String>,
    ) -> Result<bool> {
        let entries = self.manifest_entries(path)?;
        let stamped = Stamp::digest_if_unchanged(path, meta);
        let from_stamp = stamped.is_some();
        let found = match stamped {
            Some(digest) => digest,
            None => digest()?,
        };
        if !entries.iter().any(|e| e.digest == found) {
            Stamp::remove(path);
            let expected = entries.iter().map(|e| e.digest.as_str()).collect::<Vec<_>>().join(" or ");
            return Err(Error::ParamsDigest { path: path.to_path_buf(), expected, found });
        }
        if !from_stamp {
            if let Some(stamp) = Stamp::of(meta, &found) {
                stamp.write(path);
            }
        }
        Ok(from_stamp)
    }

    /// The proving parameters, memory-mapped, then checked (the mapped file
    /// itself: its stamp, else the digest of the mapped bytes).
    pub fn load_proving(&self) -> Result<ProvingKey> {
        let path = self.params_path();
        self.metadata(&path)?;
        let _span = info_span!("load_params", path = %path.display()).entered();
        let key = ProvingKey::open(&path)?;
        self.check_file(&path, &key.metadata()?, || Ok(mapped_digest(&key)))?;
        Ok(key)
    }

    /// The verifying key, read, checked (the bytes read) and prepared.
    pub fn load_verifying_key(&self) -> Result<PreparedVerifyingKey<Bls12>> {
        let path = self.vk_path();
        self.metadata(&path)?;
        let mut file = File::open(&path).map_err(Error::io("open", &path))?;
        let meta = file.metadata().map_err(Error::io("stat", &path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(Error::io("read", &path))?;
        self.check_file(&path, &meta, || Ok(bytes_digest(&bytes)))?;
        let vk = VerifyingKey::<Bls12>::read(&bytes[..])
            .map_err(|e| Error::Params { path: path.clone(), reason: format!("not a verifying key: {e}") })?;
        Ok(groth16::prepare_verifying_key(&vk))
    }

    /// Generates a **test** setup (random toxic waste from `seed`: anyone who knows
    /// the seed can forge proofs, so these parameters are never for production)
    /// and records its digests in the local manifest. Holds a lock so that
    /// concurrent callers generate once; returns without work if the files exist.
    pub fn generate_test_setup(&self, seed: SetupSeed) -> Result<()> {
        durable::create_dir(&self.dir)?;
        let lock_path = self.path("lock");
        let lock = File::create(&lock_path).map_err(Error::io("create", &lock_path))?;
        lock.lock().map_err(Error::io("lock", &lock_path))?;
        if self.exist() && self.check(&self.params_path()).is_ok() && self.check(&self.vk_path()).is_ok() {
            return Ok(());
        }
        let _span = info_span!("params_generate", size = %self.size, circuit = self.kind().name()).entered();
        info!(id = %self.id, "generating a Groth16 test setup (not for production)");
        let params = match self.circuit {
            Circuit::Porep => draw(crate::circuit::SdrCircuit::blank(&self.size.shape()), seed)?,
            Circuit::Post(proof) => draw(crate::circuit::PostCircuit::blank(&proof), seed)?,
        };

        let write = |path: &Path, f: &dyn Fn(&mut BufWriter<File>) -> std::io::Result<()>| -> Result<()> {
            let tmp = durable::temp_path(path);
            let file = File::create(&tmp).map_err(Error::io("create", &tmp))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            f(&mut w).and_then(|_| w.flush()).map_err(Error::io("write", &tmp))?;
            w.get_ref().sync_all().map_err(Error::io("sync", &tmp))?;
            durable::rename(&tmp, path)
        };
        write(&self.params_path(), &|w| params.write(w))?;
        write(&self.vk_path(), &|w| params.vk.write(w))?;
        let meta = format!("{{\"sector_size\":{}}}", self.size.bytes());
        durable::write_file(&self.meta_path(), meta.as_bytes())?;

        let mut manifest = read_local_manifest(&self.dir)?;
        for path in [self.params_path(), self.vk_path()] {
            let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 name").to_string();
            let digest = file_digest(&path)?;
            if let Some(stamp) = std::fs::metadata(&path).ok().and_then(|m| Stamp::of(&m, &digest)) {
                stamp.write(&path);
            }
            let entry = ManifestEntry {
                sector_size: self.size.bytes(),
                circuit: self.kind().name().into(),
                digest,
                origin: Some(seed.origin().into()),
            };
            manifest.insert(name, entry);
        }
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        durable::write_file(&self.dir.join(LOCAL_MANIFEST), &json)?;
        info!(path = %self.params_path().display(), "test setup written");
        Ok(())
    }
}

/// A test setup of `circuit` drawn from `seed`.
fn draw<C: bellperson::Circuit<blstrs::Scalar> + Clone>(
    circuit: C,
    seed: SetupSeed,
) -> Result<bellperson::groth16::Parameters<Bls12>> {
    match seed {
        SetupSeed::ChaCha20(seed) => {
            setup::generate_random_parameters(circuit, &mut ChaCha20Rng::from_seed(seed))
        }
        SetupSeed::Reference => {
            setup::generate_random_parameters(circuit, &mut XorShiftRng::from_seed(REFERENCE_TEST_SEED))
        }
    }
}

/// The local manifest of `dir` (empty if there is none).
pub fn read_local_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(LOCAL_MANIFEST);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Malformed { path, reason: format!("parameter manifest: {e}") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::new()),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// Result of checking one file of a parameter directory.
#[derive(Clone, Debug, Serialize)]
pub struct FileCheck {
    /// The file name.
    pub name: String,
    /// Sector size, from the manifest.
    pub sector_size: Option<u64>,
    /// `ok`, `corrupt`, `unlisted` or `missing`.
    pub status: &'static str,
    /// Detail for anything but `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Checks every `.params` and `.vk` file in `dir`, and reports the files of
/// `sizes` (PoRep, Winning and Window PoSt) that are missing.
pub fn verify_dir(dir: &Path, sizes: &[SectorSize]) -> Result<Vec<FileCheck>> {
    let published = published_manifest();
    let local = read_local_manifest(dir)?;
    let mut out = Vec::new();
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|n| n.ends_with(".params") || n.ends_with(".vk"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("read", dir)(e)),
    };
    names.sort();
    for name in &names {
        let entries: Vec<&ManifestEntry> =
            [published.get(name), local.get(name)].into_iter().flatten().collect();
        let check = match entries.first() {
            None => FileCheck {
                name: name.clone(),
                sector_size: None,
                status: "unlisted",
                detail: Some("in no manifest".into()),
            },
            Some(entry) => {
                let found = file_digest(&dir.join(name))?;
                let matched = entries.iter().find(|e| e.digest == found);
                let expected = entries.iter().map(|e| e.digest.as_str()).collect::<Vec<_>>().join(" or ");
                FileCheck {
                    name: name.clone(),
                    sector_size: Some(entry.sector_size),
                    status: if matched.is_some() { "ok" } else { "corrupt" },
                    detail: match matched {
                        Some(e) => e.origin.clone().or(Some("published".into())),
                        None => Some(format!("digest {found}, manifest says {expected}")),
                    },
                }
            }
        };
        out.push(check);
    }
    for &size in sizes {
        for p in GrothParams::all(dir, size) {
            for path in [p.params_path(), p.vk_path()] {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                if !names.contains(&name) {
                    out.push(FileCheck {
                        name,
                        sector_size: Some(size.bytes()),
                        status: "missing",
                        detail: Some(format!("run `kiln params generate --sector-size {size}`")),
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_ids_match_published_names() {
        let m = published_manifest();
        for size in SectorSize::ALL {
            let p = GrothParams::porep("/x", size);
            let name = p.params_path().file_name().unwrap().to_str().unwrap().to_string();
            let entry = m.get(&name).unwrap_or_else(|| panic!("{name} is not a published file"));
            assert_eq!(entry.sector_size, size.bytes());
            assert_eq!(entry.circuit, "PoRep");
            for p in &GrothParams::all(Path::new("/x"), size)[1..] {
                for path in [p.params_path(), p.vk_path()] {
                    let name = path.file_name().unwrap().to_str().unwrap().to_string();
                    let entry = m.get(&name).unwrap_or_else(|| panic!("{name} is not a published file"));
                    assert_eq!((entry.sector_size, entry.circuit.as_str()), (size.bytes(), p.kind().name()));
                }
            }
        }
        assert_eq!(
            porep_cache_id(&SectorSize::KiB2.shape()),
            "stacked-proof-of-replication-merkletree-poseidon_hasher-8-0-0-sha256_hasher-\
             032d3138d22506ec0082ed72b2dcba18df18477904e35bafee82b3793b06832f"
        );
    }

    /// A verified file is stamped; a later check trusts the stamp without
    /// hashing; a rewritten file (new size and mtime) is hashed again and a
    /// wrong digest is reported, its stale stamp dropped.
    #[test]
    fn a_verified_parameter_file_is_stamped_and_a_changed_one_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let p = GrothParams::porep(dir.path(), SectorSize::KiB2);
        let path = p.params_path();
        std::fs::write(&path, b"not really parameters").unwrap();
        let entry = ManifestEntry {
            sector_size: 2048,
            circuit: "PoRep".into(),
            digest: file_digest(&path).unwrap(),
            origin: Some("test".into()),
        };
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let manifest: Manifest = [(name, entry)].into_iter().collect();
        std::fs::write(dir.path().join(LOCAL_MANIFEST), serde_json::to_vec(&manifest).unwrap()).unwrap();
        let meta = || std::fs::metadata(&path).unwrap();
        let digest = || file_digest(&path);
        assert!(!p.verify(&path, &meta(), digest).unwrap(), "first check hashes");
        assert!(Stamp::path(&path).exists());
        assert!(
            p.verify(&path, &meta(), || panic!("the stamp serves")).unwrap(),
            "second check uses the stamp"
        );
        std::fs::write(&path, b"not really parameters, changed").unwrap();
        let err = p.verify(&path, &meta(), digest).unwrap_err();
        assert!(matches!(err, Error::ParamsDigest { .. }), "{err}");
        assert!(!Stamp::path(&path).exists(), "the stale stamp is dropped");
    }
}
