//! Labeling: reference vectors, every labeler (single-sector and batch, SHA-NI
//! and portable kernels) against the reference labeler, and resuming an
//! interrupted PC1, for one sector and for a batch.

mod common;

use proofs::ids::ReplicaId;
use proofs::sdr::graph::Graph;
use proofs::sdr::kernel::{Backend, Kernel};
use proofs::sdr::label::label_layer;
use proofs::sdr::label_batch::{label_layer_batch, BatchSector};
use proofs::sdr::label_par::{label_layer_par, LabelingConfig};
use proofs::sdr::layers::{generate_batch, Layers};
use proofs::sdr::parent_cache::ParentCache;
use proofs::{Error, PorepId};
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// The single-sector configurations every labeler test runs through.
fn configs() -> Vec<LabelingConfig> {
    vec![
        LabelingConfig::reference(),
        LabelingConfig { producers: 3, lookahead: 64, ..LabelingConfig::default() },
        LabelingConfig {
            producers: 2,
            lookahead: 1,
            backend: Some(Backend::Portable),
            ..LabelingConfig::default()
        },
        LabelingConfig { producers: 1, lookahead: 16, ..LabelingConfig::default() },
        LabelingConfig::default(),
    ]
}

/// The kernels of this machine: the portable one, and SHA-NI where the CPU has it.
fn kernels() -> Vec<Kernel> {
    let mut k = vec![Kernel::portable()];
    if Kernel::detect() != Kernel::portable() {
        k.push(Kernel::detect());
    }
    k
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
        let mut followed = Vec::new();
        label_layer_par(cache, rid, layer, prev, &mut buf, config, &cancel, &mut |_| {}, &mut |labels| {
            followed.extend_from_slice(labels);
            Ok(())
        })
        .unwrap();
        assert_eq!(followed, buf, "follow sees every label once, in order ({config:?})");
        out.push(buf);
    }
    out
}

/// All layers of several sectors through the batch labeler.
fn all_layers_batch(
    cache: &ParentCache,
    rids: &[ReplicaId],
    layers: u32,
    kernel: Kernel,
    threads: usize,
) -> Vec<Vec<Vec<[u8; 32]>>> {
    let n = cache.num_nodes() as usize;
    let cancel = AtomicBool::new(false);
    let mut out: Vec<Vec<Vec<[u8; 32]>>> = rids.iter().map(|_| Vec::new()).collect();
    for layer in 1..=layers {
        let mut bufs: Vec<Vec<[u8; 32]>> = rids.iter().map(|_| vec![[0u8; 32]; n]).collect();
        let mut followed: Vec<Vec<[u8; 32]>> = rids.iter().map(|_| Vec::new()).collect();
        {
            let mut follows: Vec<Box<proofs::sdr::label_par::Follow<'_>>> = followed
                .iter_mut()
                .map(|f| {
                    Box::new(move |labels: &[[u8; 32]]| {
                        f.extend_from_slice(labels);
                        Ok(())
                    }) as Box<proofs::sdr::label_par::Follow<'_>>
                })
                .collect();
            let mut batch: Vec<BatchSector<'_, '_>> = bufs
                .iter_mut()
                .zip(follows.iter_mut())
                .enumerate()
                .map(|(s, (buf, follow))| BatchSector {
                    replica_id: rids[s],
                    previous: out[s].last().map(|v| v.as_slice()),
                    out: buf,
                    follow: &mut **follow,
                })
                .collect();
            label_layer_batch(cache, kernel, layer, &mut batch, threads, &cancel, &mut |_| {}).unwrap();
        }
        for (s, buf) in bufs.into_iter().enumerate() {
            assert_eq!(followed[s], buf, "batch follow sees every label once, in order");
            out[s].push(buf);
        }
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
        for kernel in kernels() {
            let batch = all_layers_batch(&cache, &[ReplicaId([9; 32]), ReplicaId([9; 32])], 11, kernel, 1);
            for sector in &batch {
                assert_eq!(hex::encode(sector[10][n as usize - 1]), expected, "N={n} batch {kernel:?}");
            }
        }
    }
}

fn random_replica_id(seed: [u8; 32]) -> ReplicaId {
    let mut rid = seed;
    proofs::ids::trim(&mut rid);
    ReplicaId(rid)
}

/// Both layers by the reference labeler.
fn reference_layers(cache: &ParentCache, rid: &ReplicaId) -> [Vec<[u8; 32]>; 2] {
    let n = cache.num_nodes() as usize;
    let mut l1 = vec![[0u8; 32]; n];
    label_layer(cache, rid, 1, None, &mut l1);
    let mut l2 = vec![[0u8; 32]; n];
    label_layer(cache, rid, 2, Some(&l1), &mut l2);
    [l1, l2]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Every single-sector configuration gives the reference labeler's bytes.
    #[test]
    fn parallel_equals_reference(seed in any::<[u8; 32]>(), log_n in 6u32..11) {
        let rid = random_replica_id(seed);
        let dir = tempfile::tempdir().unwrap();
        let graph = Graph::new(1 << log_n, proofs::shape::porep_id(5));
        let cache = ParentCache::open_or_build(dir.path(), &graph).unwrap();
        let [l1, l2] = reference_layers(&cache, &rid);
        for config in configs() {
            let got = all_layers(&cache, &rid, 2, &config);
            prop_assert_eq!(&got[0], &l1);
            prop_assert_eq!(&got[1], &l2);
        }
    }

    /// Batches of 1 to 4 sectors with different replica ids, on 1 to 3 threads and on
    /// every kernel, give each sector the reference labeler's bytes, both layers.
    #[test]
    fn batch_equals_reference(
        seeds in proptest::collection::vec(any::<[u8; 32]>(), 1..=4),
        log_n in 6u32..11,
        threads in 1usize..=3,
    ) {
        let rids: Vec<ReplicaId> = seeds.into_iter().map(random_replica_id).collect();
        let dir = tempfile::tempdir().unwrap();
        let graph = Graph::new(1 << log_n, proofs::shape::porep_id(5));
        let cache = ParentCache::open_or_build(dir.path(), &graph).unwrap();
        let want: Vec<_> = rids.iter().map(|rid| reference_layers(&cache, rid)).collect();
        for kernel in kernels() {
            let got = all_layers_batch(&cache, &rids, 2, kernel, threads);
            for (s, layers) in got.iter().enumerate() {
                prop_assert_eq!(&layers[0], &want[s][0], "sector {} layer 1 {:?}", s, kernel);
                prop_assert_eq!(&layers[1], &want[s][1], "sector {} layer 2 {:?}", s, kernel);
            }
        }
    }
}

/// The widest batch one call takes: 8 streams on one thread.
#[test]
fn eight_streams_on_one_thread_equal_reference() {
    let dir = tempfile::tempdir().unwrap();
    let graph = Graph::new(256, proofs::shape::porep_id(5));
    let cache = ParentCache::open_or_build(dir.path(), &graph).unwrap();
    let rids: Vec<ReplicaId> = (0..8u8).map(|i| random_replica_id([i * 29 + 1; 32])).collect();
    for kernel in kernels() {
        let got = all_layers_batch(&cache, &rids, 2, kernel, 1);
        for (s, rid) in rids.iter().enumerate() {
            assert_eq!(got[s].as_slice(), reference_layers(&cache, rid).as_slice(), "sector {s} {kernel:?}");
        }
    }
}

fn layer_files(layers: &Layers, n: u32) -> Vec<Vec<u8>> {
    (1..=n).map(|l| std::fs::read(layers.path(l)).unwrap()).collect()
}

/// Labeling into files, both ways: layers in memory with the files written from
/// them, and layers labeled straight into mapped files.
fn file_modes() -> [LabelingConfig; 2] {
    [
        LabelingConfig { in_memory: Some(true), ..LabelingConfig::default() },
        LabelingConfig { in_memory: Some(false), batch_threads: 1, ..LabelingConfig::default() },
    ]
}

/// A labeling run stopped during layer 2 keeps layer 1 (byte for byte, not
/// relabeled) and finishes layer 2 on the next run.
#[test]
fn interrupted_labeling_resumes_from_first_unfinished_layer() {
    for config in file_modes() {
        interrupted_labeling_resumes(config);
    }
}

fn interrupted_labeling_resumes(config: LabelingConfig) {
    let dir = tempfile::tempdir().unwrap();
    let shape = proofs::SectorSize::KiB2.shape();
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let cache = ParentCache::open_or_build(&common::parent_cache_dir(), &graph).unwrap();
    let rid = ReplicaId([3; 32]);
    let layers = Layers::new(dir.path(), shape.num_nodes, shape.layers);
    let cancel = AtomicBool::new(false);
    // A 2KiB layer reports only at its end, so stop on layer 1's report: layer 2 then
    // fails with Cancelled at its start.
    let first = LabelingConfig { producers: 0, ..config };
    let err = layers
        .generate(&cache, &rid, &first, &cancel, &mut |p| {
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
    let outcome = layers.generate(&cache, &rid, &config, &cancel, &mut |_| {}).unwrap();
    assert_eq!(outcome.reused, vec![1]);
    assert_eq!(outcome.labeled, vec![2]);
    assert_eq!(std::fs::metadata(layers.path(1)).unwrap().modified().unwrap(), layer1_before);

    // And the result is what an uninterrupted reference run gives.
    let expected = all_layers(&cache, &rid, 2, &LabelingConfig::reference());
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(std::fs::read(layers.path(i as u32 + 1)).unwrap(), want.as_flattened());
    }
}

/// A batch stopped during layer 2 resumes sector by sector: a sector whose
/// layers were all recorded is kept whole, the others keep layer 1 and label
/// layer 2 together; every sector ends with the reference's bytes.
#[test]
fn interrupted_batch_resumes_per_sector() {
    for config in file_modes() {
        interrupted_batch_resumes(config);
    }
}

fn interrupted_batch_resumes(config: LabelingConfig) {
    let tmp = tempfile::tempdir().unwrap();
    let shape = proofs::SectorSize::KiB2.shape();
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let cache = ParentCache::open_or_build(&common::parent_cache_dir(), &graph).unwrap();
    let rids: Vec<ReplicaId> = (1..=3u8).map(|i| random_replica_id([i; 32])).collect();
    let dirs: Vec<_> = (0..3).map(|i| tmp.path().join(format!("s{i}"))).collect();
    dirs.iter().for_each(|d| std::fs::create_dir_all(d).unwrap());
    let layers: Vec<Layers> = dirs.iter().map(|d| Layers::new(d, shape.num_nodes, shape.layers)).collect();
    let cancel = AtomicBool::new(false);

    // Sector 2 is finished on its own first; then the batch of all three is stopped in layer 2.
    layers[2].generate(&cache, &rids[2], &config, &cancel, &mut |_| {}).unwrap();
    let members: Vec<(&Layers, ReplicaId)> = layers.iter().zip(rids.iter().copied()).collect();
    let err = generate_batch(&cache, &members, &config, &cancel, &mut |p| {
        if p.layer == Some(1) {
            cancel.store(true, Ordering::Relaxed);
        }
    })
    .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    for l in &layers[..2] {
        assert_eq!(l.record().unwrap().unwrap().layers.len(), 1, "layer 1 recorded before the stop");
    }

    cancel.store(false, Ordering::Relaxed);
    let outcomes = generate_batch(&cache, &members, &config, &cancel, &mut |_| {}).unwrap();
    let outcomes: Vec<_> = outcomes.into_iter().map(Result::unwrap).collect();
    assert_eq!((outcomes[0].reused.clone(), outcomes[0].labeled.clone()), (vec![1], vec![2]));
    assert_eq!((outcomes[1].reused.clone(), outcomes[1].labeled.clone()), (vec![1], vec![2]));
    assert_eq!((outcomes[2].reused.clone(), outcomes[2].labeled.clone()), (vec![1, 2], vec![]));
    for (l, rid) in layers.iter().zip(&rids) {
        let want: Vec<Vec<u8>> =
            reference_layers(&cache, rid).iter().map(|v| v.as_flattened().to_vec()).collect();
        assert_eq!(layer_files(l, 2), want);
        assert_eq!(l.record().unwrap().unwrap().layers.len(), 2);
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

/// In a batch, a sector with a damaged finished layer gets its error and is left
/// alone; the other sectors are labeled.
#[test]
fn damaged_sector_drops_out_of_its_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let shape = proofs::SectorSize::KiB2.shape();
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let cache = ParentCache::open_or_build(&common::parent_cache_dir(), &graph).unwrap();
    let rids = [ReplicaId([5; 32]), ReplicaId([6; 32])];
    let dirs = [tmp.path().join("a"), tmp.path().join("b")];
    dirs.iter().for_each(|d| std::fs::create_dir_all(d).unwrap());
    let layers: Vec<Layers> = dirs.iter().map(|d| Layers::new(d, shape.num_nodes, shape.layers)).collect();
    let cancel = AtomicBool::new(false);
    let config = LabelingConfig::default();
    layers[0].generate(&cache, &rids[0], &config, &cancel, &mut |_| {}).unwrap();
    let damaged = {
        let mut bytes = std::fs::read(layers[0].path(2)).unwrap();
        bytes[7] ^= 0x10;
        std::fs::write(layers[0].path(2), &bytes).unwrap();
        bytes
    };
    let members: Vec<(&Layers, ReplicaId)> = layers.iter().zip(rids).collect();
    let results = generate_batch(&cache, &members, &config, &cancel, &mut |_| {}).unwrap();
    assert!(matches!(&results[0], Err(Error::LayerCorrupt { layer: 2, .. })), "{:?}", results[0]);
    assert_eq!(std::fs::read(layers[0].path(2)).unwrap(), damaged);
    let ok = results[1].as_ref().unwrap();
    assert_eq!(ok.labeled, vec![1, 2]);
    let want: Vec<Vec<u8>> =
        reference_layers(&cache, &rids[1]).iter().map(|v| v.as_flattened().to_vec()).collect();
    assert_eq!(layer_files(&layers[1], 2), want);
}
