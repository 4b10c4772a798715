//! Kiln's Groth16 setup and prover against bellperson's, on a small circuit
//! that has what the SDR circuit has (bits, field elements, packed sums,
//! inputs used in B and not, variables absent from A or B): the same
//! parameter file for the same seeded RNG, the same proof bytes for the same
//! parameters and randomness; and clear errors for parameters of another
//! circuit.

use bellperson::gadgets::boolean::{AllocatedBit, Boolean};
use bellperson::gadgets::multieq::MultiEq;
use bellperson::gadgets::num::AllocatedNum;
use bellperson::gadgets::uint32::UInt32;
use bellperson::groth16::{self, MappedParameters, Parameters, Proof};
use bellperson::{Circuit, ConstraintSystem, SynthesisError};
use blstrs::{Bls12, Scalar as Fr};
use ff::Field;
use proofs::snark::key::ProvingKey;
use proofs::snark::{prover, setup};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

/// x³ + x + 5 = y with y public, a few 32-bit words mixed like SHA-256 does,
/// a field element split into bits, and a witness-only product.
#[derive(Clone)]
struct Mixed {
    x: Option<Fr>,
    words: Vec<Option<u32>>,
}

impl Circuit<Fr> for Mixed {
    fn synthesize<CS: ConstraintSystem<Fr>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        let x =
            AllocatedNum::alloc(cs.namespace(|| "x"), || self.x.ok_or(SynthesisError::AssignmentMissing))?;
        let x2 = x.square(cs.namespace(|| "x²"))?;
        let x3 = x2.mul(cs.namespace(|| "x³"), &x)?;
        let y = AllocatedNum::alloc_input(cs.namespace(|| "y"), || {
            let x = self.x.ok_or(SynthesisError::AssignmentMissing)?;
            Ok(x * x * x + x + Fr::from(5u64))
        })?;
        cs.enforce(
            || "x³ + x + 5 = y",
            |lc| lc + x3.get_variable() + x.get_variable() + (Fr::from(5u64), CS::one()),
            |lc| lc + CS::one(),
            |lc| lc + y.get_variable(),
        );
        // An input that only ever appears in A (density zero in B).
        let z = AllocatedNum::alloc_input(cs.namespace(|| "z"), || Ok(Fr::from(7u64)))?;
        let _unused_in_b = z.square(cs.namespace(|| "z²"))?;
        x.to_bits_le_strict(cs.namespace(|| "x bits"))?;
        let words = self
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| UInt32::alloc(cs.namespace(|| format!("word {i}")), *w))
            .collect::<Result<Vec<_>, _>>()?;
        let mut acc = words[0].clone();
        {
            let mut cs = MultiEq::new(cs.namespace(|| "sums"));
            for (i, w) in words.iter().enumerate().skip(1) {
                let rotated = acc.rotr(7).xor(cs.namespace(|| format!("xor {i}")), w)?;
                acc = UInt32::addmany(cs.namespace(|| format!("add {i}")), &[rotated, w.clone()])?;
            }
        }
        let bit = AllocatedBit::alloc(cs.namespace(|| "bit"), Some(true))?;
        Boolean::enforce_equal(cs.namespace(|| "bit is set"), &Boolean::from(bit), &Boolean::constant(true))?;
        Ok(())
    }
}

fn circuit(rng: &mut StdRng, words: usize) -> Mixed {
    Mixed { x: Some(Fr::random(&mut *rng)), words: (0..words).map(|_| Some(rng.gen())).collect() }
}

fn public_inputs(c: &Mixed) -> Vec<Fr> {
    let x = c.x.unwrap();
    vec![x * x * x + x + Fr::from(5u64), Fr::from(7u64)]
}

/// A setup written to `dir/name`, opened by kiln and by bellperson.
fn mapped_setup(dir: &Path, name: &str, blank: Mixed, seed: u64) -> (ProvingKey, MappedParameters<Bls12>) {
    let params: Parameters<Bls12> =
        groth16::generate_random_parameters(blank, &mut StdRng::seed_from_u64(seed)).unwrap();
    let path = dir.join(name);
    params.write(std::fs::File::create(&path).unwrap()).unwrap();
    (ProvingKey::open(&path).unwrap(), Parameters::build_mapped_parameters(path, false).unwrap())
}

fn bytes(p: &Proof<Bls12>) -> Vec<u8> {
    let mut out = Vec::new();
    p.write(&mut out).unwrap();
    out
}

fn file_bytes(p: &Parameters<Bls12>) -> Vec<u8> {
    let mut out = Vec::new();
    p.write(&mut out).unwrap();
    out
}

#[test]
fn kiln_setup_writes_bellpersons_file_for_the_same_seed() {
    for (seed, words) in [(5u64, 6usize), (6, 1)] {
        let blank = Mixed { x: None, words: vec![None; words] };
        let theirs: Parameters<Bls12> =
            groth16::generate_random_parameters(blank.clone(), &mut StdRng::seed_from_u64(seed)).unwrap();
        let ours = setup::generate_random_parameters(blank, &mut StdRng::seed_from_u64(seed)).unwrap();
        assert_eq!(file_bytes(&ours), file_bytes(&theirs), "seed {seed}");
        let mut vk = Vec::new();
        ours.vk.write(&mut vk).unwrap();
        let mut their_vk = Vec::new();
        theirs.vk.write(&mut their_vk).unwrap();
        assert_eq!(vk, their_vk);
    }
}

#[test]
fn kiln_proofs_equal_bellpersons_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let blank = Mixed { x: None, words: vec![None; 6] };
    let (params, theirs_params) = mapped_setup(dir.path(), "mixed.params", blank, 1);
    let pvk = groth16::prepare_verifying_key(&params.vk);
    let mut rng = StdRng::seed_from_u64(2);
    for round in 0..3 {
        let c = circuit(&mut rng, 6);
        let (r, s) = match round {
            0 => (Fr::ZERO, Fr::ZERO),
            _ => (Fr::random(&mut rng), Fr::random(&mut rng)),
        };
        let ours = prover::prove_one(c.clone(), &params, r, s).unwrap();
        let theirs = groth16::create_proof_batch(vec![c.clone()], &theirs_params, vec![r], vec![s]).unwrap();
        assert_eq!(bytes(&ours), bytes(&theirs[0]), "round {round}");
        assert!(groth16::verify_proof(&pvk, &ours, &public_inputs(&c)).unwrap());
        let mut wrong = public_inputs(&c);
        wrong[0] += Fr::ONE;
        assert!(!groth16::verify_proof(&pvk, &ours, &wrong).unwrap());
    }
    let cs: Vec<Mixed> = (0..2).map(|_| circuit(&mut rng, 6)).collect();
    let proofs = prover::prove(cs.clone(), &params, &mut rng).unwrap();
    for (p, c) in proofs.iter().zip(&cs) {
        assert!(groth16::verify_proof(&pvk, p, &public_inputs(c)).unwrap());
    }
}

#[test]
fn parameters_of_another_circuit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (params, _) = mapped_setup(dir.path(), "small.params", Mixed { x: None, words: vec![None; 2] }, 3);
    let mut rng = StdRng::seed_from_u64(4);
    let err = prover::prove_one(circuit(&mut rng, 8), &params, Fr::ONE, Fr::ONE).unwrap_err();
    assert!(err.to_string().contains("do not fit this circuit"), "{err}");
}

/// Truncated, padded or garbage files are errors naming what is wrong, not panics.
#[test]
fn malformed_parameter_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (_, theirs) = mapped_setup(dir.path(), "good.params", Mixed { x: None, words: vec![None; 1] }, 7);
    let good = std::fs::read(dir.path().join("good.params")).unwrap();
    drop(theirs);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("empty", vec![], "truncated"),
        ("vk cut", good[..500].to_vec(), "truncated"),
        ("last query cut", good[..good.len() - 1].to_vec(), "query B in G2"),
        ("extra bytes", [good.clone(), vec![0; 3]].concat(), "3 bytes follow"),
        ("garbage vk", [vec![0xff; 1000], good[1000..].to_vec()].concat(), ""),
    ];
    for (what, bytes, says) in cases {
        let path = dir.path().join(format!("{what}.params"));
        std::fs::write(&path, bytes).unwrap();
        let err = ProvingKey::open(&path).err().unwrap_or_else(|| panic!("{what} was accepted"));
        let msg = err.to_string();
        assert!(msg.contains(path.to_str().unwrap()) && msg.contains(says), "{what}: {msg}");
    }
}

/// A base corrupted inside a query (bit rot behind a matching stamp) is an
/// error naming the query and the base, not a wrong proof or a panic.
#[test]
fn a_corrupt_base_is_reported_by_query_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = mapped_setup(dir.path(), "good.params", Mixed { x: None, words: vec![None; 1] }, 8);
    // The first base of H starts right after the verifying key and H's count.
    let vk_len = 3 * 96 + 3 * 192 + 4 + key.vk.ic.len() * 96;
    drop(key);
    let mut bytes = std::fs::read(dir.path().join("good.params")).unwrap();
    bytes[vk_len + 4 + 50] ^= 0x10;
    let path = dir.path().join("corrupt.params");
    std::fs::write(&path, bytes).unwrap();
    let key = ProvingKey::open(&path).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let err = prover::prove_one(circuit(&mut rng, 1), &key, Fr::ONE, Fr::ONE).unwrap_err();
    assert!(err.to_string().contains("base 0 of query H is not a point of the curve"), "{err}");
}
