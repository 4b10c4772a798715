//! Multi-scalar multiplications over the bases of a parameter file, split by
//! the value of each scalar.
//!
//! Most variables of the SDR circuit are bits (SHA-256 and the boolean
//! decompositions): a scalar 0 costs nothing, a scalar 1 costs one point
//! addition, and only the rest go to Pippenger (blst's signed-digit,
//! multi-threaded implementation), where each point costs ~⌈255/c⌉ bucket
//! additions (blst sums the ones with batched affine additions, a field
//! inversion shared by many points). Bases are read from the memory-mapped
//! file only when used.

// The casts between blstrs' and blst's point types (see `Curve`).
#![allow(unsafe_code)]

use super::key::Query;
use crate::error::{Error, Result};
use blst::{
    blst_p1, blst_p1_affine, blst_p1s_mult_pippenger, blst_p1s_mult_pippenger_scratch_sizeof,
    blst_p1s_to_affine, blst_p2, blst_p2_affine, blst_p2s_mult_pippenger,
    blst_p2s_mult_pippenger_scratch_sizeof, blst_p2s_to_affine, MultiPoint,
};
use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};
use ff::Field;
use group::prime::PrimeCurveAffine;
use group::Group;
use rayon::prelude::*;
use std::cell::Cell;

/// Bases per Pippenger call: 2^23 G1 bases decode to 768 MiB. Smaller
/// circuits (2^22 bases up to 512MiB) run in one call.
const PIPPENGER_SLICE: usize = 1 << 23;

thread_local! {
    /// Set on the threads of a pool whose MSMs stay on that pool.
    static OWN_POOL: Cell<bool> = const { Cell::new(false) };
}

/// Makes the MSMs run on this thread (and so on the rayon pool it belongs
/// to, when called from its start handler) stay on that pool: its Pippenger
/// is split into chunks of blst's single-threaded one across the pool.
/// Otherwise blst runs every Pippenger on its one process-wide thread pool,
/// where a PoSt's would queue behind a C2's.
pub fn keep_msms_on_this_pool() {
    OWN_POOL.with(|c| c.set(true));
}

/// Starts blst's process-wide MSM threads from a thread of low priority:
/// they inherit its nice value, so the MSMs sealing runs there (C2) yield the
/// cores to a PoSt proved on its own pool. Call once, before any MSM runs;
/// a pool already started is kept as it is.
pub fn start_shared_pool_at_low_priority() {
    let started = std::thread::Builder::new().name("msm-pool-start".into()).spawn(|| {
        crate::priority::lower_thread_priority();
        // Enough points that blst hands the work to its pool (which starts it).
        let g = G1Affine::generator();
        let points = vec![g; 64];
        let scalars = vec![1u8; 64 * 32];
        let _ = G1Projective::pippenger(&points, &scalars);
    });
    if let Ok(handle) = started {
        let _ = handle.join();
    }
}

/// Σ scalar · point on the current rayon pool: chunks of blst's
/// single-threaded Pippenger, one per thread, summed.
fn pippenger_on_this_pool<G: Curve>(points: &[G::Affine], scalars: &[u8]) -> G {
    let per = points.len().div_ceil(rayon::current_num_threads().max(1)).max(1);
    points
        .par_chunks(per)
        .zip(scalars.par_chunks(per * 32))
        .map(|(p, s)| G::pippenger_one_thread(p, s))
        .reduce(G::identity, |a, b| a + b)
}

/// The terms of one query, by base index.
#[derive(Debug, Default)]
pub struct Terms {
    /// Bases whose scalar is one.
    ones: Vec<usize>,
    /// Bases with any other nonzero scalar, and the scalars.
    others: Vec<usize>,
    scalars: Vec<Fr>,
}

impl Terms {
    /// Adds `scalar · base[index]`.
    pub fn push(&mut self, index: usize, scalar: &Fr) {
        if *scalar == Fr::ONE {
            self.ones.push(index);
        } else if !bool::from(scalar.is_zero()) {
            self.others.push(index);
            self.scalars.push(*scalar);
        }
    }

    /// How many terms were pushed with a scalar of one, and with any other
    /// nonzero scalar.
    pub fn counts(&self) -> (usize, usize) {
        (self.ones.len(), self.others.len())
    }

    /// The largest base index used, if any.
    fn max_index(&self) -> Option<usize> {
        self.ones.iter().chain(&self.others).copied().max()
    }
}

/// A curve group whose bases the parameter file holds uncompressed, with
/// blst's multi-threaded batch addition and Pippenger.
pub trait Curve: Group + Send + Sync {
    /// The affine form the file holds.
    type Affine: Copy + Send + Sync;
    /// Decodes an uncompressed base, checked to be on the curve (not for the
    /// subgroup: that rests on the file's digest, checked when the file was
    /// first used and stamped). `None`: not a point, or the identity, which a
    /// parameter file never holds.
    fn decode(bytes: &[u8]) -> Option<Self::Affine>;
    /// Σ points (batched affine additions); `points` is not empty.
    fn sum_affine(points: &[Self::Affine]) -> Self;
    /// Σ scalar · point, the scalars 32 little-endian bytes each; not empty
    /// (on blst's process-wide thread pool).
    fn pippenger(points: &[Self::Affine], scalars: &[u8]) -> Self;
    /// The same on the calling thread alone.
    fn pippenger_one_thread(points: &[Self::Affine], scalars: &[u8]) -> Self;
    /// The affine forms of `points` (one shared inversion), into `out` of the
    /// same length.
    fn batch_to_affine(points: &[Self], out: &mut [Self::Affine]);
}

// blstrs' points are `#[repr(transparent)]` wrappers of blst's (blstrs 0.7,
// g1.rs and g2.rs), which is what makes the casts below sound; the sizes are
// checked here as well.
const _: () = assert!(std::mem::size_of::<G1Affine>() == std::mem::size_of::<blst_p1_affine>());
const _: () = assert!(std::mem::size_of::<G1Projective>() == std::mem::size_of::<blst_p1>());
const _: () = assert!(std::mem::size_of::<G2Affine>() == std::mem::size_of::<blst_p2_affine>());
const _: () = assert!(std::mem::size_of::<G2Projective>() == std::mem::size_of::<blst_p2>());

impl Curve for G1Projective {
    type Affine = G1Affine;
    fn decode(bytes: &[u8]) -> Option<G1Affine> {
        let p = Option::<G1Affine>::from(G1Affine::from_uncompressed_unchecked(bytes.try_into().ok()?))?;
        (!bool::from(p.is_identity())).then_some(p)
    }
    fn sum_affine(points: &[G1Affine]) -> Self {
        // SAFETY: G1Affine is repr(transparent) over blst_p1_affine: same
        // layout, same length, borrowed for the same lifetime.
        let points: &[blst_p1_affine] =
            unsafe { std::slice::from_raw_parts(points.as_ptr().cast(), points.len()) };
        // SAFETY: G1Projective is repr(transparent) over blst_p1, and blst
        // returns a valid point.
        unsafe { std::mem::transmute::<blst_p1, G1Projective>(points.add()) }
    }
    fn pippenger(points: &[G1Affine], scalars: &[u8]) -> Self {
        // SAFETY: as in `sum_affine`.
        let points: &[blst_p1_affine] =
            unsafe { std::slice::from_raw_parts(points.as_ptr().cast(), points.len()) };
        // SAFETY: as in `sum_affine`.
        unsafe { std::mem::transmute::<blst_p1, G1Projective>(points.mult(scalars, 255)) }
    }
    fn pippenger_one_thread(points: &[G1Affine], scalars: &[u8]) -> Self {
        assert!(!points.is_empty() && scalars.len() >= 32 * points.len(), "32 scalar bytes per point");
        // SAFETY: sizeof only reads its argument.
        let words = unsafe { blst_p1s_mult_pippenger_scratch_sizeof(points.len()) }.div_ceil(8);
        let mut scratch = vec![0u64; words];
        let p: [*const blst_p1_affine; 2] = [points.as_ptr().cast(), std::ptr::null()];
        let s: [*const u8; 2] = [scalars.as_ptr(), std::ptr::null()];
        let mut out = blst_p1::default();
        // SAFETY: the points are repr(transparent) blst affine points, contiguous
        // (a null second pointer says so), as many as `len`; the scalars hold 32
        // bytes (255 bits) per point; the scratch has the size blst asks for.
        unsafe {
            blst_p1s_mult_pippenger(&mut out, p.as_ptr(), points.len(), s.as_ptr(), 255, scratch.as_mut_ptr())
        };
        // SAFETY: as in `sum_affine`.
        unsafe { std::mem::transmute::<blst_p1, G1Projective>(out) }
    }
    fn batch_to_affine(points: &[Self], out: &mut [G1Affine]) {
        assert_eq!(points.len(), out.len());
        let inputs: [*const blst_p1; 2] = [points.as_ptr().cast(), std::ptr::null()];
        // SAFETY: both slices hold `len` points of the repr(transparent) blst
        // types; a null second pointer tells blst the first is an array.
        unsafe { blst_p1s_to_affine(out.as_mut_ptr().cast(), inputs.as_ptr(), points.len()) }
    }
}

impl Curve for G2Projective {
    type Affine = G2Affine;
    fn decode(bytes: &[u8]) -> Option<G2Affine> {
        let p = Option::<G2Affine>::from(G2Affine::from_uncompressed_unchecked(bytes.try_into().ok()?))?;
        (!bool::from(p.is_identity())).then_some(p)
    }
    fn sum_affine(points: &[G2Affine]) -> Self {
        // SAFETY: G2Affine is repr(transparent) over blst_p2_affine: same
        // layout, same length, borrowed for the same lifetime.
        let points: &[blst_p2_affine] =
            unsafe { std::slice::from_raw_parts(points.as_ptr().cast(), points.len()) };
        // SAFETY: G2Projective is repr(transparent) over blst_p2, and blst
        // returns a valid point.
        unsafe { std::mem::transmute::<blst_p2, G2Projective>(points.add()) }
    }
    fn pippenger(points: &[G2Affine], scalars: &[u8]) -> Self {
        // SAFETY: as in `sum_affine`.
        let points: &[blst_p2_affine] =
            unsafe { std::slice::from_raw_parts(points.as_ptr().cast(), points.len()) };
        // SAFETY: as in `sum_affine`.
        unsafe { std::mem::transmute::<blst_p2, G2Projective>(points.mult(scalars, 255)) }
    }
    fn pippenger_one_thread(points: &[G2Affine], scalars: &[u8]) -> Self {
        assert!(!points.is_empty() && scalars.len() >= 32 * points.len(), "32 scalar bytes per point");
        // SAFETY: sizeof only reads its argument.
        let words = unsafe { blst_p2s_mult_pippenger_scratch_sizeof(points.len()) }.div_ceil(8);
        let mut scratch = vec![0u64; words];
        let p: [*const blst_p2_affine; 2] = [points.as_ptr().cast(), std::ptr::null()];
        let s: [*const u8; 2] = [scalars.as_ptr(), std::ptr::null()];
        let mut out = blst_p2::default();
        // SAFETY: the points are repr(transparent) blst affine points, contiguous
        // (a null second pointer says so), as many as `len`; the scalars hold 32
        // bytes (255 bits) per point; the scratch has the size blst asks for.
        unsafe {
            blst_p2s_mult_pippenger(&mut out, p.as_ptr(), points.len(), s.as_ptr(), 255, scratch.as_mut_ptr())
        };
        // SAFETY: as in `sum_affine`.
        unsafe { std::mem::transmute::<blst_p2, G2Projective>(out) }
    }
    fn batch_to_affine(points: &[Self], out: &mut [G2Affine]) {
        assert_eq!(points.len(), out.len());
        let inputs: [*const blst_p2; 2] = [points.as_ptr().cast(), std::ptr::null()];
        // SAFETY: as for G1.
        unsafe { blst_p2s_to_affine(out.as_mut_ptr().cast(), inputs.as_ptr(), points.len()) }
    }
}

/// Σ scalar · base over `terms`, with the bases of `query` in `file`.
/// `name` names the query in errors.
pub fn msm<G: Curve>(file: &[u8], query: &Query, terms: &Terms, name: &str) -> Result<G> {
    if let Some(max) = terms.max_index() {
        if max >= query.len() {
            return Err(Error::Snark(format!(
                "the parameters do not fit this circuit: query {name} has {} bases, the witness uses base {max}",
                query.len()
            )));
        }
    }
    let gather = |indices: &[usize]| {
        indices
            .par_iter()
            .map(|&i| {
                G::decode(query.base(file, i)).ok_or_else(|| {
                    Error::Snark(format!("parameter base {i} of query {name} is not a point of the curve"))
                })
            })
            .collect::<Result<Vec<_>>>()
    };
    let mut acc = G::identity();
    if !terms.ones.is_empty() {
        acc += G::sum_affine(&gather(&terms.ones)?);
    }
    // In slices, so that a 32GiB circuit's H (2^27 bases) never holds all its
    // decoded bases at once.
    for (indices, scalars) in terms.others.chunks(PIPPENGER_SLICE).zip(terms.scalars.chunks(PIPPENGER_SLICE))
    {
        let points = gather(indices)?;
        let scalars: Vec<u8> = scalars.par_iter().flat_map_iter(|s| s.to_bytes_le()).collect();
        acc += if OWN_POOL.with(Cell::get) {
            pippenger_on_this_pool::<G>(&points, &scalars)
        } else {
            G::pippenger(&points, &scalars)
        };
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunked Pippenger on a rayon pool of its own (PoSt) gives blst's
    /// threaded result, for both groups and sizes that split unevenly.
    #[test]
    fn pippenger_on_a_pool_of_its_own_matches_blsts() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .start_handler(|_| keep_msms_on_this_pool())
            .build()
            .unwrap();
        for n in [1usize, 2, 31, 33, 1000] {
            let scalars: Vec<u8> =
                (0..n * 32).map(|i| if i % 32 == 31 { rng.gen::<u8>() & 0x3f } else { rng.gen() }).collect();
            let g1: Vec<G1Affine> =
                (0..n).map(|_| G1Affine::from(G1Projective::generator() * Fr::random(&mut rng))).collect();
            let g2: Vec<G2Affine> =
                (0..n).map(|_| G2Affine::from(G2Projective::generator() * Fr::random(&mut rng))).collect();
            let (a1, a2) = pool.install(|| {
                assert!(OWN_POOL.with(Cell::get));
                (
                    pippenger_on_this_pool::<G1Projective>(&g1, &scalars),
                    pippenger_on_this_pool::<G2Projective>(&g2, &scalars),
                )
            });
            assert_eq!(a1, G1Projective::pippenger(&g1, &scalars), "G1, {n} points");
            assert_eq!(a2, G2Projective::pippenger(&g2, &scalars), "G2, {n} points");
            assert_eq!(G1Projective::pippenger_one_thread(&g1, &scalars), a1);
        }
        assert!(!OWN_POOL.with(Cell::get), "other threads keep blst's pool");
    }

    #[test]
    fn terms_are_split_by_value() {
        let mut t = Terms::default();
        t.push(0, &Fr::ZERO);
        t.push(1, &Fr::ONE);
        t.push(2, &Fr::from(2u64));
        t.push(3, &-Fr::ONE);
        assert_eq!(t.ones, vec![1]);
        assert_eq!(t.others, vec![2, 3]);
        assert_eq!(t.counts(), (1, 2));
        assert_eq!(t.max_index(), Some(3));
    }
}
