//! C1 (vanilla proofs) and C2 (Groth16) at 2KiB; 8MiB with
//! `--features bench-8mib` (its test setup is generated on first run, which
//! takes a while). Parameters come from the shared parameter directory.
//!
//! Run: `cargo bench -p kiln-benches --bench commit`.

use criterion::{criterion_group, criterion_main, Criterion};
use kiln_benches::pc1_sector;
use proofs::sdr::label_par::LabelingConfig;
use proofs::seal::{c1, pc2};
use proofs::snark::params::{GrothParams, SetupSeed};
use proofs::snark::{prove, verify_seal, SealStatement};
use proofs::{Randomness, SectorSize};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn commit(c: &mut Criterion, size: SectorSize) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = pc1_sector(tmp.path(), size, LabelingConfig::default());
    pc2::run(&dir, &AtomicBool::new(false), &mut |_| {}).expect("PC2 of the bench sector");
    let seed = Randomness([3; 32]);
    let params = GrothParams::porep(sealing::dirs::param_dir(), size);
    params.generate_test_setup(SetupSeed::KILN).expect("test setup");
    let mapped = params.load_proving().expect("parameters");
    let vk = params.seal_verifying_key().expect("verifying key");

    let mut g = c.benchmark_group("commit");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function(format!("c1_{size}"), |b| b.iter(|| c1::run(&dir, &seed).expect("C1")));
    let out = c1::run(&dir, &seed).expect("C1");
    g.bench_function(format!("c2_{size}"), |b| b.iter(|| prove(&out, &mapped).expect("C2")));
    let proof = prove(&out, &mapped).expect("C2");
    let statement = SealStatement::of(&out);
    g.bench_function(format!("verify_{size}"), |b| {
        b.iter(|| assert!(verify_seal(&statement, &proof, &vk).expect("verify")))
    });
    g.finish();
}

fn commit_2kib(c: &mut Criterion) {
    commit(c, SectorSize::KiB2);
}

#[cfg(feature = "bench-8mib")]
fn commit_8mib(c: &mut Criterion) {
    commit(c, SectorSize::MiB8);
}

#[cfg(not(feature = "bench-8mib"))]
criterion_group!(benches, commit_2kib);
#[cfg(feature = "bench-8mib")]
criterion_group!(benches, commit_2kib, commit_8mib);
criterion_main!(benches);
