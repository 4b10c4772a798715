//! PC2 trees at 8MiB: tree_c (column hashes + arity-8 tree) and tree_r_last,
//! built from a real PC1 output through the production functions.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kiln_benches::pc1_sector;
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
        b.iter(|| pc2::build_tree_c(&maps, &shape, &cache_dir, &cancel, &mut |_| {}).expect("tree_c"))
    });
    g.bench_function("tree_r_last_8mib", |b| {
        b.iter(|| {
            pc2::build_tree_r_last(&dir.sealed_path(), &shape, &cache_dir, &cancel, &mut |_| {})
                .expect("tree_r_last")
        })
    });
    g.finish();
}

criterion_group!(benches, trees_8mib);
criterion_main!(benches);
