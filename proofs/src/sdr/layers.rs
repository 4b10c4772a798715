//! PC1 labeling of all layers into memory-mapped layer files, resumable, for
//! one sector or a batch of sectors of one size.
//!
//! Each finished layer is synced to disk and then recorded, with its SHA-256,
//! in the sector's `pc1-layers.json` (written atomically). A re-run after a
//! crash or kill keeps every recorded layer whose file still matches its
//! record and labels from the first unrecorded one, sector by sector. A
//! recorded layer whose file was truncated or altered is an error naming the
//! file: kiln never labels on top of a layer it cannot trust, and never
//! silently discards one either.
//!
//! Layers are labeled in memory when two layers of every sector being labeled
//! fit in half the available memory (anonymous buffers on huge pages), and
//! the file is written from the labels as they are published, with `write`,
//! not through a mapping: write-back of a writable mapping makes the kernel
//! write-protect each page again, one TLB shootdown of every hashing core per
//! page. Larger sectors are labeled straight into mapped files.
//!
//! None of the integrity work is on the hashing thread's path: the layer's
//! SHA-256 is computed and the file written as labels are published (by a
//! producer, or between nodes by the batch threads), write-back of finished
//! megabytes is started as the layer grows (`sync_file_range`), and the final
//! sync and the record are written by a background thread while the next
//! layer is labeled. Only the last layer's sync is waited for, and in memory
//! mode little of it is left by then.

use super::label_batch::{label_layer_batch, max_width, BatchSector};
use super::label_par::{label_layer_par, Follow, LabelingConfig};
use super::parent_cache::ParentCache;
use crate::durable;
use crate::error::{Error, Result};
use crate::ids::ReplicaId;
use crate::merkle::store::{NodeBuffer, ReadMap, WriteBack, WriteMap};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use tracing::{debug, info, info_span, warn};

/// Bytes of a layer written between two write-back requests.
const WRITEBACK_CHUNK: u64 = 1 << 20;

/// Name of the completion record in the cache directory.
pub const RECORD_FILE: &str = "pc1-layers.json";

/// The reference's name of layer `layer`'s file.
pub fn layer_file_name(layer: u32) -> String {
    format!("sc-02-data-layer-{layer}.dat")
}

/// One finished layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The layer, 1-based.
    pub layer: u32,
    /// SHA-256 of the layer file.
    pub sha256: String,
}

/// The completion record of a sector's labeling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayersRecord {
    /// Format version.
    pub version: u32,
    /// The replica the layers belong to.
    pub replica_id: ReplicaId,
    /// Nodes per layer.
    pub num_nodes: u64,
    /// Finished layers, in order.
    pub layers: Vec<LayerRecord>,
}

/// What a labeling run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelingOutcome {
    /// Layers kept from an earlier run.
    pub reused: Vec<u32>,
    /// Layers labeled by this run.
    pub labeled: Vec<u32>,
}

/// A progress report of a long phase.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// The phase.
    pub phase: ProgressPhase,
    /// The layer, for labeling.
    pub layer: Option<u32>,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
}

/// A phase of sealing work that reports progress: the vocabulary of
/// [`Progress`], the API's task progress and the web view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressPhase {
    /// Labeling a layer (PC1, and unsealing's layer 1).
    Labeling,
    /// Building tree_c (PC2).
    TreeC,
    /// Encoding the replica and building tree_r_last (PC2).
    TreeRLast,
}

impl ProgressPhase {
    /// The name as written on the wire and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Labeling => "labeling",
            Self::TreeC => "tree_c",
            Self::TreeRLast => "tree_r_last",
        }
    }
}

impl std::fmt::Display for ProgressPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn read_record(path: &Path) -> Result<Option<LayersRecord>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Malformed {
            path: path.to_path_buf(),
            reason: format!("completion record: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// SHA-256 of a layer file's content.
fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The layers of a sector, in its cache directory.
pub struct Layers {
    dir: PathBuf,
    num_nodes: u64,
    layers: u32,
}

impl Layers {
    /// The `layers` layer files of `num_nodes` nodes each in `cache_dir`.
    pub fn new(cache_dir: &Path, num_nodes: u64, layers: u32) -> Self {
        Self { dir: cache_dir.to_path_buf(), num_nodes, layers }
    }

    /// The file of layer `layer`.
    pub fn path(&self, layer: u32) -> PathBuf {
        self.dir.join(layer_file_name(layer))
    }

    fn record_path(&self) -> PathBuf {
        self.dir.join(RECORD_FILE)
    }

    /// The completion record, if any.
    pub fn record(&self) -> Result<Option<LayersRecord>> {
        read_record(&self.record_path())
    }

    /// Maps layer `layer` for reading, checking its length.
    pub fn open(&self, layer: u32) -> Result<ReadMap> {
        ReadMap::open(&self.path(layer), Some(self.num_nodes * 32))
    }

    /// Labels every layer not already finished for `replica_id`.
    pub fn generate(
        &self,
        cache: &ParentCache,
        replica_id: &ReplicaId,
        config: &LabelingConfig,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<LabelingOutcome> {
        generate_batch(cache, &[(self, *replica_id)], config, cancel, progress)?
            .pop()
            .expect("one result per sector")
    }

    /// The record to continue from, and the recorded layers that still match it:
    /// checked in order, stopping at the first unrecorded one.
    fn resume_point(&self, replica_id: &ReplicaId) -> Result<(LayersRecord, Vec<u32>)> {
        let fresh =
            LayersRecord { version: 1, replica_id: *replica_id, num_nodes: self.num_nodes, layers: vec![] };
        let mut record = match self.record()? {
            Some(r) if r.replica_id == *replica_id && r.num_nodes == self.num_nodes => r,
            Some(_) => {
                info!("layers on disk belong to another replica; labeling afresh");
                fresh
            }
            None => fresh,
        };
        let mut kept = Vec::new();
        for layer in 1..=self.layers {
            let Some(done) = record.layers.iter().find(|r| r.layer == layer) else { break };
            let map = self.open(layer).map_err(|e| match e {
                Error::FileLength { path, expected, found } => {
                    Error::LayerCorrupt { path, layer, reason: format!("{found} bytes, expected {expected}") }
                }
                e => e,
            })?;
            let found = digest(map.bytes());
            if found != done.sha256 {
                return Err(Error::LayerCorrupt {
                    path: self.path(layer),
                    layer,
                    reason: format!("SHA-256 {found}, recorded {}", done.sha256),
                });
            }
            debug!(layer, "layer already labeled, keeping it");
            kept.push(layer);
        }
        // Everything after the kept layers is relabeled; drop stale records of later layers.
        record.layers.retain(|r| kept.contains(&r.layer));
        Ok((record, kept))
    }
}

/// A finished layer, read by the next one: kept in memory from labeling it, or
/// mapped from its file (kept from an earlier run, or labeled in a mapping).
enum LayerView {
    Memory(NodeBuffer),
    Mapped(ReadMap),
}

impl LayerView {
    fn nodes(&self) -> &[[u8; 32]] {
        match self {
            Self::Memory(b) => b.nodes(),
            Self::Mapped(map) => map.nodes(),
        }
    }
}

/// The layer being labeled.
enum Current {
    /// In memory; the file is written from the labels as they are published.
    Memory { buffer: NodeBuffer, file: File, path: PathBuf },
    /// Straight into the mapped file.
    Mapped(WriteMap),
}

impl Current {
    fn create(path: PathBuf, num_nodes: u64, in_memory: bool, huge_pages: bool) -> Result<Self> {
        if !in_memory {
            return Ok(Self::Mapped(WriteMap::create(&path, num_nodes * 32)?));
        }
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io("create", &path))?;
        // Same contract as a mapped layer: one writer, found busy by any other.
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => Error::Io {
                op: "lock",
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "file is in use by another kiln task or process",
                ),
            },
            std::fs::TryLockError::Error(source) => Error::Io { op: "lock", path: path.clone(), source },
        })?;
        file.set_len(0).map_err(Error::io("truncate", &path))?;
        Ok(Self::Memory { buffer: NodeBuffer::new(num_nodes, huge_pages)?, file, path })
    }

    /// The labels to fill, and what follows them as they are published.
    fn split(&mut self) -> (&mut [[u8; 32]], LayerFollower<'_>) {
        match self {
            Self::Memory { buffer, file, path } => {
                (buffer.nodes_mut(), LayerFollower::new(Some(WriteBack::new(path, file)), Some(&*file)))
            }
            Self::Mapped(map) => (map.nodes_mut(), LayerFollower::new(None, None)),
        }
    }

    /// The finished layer as the next layer reads it.
    fn finish(self) -> Result<LayerView> {
        match self {
            Self::Memory { buffer, .. } => Ok(LayerView::Memory(buffer)),
            Self::Mapped(map) => {
                let path = map.path().to_path_buf();
                let len = map.nodes().len() as u64 * 32;
                // Unmapped before it is synced, so write-back need not write-protect pages
                // this process maps writable; the pages stay cached for the read mapping.
                drop(map);
                Ok(LayerView::Mapped(ReadMap::open(&path, Some(len))?))
            }
        }
    }
}

/// One sector of a labeling run.
struct Member<'a> {
    layers: &'a Layers,
    replica_id: ReplicaId,
    outcome: LabelingOutcome,
    previous: Option<LayerView>,
    failed: Option<Error>,
}

/// A layer handed to the background syncer.
struct Finished {
    member: usize,
    layer: u32,
    sha256: String,
}

/// Follows a layer as it is labeled: its SHA-256 and, in memory mode, the file
/// written and its write-back started.
struct LayerFollower<'a> {
    hasher: Sha256,
    writeback: Option<WriteBack<'a>>,
    file: Option<&'a File>,
    written: u64,
    queued: u64,
}

impl<'a> LayerFollower<'a> {
    fn new(writeback: Option<WriteBack<'a>>, file: Option<&'a File>) -> Self {
        Self { hasher: Sha256::new(), writeback, file, written: 0, queued: 0 }
    }

    fn follow(&mut self, labels: &[[u8; 32]], path: &Path) -> Result<()> {
        let bytes = labels.as_flattened();
        self.hasher.update(bytes);
        if let Some(file) = self.file {
            file.write_all_at(bytes, self.written).map_err(Error::io("write", path))?;
        }
        self.written += bytes.len() as u64;
        if let Some(wb) = &self.writeback {
            if self.written - self.queued >= WRITEBACK_CHUNK {
                wb.start(self.queued, self.written - self.queued)?;
                self.queued = self.written;
            }
        }
        Ok(())
    }

    fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// Whether the layers of `sectors` sectors of `size_bytes` are labeled in memory.
fn layers_in_memory(config: &LabelingConfig, sectors: usize, size_bytes: u64) -> bool {
    config.in_memory.unwrap_or_else(|| {
        let need = 2 * size_bytes * sectors as u64;
        crate::merkle::store::available_memory().is_some_and(|available| need <= available / 2)
    })
}

/// Labels every layer not already finished of each sector in `sectors` (all of one
/// size, so one graph and one parent cache), together: one sector runs on the
/// producer/consumer labeler, several on the batch labeler, [`max_width`] at a time.
/// Each sector resumes on its own from its own record. A sector whose files fail
/// (a damaged finished layer, a full disk) gets its error in its slot and drops out;
/// the others go on. Cancellation fails the whole call.
pub fn generate_batch(
    cache: &ParentCache,
    sectors: &[(&Layers, ReplicaId)],
    config: &LabelingConfig,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Result<LabelingOutcome>>> {
    let Some(&(first, _)) = sectors.first() else { return Ok(vec![]) };
    for (l, _) in sectors {
        assert!(l.num_nodes == first.num_nodes && l.layers == first.layers, "one sector size per batch");
        assert_eq!(l.num_nodes, cache.num_nodes() as u64, "parent cache of another size");
    }
    let mut members = Vec::with_capacity(sectors.len());
    let mut records = Vec::with_capacity(sectors.len());
    for &(layers, replica_id) in sectors {
        let mut member =
            Member { layers, replica_id, outcome: LabelingOutcome::default(), previous: None, failed: None };
        match layers.resume_point(&replica_id) {
            Ok((record, kept)) => {
                member.outcome.reused = kept;
                records.push(Some(record));
            }
            Err(e) => {
                member.failed = Some(e);
                records.push(None);
            }
        }
        members.push(member);
    }

    let (to_syncer, finished) = mpsc::channel::<Finished>();
    let sync_results = std::thread::scope(|scope| -> Result<Vec<Option<Error>>> {
        let syncer = scope.spawn(move || sync_layers(sectors, records, finished));
        let labeled = label_all(cache, &mut members, config, cancel, progress, &to_syncer);
        drop(to_syncer);
        let waited = std::time::Instant::now();
        let synced = syncer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        debug!(waited = ?waited.elapsed(), "last layers synced and recorded");
        labeled?;
        Ok(synced)
    })?;
    Ok(members
        .into_iter()
        .zip(sync_results)
        .map(|(m, sync_error)| match m.failed.or(sync_error) {
            Some(e) => Err(e),
            None => Ok(m.outcome),
        })
        .collect())
}

/// The labeling half of [`generate_batch`]: layer after layer, every member that needs it.
fn label_all(
    cache: &ParentCache,
    members: &mut [Member<'_>],
    config: &LabelingConfig,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
    to_syncer: &mpsc::Sender<Finished>,
) -> Result<()> {
    let num_layers = members[0].layers.layers;
    let total = members[0].layers.num_nodes;
    let threads = config.batch_threads();
    for layer in 1..=num_layers {
        let _span = info_span!("layer", layer).entered();
        // Members that need this layer, with the previous one open.
        let mut active: Vec<usize> = Vec::new();
        for (i, m) in members.iter_mut().enumerate() {
            if m.failed.is_some() || m.outcome.reused.contains(&layer) {
                continue;
            }
            if layer > 1 && m.previous.is_none() {
                match m.layers.open(layer - 1) {
                    Ok(map) => m.previous = Some(LayerView::Mapped(map)),
                    Err(e) => {
                        m.failed = Some(e);
                        continue;
                    }
                }
            }
            active.push(i);
        }
        let width = max_width(threads);
        for chunk in active.chunks(width) {
            let in_memory = layers_in_memory(config, chunk.len(), total * 32);
            let mut ids = Vec::with_capacity(chunk.len());
            let mut currents = Vec::with_capacity(chunk.len());
            for &i in chunk {
                // Batch threads read the layers at random themselves: huge pages save TLB misses.
                match Current::create(members[i].layers.path(layer), total, in_memory, chunk.len() > 1) {
                    Ok(c) => {
                        ids.push(i);
                        currents.push(c);
                    }
                    Err(e) => members[i].failed = Some(e),
                }
            }
            if ids.is_empty() {
                continue;
            }
            info!(sectors = ids.len(), in_memory, "labeling");
            let mut report =
                |done| progress(Progress { phase: ProgressPhase::Labeling, layer: Some(layer), done, total });
            let members_view: &[Member<'_>] = members;
            let previous: Vec<Option<&[[u8; 32]]>> =
                ids.iter().map(|&i| members_view[i].previous.as_ref().map(LayerView::nodes)).collect();
            let paths: Vec<PathBuf> = ids.iter().map(|&i| members_view[i].layers.path(layer)).collect();
            let mut followers = Vec::with_capacity(ids.len());
            let mut outs = Vec::with_capacity(ids.len());
            for c in currents.iter_mut() {
                let (out, follower) = c.split();
                outs.push(out);
                followers.push(follower);
            }
            if ids.len() == 1 {
                let (follower, path) = (&mut followers[0], &paths[0]);
                let mut follow = |labels: &[[u8; 32]]| follower.follow(labels, path);
                label_layer_par(
                    cache,
                    &members_view[ids[0]].replica_id,
                    layer,
                    previous[0],
                    outs.pop().expect("one layer"),
                    config,
                    cancel,
                    &mut report,
                    &mut follow,
                )?;
            } else {
                let mut follows: Vec<Box<Follow<'_>>> = followers
                    .iter_mut()
                    .zip(&paths)
                    .map(|(f, path)| {
                        Box::new(move |labels: &[[u8; 32]]| f.follow(labels, path)) as Box<Follow<'_>>
                    })
                    .collect();
                let mut batch: Vec<BatchSector<'_, '_>> = outs
                    .into_iter()
                    .zip(follows.iter_mut())
                    .zip(&ids)
                    .zip(&previous)
                    .map(|(((out, follow), &i), previous)| BatchSector {
                        replica_id: members_view[i].replica_id,
                        previous: *previous,
                        out,
                        follow: &mut **follow,
                    })
                    .collect();
                label_layer_batch(cache, config.kernel(), layer, &mut batch, threads, cancel, &mut report)?;
            }
            let digests: Vec<String> = followers.into_iter().map(LayerFollower::finish).collect();
            drop(previous);
            for ((i, current), sha256) in ids.into_iter().zip(currents).zip(digests) {
                match current.finish() {
                    Ok(view) => {
                        members[i].previous = Some(view);
                        members[i].outcome.labeled.push(layer);
                        // A closed channel means the syncer stopped early; its error is reported then.
                        let _ = to_syncer.send(Finished { member: i, layer, sha256 });
                    }
                    Err(e) => members[i].failed = Some(e),
                }
            }
        }
    }
    Ok(())
}

/// The syncing half of [`generate_batch`], on its own thread: each finished layer is
/// synced, then recorded, in the order the layers were finished.
fn sync_layers(
    sectors: &[(&Layers, ReplicaId)],
    mut records: Vec<Option<LayersRecord>>,
    finished: mpsc::Receiver<Finished>,
) -> Vec<Option<Error>> {
    let mut errors: Vec<Option<Error>> = sectors.iter().map(|_| None).collect();
    for done in finished {
        if errors[done.member].is_some() {
            continue;
        }
        let layers = sectors[done.member].0;
        let Some(record) = records[done.member].as_mut() else { continue };
        let result = durable::sync_file(&layers.path(done.layer)).and_then(|()| {
            record.layers.push(LayerRecord { layer: done.layer, sha256: done.sha256 });
            let json = serde_json::to_vec_pretty(&record).expect("record serialises");
            durable::write_file(&layers.record_path(), &json)
        });
        if let Err(e) = result {
            warn!(layer = done.layer, dir = %layers.dir.display(), "layer not recorded: {e}");
            errors[done.member] = Some(e);
        }
    }
    errors
}
