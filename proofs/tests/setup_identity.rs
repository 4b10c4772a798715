//! The always-on check that kiln's PoRep circuit is the reference's
//! constraint system: kiln's setup of the 2KiB circuit, drawn with the
//! reference's RNG and TEST_SEED, has the digests of the reference's test
//! parameters (`shared/vectors/groth_params_2KiB.json`, made by the
//! reference's `paramcache`). A changed constraint, variable or order changes
//! every point of the file. ~80 s in the test profile, nothing written to disk.

mod common;

use blake2::{Blake2b512, Digest};
use proofs::circuit::SdrCircuit;
use proofs::snark::params::REFERENCE_TEST_SEED;
use proofs::snark::setup;
use proofs::SectorSize;
use rand_core::SeedableRng;
use rand_xorshift::XorShiftRng;

/// BLAKE2b-512 of what `write` writes, first 32 hex characters (the
/// reference's parameter digest).
fn digest(write: impl FnOnce(&mut Blake2b512) -> std::io::Result<()>) -> String {
    let mut h = Blake2b512::new();
    write(&mut h).unwrap();
    hex::encode(h.finalize())[..32].to_string()
}

#[test]
fn the_2kib_setup_drawn_as_the_reference_draws_it_equals_the_references() {
    let v = common::vector("groth_params_2KiB.json");
    let want = &v["sizes"]["2KiB"];
    let circuit = SdrCircuit::blank(&SectorSize::KiB2.shape());
    let params =
        setup::generate_random_parameters(circuit, &mut XorShiftRng::from_seed(REFERENCE_TEST_SEED)).unwrap();
    assert_eq!(digest(|h| params.vk.write(h)), want["vk_blake2b_trunc_hex32"].as_str().unwrap());
    assert_eq!(digest(|h| params.write(h)), want["params_blake2b_trunc_hex32"].as_str().unwrap());
}
