//! Labeling: reference vectors, every labeler configuration against the
//! reference, and resuming an interrupted PC1.

mod common;

use proofs::ids::ReplicaId;
use proofs::sdr::graph::Graph;
use proofs::sdr::label::label_layer;
use proofs::sdr::label_par::{label_layer_par, LabelingConfig};
use proofs::sdr::layers::Layers;
use proofs::sdr::parent_cache::ParentCache;
use proofs::{Error, PorepId};
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// The configurations every labeler test runs through.
fn configs() -> [LabelingConfig; 4] {
    [
        LabelingConfig::reference(),
        LabelingConfig { producers: 3, lookahead: 64 },
        LabelingConfig { producers: 2, lookahead: 1 },
        LabelingConfig { producers: 1, lookahead: 16 },
    ]
}

fn all_layers(
    cache: &ParentCache,
    rid: &ReplicaId,
    layers: u32,
    config: &LabelingConfig,
) -> Vec<Vec<[u8; 32]>> {
    let n = cache.num_nodes() as usize;
    let mut out: Vec<Vec<[u8; 32]>> = Vec::new();
    let cancel = AtomicBool::new(false);
    for layer in 1..=layers {
        let mut buf = vec![[0u8; 32]; n];
        let prev = out.last().map(|v| v.as_slice());
        label_layer_par(cache, rid, layer, prev, &mut buf, config, &cancel, &mut |_| {}).unwrap();
        out.push(buf);
    }
    out
}

/// rust-fil-proofs' `test_stacked_porep_generate_labels` vectors (porep-sdr.md §15.2):
/// replica id 32×0x09, porep id 32×0x7B, 11 layers, last label of layer 11.
#[test]
fn reference_label_vectors_11_layers() {
    let dir = tempfile::tempdir().unwrap();
    for (n, expected) in [
        (64u64, "cfef0db78bf3b3ab9f1169774d2e7a77bc9054499d954834b51ca7c788110206"),
        (128, "6d67c468cf81ab2289c1c9c72fa8777a232de4c1323dc0c6bd552ccc187c770f"),
    ] {
        let graph = Graph::new(n, PorepId([0x7b; 32]));
        let cache = ParentCache::open_or_build(dir.path(), &graph).unwrap();
        for config in configs() {
            let layers = all_layers(&cache, &ReplicaId([9; 32]), 11, &config);
            assert_eq!(hex::encode(layers[10][n as usize - 1]), expected, "N={n} {config:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Every parallel configuration gives the reference labeler's bytes.
    #[test]
    fn parallel_equals_reference(seed in any::<[u8; 32]>(), log_n in 6u32..11) {
        let mut rid = seed;
        proofs::ids::trim(&mut rid);
        let rid = ReplicaId(rid);
        let dir = tempfile::tempdir().unwrap();
        let graph = Graph::new(1 << log_n, proofs::shape::porep_id(5));
        let cache = ParentCache::open_or_build(dir.path(), &graph).unwrap();
        let n = 1usize << log_n;
        let mut l1 = vec![[0u8; 32]; n];
        label_layer(&cache, &rid, 1, None, &mut l1);
        let mut l2 = vec![[0u8; 32]; n];
        label_layer(&cache, &rid, 2, Some(&l1), &mut l2);
        for config in configs() {
            let got = all_layers(&cache, &rid, 2, &config);
            prop_assert_eq!(&got[0], &l1);
            prop_assert_eq!(&got[1], &l2);
        }
    }
}

/// A labeling run stopped during layer 2 keeps layer 1 (byte for byte, not
/// relabeled) and finishes layer 2 on the next run.
#[test]
fn interrupted_labeling_resumes_from_first_unfinished_layer() {
    let dir = tempfile::tempdir().unwrap();
    let shape = proofs::SectorSize::KiB2.shape();
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let cache = ParentCache::open_or_build(&common::parent_cache_dir(), &graph).unwrap();
    let rid = ReplicaId([3; 32]);
    let layers = Layers::new(dir.path(), shape.num_nodes, shape.layers);
    let cancel = AtomicBool::new(false);
    // Cancel as soon as layer 2 starts reporting; a 2KiB layer reports only at its end,
    // so label with a stop on layer 2's first report.
    let err = layers
        .generate(&cache, &rid, &LabelingConfig::reference(), &cancel, &mut |p| {
            if p.layer == Some(1) {
                cancel.store(true, Ordering::Relaxed);
            }
        })
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    let record = layers.record().unwrap().unwrap();
    assert_eq!(record.layers.len(), 1);
    let layer1_before = std::fs::metadata(layers.path(1)).unwrap().modified().unwrap();

    cancel.store(false, Ordering::Relaxed);
    let outcome = layers.generate(&cache, &rid, &LabelingConfig::default(), &cancel, &mut |_| {}).unwrap();
    assert_eq!(outcome.reused, vec![1]);
    assert_eq!(outcome.labeled, vec![2]);
    assert_eq!(std::fs::metadata(layers.path(1)).unwrap().modified().unwrap(), layer1_before);

    // And the result is what an uninterrupted reference run gives.
    let expected = all_layers(&cache, &rid, 2, &LabelingConfig::reference());
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(std::fs::read(layers.path(i as u32 + 1)).unwrap(), want.as_flattened());
    }
}

/// A finished layer that was truncated or altered afterwards is reported by name
/// and left as it is.
#[test]
fn damaged_finished_layer_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let shape = proofs::SectorSize::KiB2.shape();
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let cache = ParentCache::open_or_build(&common::parent_cache_dir(), &graph).unwrap();
    let rid = ReplicaId([4; 32]);
    let layers = Layers::new(dir.path(), shape.num_nodes, shape.layers);
    let cancel = AtomicBool::new(false);
    let label = || layers.generate(&cache, &rid, &LabelingConfig::default(), &cancel, &mut |_| {});
    label().unwrap();

    let path = layers.path(1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = label().unwrap_err();
    assert!(matches!(err, Error::LayerCorrupt { layer: 1, .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the damaged layer is left for inspection");

    std::fs::write(&path, &bytes[..1000]).unwrap();
    let err = label().unwrap_err();
    assert!(matches!(err, Error::LayerCorrupt { layer: 1, .. }), "{err}");
    assert!(err.to_string().contains("sc-02-data-layer-1.dat"), "{err}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1000);
}
