//! SDR labeling: the label kernel (one stream and interleaved streams, SHA-NI
//! and portable), and one whole 8MiB layer with the reference labeler, the
//! single-sector labeler and the batch labeler.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use proofs::ids::ReplicaId;
use proofs::sdr::graph::Graph;
use proofs::sdr::kernel::{Kernel, LabelJob};
use proofs::sdr::label_batch::{label_layer_batch, BatchSector};
use proofs::sdr::label_par::{label_layer_par, Follow, LabelingConfig};
use proofs::sdr::parent_cache::ParentCache;
use proofs::SectorSize;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::AtomicBool;

fn kernels() -> Vec<(&'static str, Kernel)> {
    let mut k = vec![("portable", Kernel::portable())];
    if Kernel::detect() != Kernel::portable() {
        k.push(("sha-ni", Kernel::detect()));
    }
    k
}

/// One label's 19 blocks after the header, as `N` interleaved streams.
fn bench_streams<const N: usize>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    kernel: Kernel,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(N as u64);
    let parents: Vec<[[u8; 32]; 14]> = (0..N)
        .map(|_| {
            std::array::from_fn(|_| {
                let mut p = [0u8; 32];
                rng.fill_bytes(&mut p);
                p
            })
        })
        .collect();
    let rid = ReplicaId([9; 32]);
    let headers = kernel.header_states::<N>([&rid; N], 2, 12345);
    g.throughput(Throughput::Bytes(19 * 64 * N as u64));
    g.bench_function(format!("label_kernel/{name}/x{N}"), |b| {
        b.iter(|| {
            kernel.labels::<N>(
                std::array::from_fn(|s| LabelJob {
                    header: &headers[s],
                    parents: std::hint::black_box(&parents[s]),
                }),
                2,
            )
        })
    });
}

fn label_kernel(c: &mut Criterion) {
    let mut g = c.benchmark_group("sdr");
    for (name, kernel) in kernels() {
        bench_streams::<1>(&mut g, name, kernel);
        if kernel != Kernel::portable() {
            bench_streams::<2>(&mut g, name, kernel);
            bench_streams::<4>(&mut g, name, kernel);
        }
    }
    g.finish();
}

fn layer_8mib(c: &mut Criterion) {
    let shape = SectorSize::MiB8.shape();
    let tmp = tempfile::tempdir().expect("temp dir");
    let graph = Graph::new(shape.num_nodes, shape.porep_id);
    let cache = ParentCache::open_or_build(tmp.path(), &graph).expect("parent cache");
    let n = shape.num_nodes as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let layer1: Vec<Vec<[u8; 32]>> = (0..4)
        .map(|_| {
            let mut l = vec![[0u8; 32]; n];
            l.iter_mut().for_each(|l| {
                rng.fill_bytes(l);
                l[31] &= 0x3f;
            });
            l
        })
        .collect();
    let rid = ReplicaId([9; 32]);
    let cancel = AtomicBool::new(false);

    let mut g = c.benchmark_group("sdr");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(shape.size_bytes));
    for (name, config) in [
        ("layer_8mib/reference", LabelingConfig::reference()),
        ("layer_8mib/single_sector", LabelingConfig::default()),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || vec![[0u8; 32]; n],
                |out| {
                    label_layer_par(
                        &cache,
                        &rid,
                        2,
                        Some(&layer1[0]),
                        out,
                        &config,
                        &cancel,
                        &mut |_| {},
                        &mut |_| Ok(()),
                    )
                },
                BatchSize::LargeInput,
            )
        });
    }
    // Throughput per sector: the time for `width` sectors, reported per sector's bytes.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for width in [2usize, 4] {
        g.throughput(Throughput::Bytes(shape.size_bytes * width as u64));
        g.bench_function(format!("layer_8mib/batch_x{width}"), |b| {
            b.iter_batched_ref(
                || vec![vec![[0u8; 32]; n]; width],
                |outs| {
                    let mut follows: Vec<Box<Follow<'_>>> =
                        (0..width).map(|_| Box::new(|_: &[[u8; 32]]| Ok(())) as Box<Follow<'_>>).collect();
                    let mut batch: Vec<BatchSector<'_, '_>> = outs
                        .iter_mut()
                        .zip(follows.iter_mut())
                        .enumerate()
                        .map(|(s, (out, follow))| BatchSector {
                            replica_id: ReplicaId([s as u8 + 1; 32]),
                            previous: Some(&layer1[s]),
                            out,
                            follow: &mut **follow,
                        })
                        .collect();
                    label_layer_batch(&cache, Kernel::detect(), 2, &mut batch, threads, &cancel, &mut |_| {})
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, label_kernel, layer_8mib);
criterion_main!(benches);
