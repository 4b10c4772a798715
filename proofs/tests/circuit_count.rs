//! The circuit's size equals the reference's (circuit.md §6): the same
//! constraint and public-input counts are the first check that the R1CS is the
//! one published parameters are made for.

use bellpepper_core::Circuit;
use proofs::circuit::check_cs::CheckingCs;
use proofs::circuit::SdrCircuit;
use proofs::SectorSize;

fn count(size: SectorSize) -> (usize, usize) {
    let mut cs = CheckingCs::new(true);
    SdrCircuit::blank(&size.shape()).synthesize(&mut cs).expect("blank synthesis");
    (cs.num_constraints(), cs.num_inputs())
}

#[test]
fn constraint_count_2kib_matches_reference() {
    assert_eq!(count(SectorSize::KiB2), (2_687_921, 40));
}

#[test]
fn constraint_count_8mib_matches_reference() {
    assert_eq!(count(SectorSize::MiB8), (3_844_929, 40));
}

fn count_post(proof: proofs::post::PostProof) -> (usize, usize) {
    let mut cs = CheckingCs::new(true);
    proofs::circuit::PostCircuit::blank(&proof).synthesize(&mut cs).expect("blank synthesis");
    (cs.num_constraints(), cs.num_inputs())
}

/// post.md §6: Winning 66 slots × 1 challenge, Window 2 slots × 10 challenges.
#[test]
fn post_constraint_counts_match_reference() {
    use proofs::post::PostProof;
    for (size, winning, window) in [(SectorSize::KiB2, 90_750, 21_866), (SectorSize::MiB8, 230_670, 64_266)] {
        assert_eq!(count_post(PostProof::winning(size)), (winning, 1 + 66 * 2), "{size} Winning");
        assert_eq!(count_post(PostProof::window(size)), (window, 1 + 2 * 11), "{size} Window");
    }
}
