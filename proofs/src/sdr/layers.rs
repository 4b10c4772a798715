//! PC1 labeling of all layers into memory-mapped layer files, resumable.
//!
//! Each finished layer is synced to disk and then recorded, with its SHA-256,
//! in `pc1-layers.json` (written atomically). A re-run after a crash or kill
//! keeps every recorded layer whose file still matches its record and labels
//! from the first unrecorded one. A recorded layer whose file was truncated or
//! altered is an error naming the file: kiln never labels on top of a layer it
//! cannot trust, and never silently discards one either.

use super::label_par::{label_layer_par, LabelingConfig};
use super::parent_cache::ParentCache;
use crate::durable;
use crate::error::{Error, Result};
use crate::ids::ReplicaId;
use crate::merkle::store::{ReadMap, WriteMap};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use tracing::{debug, info, info_span};

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
    /// The phase ("labeling", "tree_c", ...).
    pub phase: &'static str,
    /// The layer, for labeling.
    pub layer: Option<u32>,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
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

    /// The completion record, if any.
    pub fn record(&self) -> Result<Option<LayersRecord>> {
        read_record(&self.dir.join(RECORD_FILE))
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
        let record_path = self.dir.join(RECORD_FILE);
        let fresh =
            LayersRecord { version: 1, replica_id: *replica_id, num_nodes: self.num_nodes, layers: vec![] };
        let mut record = match read_record(&record_path)? {
            Some(r) if r.replica_id == *replica_id && r.num_nodes == self.num_nodes => r,
            Some(_) => {
                info!("layers on disk belong to another replica; labeling afresh");
                fresh
            }
            None => fresh,
        };
        let mut outcome = LabelingOutcome::default();
        for layer in 1..=self.layers {
            let _span = info_span!("layer", layer).entered();
            if let Some(done) = record.layers.iter().find(|r| r.layer == layer) {
                let map = self.open(layer).map_err(|e| match e {
                    Error::FileLength { path, expected, found } => Error::LayerCorrupt {
                        path,
                        layer,
                        reason: format!("{found} bytes, expected {expected}"),
                    },
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
                debug!("layer already labeled, keeping it");
                outcome.reused.push(layer);
                continue;
            }
            // Everything from here on is relabeled; drop stale records of later layers.
            record.layers.retain(|r| r.layer < layer);

            let previous = if layer > 1 { Some(self.open(layer - 1)?) } else { None };
            let mut out = WriteMap::create(&self.path(layer), self.num_nodes * 32)?;
            info!("labeling");
            let total = self.num_nodes;
            label_layer_par(
                cache,
                replica_id,
                layer,
                previous.as_ref().map(|m| m.nodes()),
                out.nodes_mut(),
                config,
                cancel,
                &mut |done| progress(Progress { phase: "labeling", layer: Some(layer), done, total }),
            )?;
            out.sync()?;
            record.layers.push(LayerRecord { layer, sha256: digest(out.bytes()) });
            drop(out);
            let json = serde_json::to_vec_pretty(&record).expect("record serialises");
            durable::write_file(&record_path, &json)?;
            outcome.labeled.push(layer);
        }
        Ok(outcome)
    }
}
