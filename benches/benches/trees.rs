//! PC2 trees at 8MiB: tree_c (column hashes + arity-8 tree) and tree_r_last,
//! built from a real PC1 output through the production functions; and
//! Poseidon itself, 4,096 preimages per call, the run-time choice
//! (`hash_many`: IFMA where the CPU has it) against neptune one at a time.

use blstrs::Scalar as Fr;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kiln_benches::pc1_sector;
use proofs::merkle::poseidon_tree::TreeHashing;
use proofs::poseidon::{hash_many, hash_many_portable, vectorized};
use proofs::sdr::label_par::LabelingConfig;
use proofs::sdr::layers::Layers;
use proofs::seal::pc2;
use proofs::SectorSize;
use std::sync::atomic::AtomicBool;

fn trees_8mib(c: &mut Criterion) {
    let size = SectorSize::MiB8;
    let shape = size.shape();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = pc1_sector(tmp.path(), size, LabelingConfig::default());
    let cancel = AtomicBool::new(false);
    pc2::run(&dir, &cancel, &mut |_| {}).expect("PC2 of the bench sector");
    let layers = Layers::new(&dir.cache_dir(), shape.num_nodes, shape.layers);
    let cache_dir = dir.cache_dir();

    let mut g = c.benchmark_group("merkle");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(shape.size_bytes));
    g.bench_function("tree_c_8mib", |b| {
        let maps: Vec<_> = (1..=shape.layers).map(|l| layers.open(l).expect("layer")).collect();
        b.iter(|| {
            pc2::build_tree_c(&mut TreeHashing::Cpu, &maps, &shape, &cache_dir, &cancel, &mut |_| {})
                .expect("tree_c")
        })
    });
    g.bench_function("tree_r_last_8mib", |b| {
        b.iter(|| {
            pc2::build_tree_r_last(
                &mut TreeHashing::Cpu,
                &dir.sealed_path(),
                &shape,
                &cache_dir,
                &cancel,
                &mut |_| {},
            )
            .expect("tree_r_last")
        })
    });
    g.finish();
}

fn poseidon(c: &mut Criterion) {
    const COUNT: usize = 4096;
    let mut g = c.benchmark_group("poseidon");
    g.throughput(Throughput::Elements(COUNT as u64));
    for arity in [2usize, 8, 11] {
        let inputs: Vec<Fr> = (0..(COUNT * arity) as u64).map(Fr::from).collect();
        let mut out = vec![Fr::from(0u64); COUNT];
        let chosen = if vectorized(arity) { "ifma" } else { "portable" };
        g.bench_function(format!("arity{arity}/{chosen}"), |b| {
            b.iter(|| hash_many(arity, &inputs, &mut out))
        });
        g.bench_function(format!("arity{arity}/neptune"), |b| {
            b.iter(|| hash_many_portable(arity, &inputs, &mut out))
        });
    }
    g.finish();
}

criterion_group!(benches, trees_8mib, poseidon);
criterion_main!(benches);
