//! SDR labeling: the per-node kernel and one whole 8MiB layer, with the
//! reference labeler and the multi-threaded one.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use proofs::ids::ReplicaId;
use proofs::sdr::graph::Graph;
use proofs::sdr::label::label_node;
use proofs::sdr::label_par::{label_layer_par, LabelingConfig};
use proofs::sdr::parent_cache::ParentCache;
use proofs::SectorSize;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::AtomicBool;

fn label_node_kernel(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut parents = [[0u8; 32]; 14];
    parents.iter_mut().for_each(|p| rng.fill_bytes(p));
    let rid = ReplicaId([9; 32]);
    let mut g = c.benchmark_group("sdr");
    // 20 SHA-256 compressions of 64 bytes per label.
    g.throughput(Throughput::Bytes(20 * 64));
    g.bench_function("label_node", |b| b.iter(|| label_node(&rid, 2, std::hint::black_box(12345), &parents)));
    g.finish();
}

fn layer_8mib(c: &mut Criterion) {
    let shape = SectorSize::MiB8.shape();
    let tmp = tempfile::tempdir().expect("temp dir");
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let cache = ParentCache::open_or_build(tmp.path(), &graph).expect("parent cache");
    let n = shape.num_nodes as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut layer1 = vec![[0u8; 32]; n];
    layer1.iter_mut().for_each(|l| {
        rng.fill_bytes(l);
        l[31] &= 0x3f;
    });
    let rid = ReplicaId([9; 32]);
    let cancel = AtomicBool::new(false);

    let mut g = c.benchmark_group("sdr");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(shape.size_bytes));
    for (name, config) in [
        ("layer_8mib/reference", LabelingConfig::reference()),
        ("layer_8mib/parallel", LabelingConfig::default()),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || vec![[0u8; 32]; n],
                |out| label_layer_par(&cache, &rid, 2, Some(&layer1), out, &config, &cancel, &mut |_| {}),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, label_node_kernel, layer_8mib);
criterion_main!(benches);
