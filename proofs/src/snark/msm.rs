//! Multi-scalar multiplications over the bases of a parameter file, split by
//! the value of each scalar.
//!
//! Most variables of the SDR circuit are bits (SHA-256 and the boolean
//! decompositions): a scalar 0 costs nothing, a scalar 1 costs one point
//! addition, and only the rest go to Pippenger (blst's signed-digit,
//! multi-threaded implementation), where each point costs ~⌈255/c⌉ bucket
//! additions. Bases are read from the memory-mapped file only when used.

use crate::error::{Error, Result};
use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar as Fr};
use ff::Field;
use group::prime::PrimeCurveAffine;
use group::Group;
use rayon::prelude::*;
use std::ops::{AddAssign, Range};

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

/// A curve group whose bases the parameter file holds uncompressed.
pub trait Curve: Group + AddAssign<Self::Affine> + Send + Sync {
    /// The affine form the file holds.
    type Affine: Copy + Send + Sync;
    /// Decodes an uncompressed base (blst checks it is on the curve; the file's
    /// digest vouches for the subgroup). `None`: not a point, or the identity,
    /// which a parameter file never holds.
    fn decode(bytes: &[u8]) -> Option<Self::Affine>;
    /// Pippenger over projective points.
    fn pippenger(points: &[Self], scalars: &[Fr]) -> Self;
    /// The projective form of a base.
    fn from_affine(a: Self::Affine) -> Self;
}

impl Curve for G1Projective {
    type Affine = G1Affine;
    fn decode(bytes: &[u8]) -> Option<G1Affine> {
        let p = Option::<G1Affine>::from(G1Affine::from_uncompressed_unchecked(bytes.try_into().ok()?))?;
        (!bool::from(p.is_identity())).then_some(p)
    }
    fn pippenger(points: &[Self], scalars: &[Fr]) -> Self {
        G1Projective::multi_exp(points, scalars)
    }
    fn from_affine(a: G1Affine) -> Self {
        a.into()
    }
}

impl Curve for G2Projective {
    type Affine = G2Affine;
    fn decode(bytes: &[u8]) -> Option<G2Affine> {
        let p = Option::<G2Affine>::from(G2Affine::from_uncompressed_unchecked(bytes.try_into().ok()?))?;
        (!bool::from(p.is_identity())).then_some(p)
    }
    fn pippenger(points: &[Self], scalars: &[Fr]) -> Self {
        G2Projective::multi_exp(points, scalars)
    }
    fn from_affine(a: G2Affine) -> Self {
        a.into()
    }
}

/// Bases summed per rayon task.
const SUM_CHUNK: usize = 1 << 12;

/// Σ scalar · base over `terms`, with the bases at `ranges` of `map`.
/// `query` names the query in errors.
pub fn msm<G: Curve>(map: &[u8], ranges: &[Range<usize>], terms: &Terms, query: &str) -> Result<G> {
    if let Some(max) = terms.max_index() {
        if max >= ranges.len() {
            return Err(Error::Snark(format!(
                "the parameters do not fit this circuit: query {query} has {} bases, the witness uses base {max}",
                ranges.len()
            )));
        }
    }
    let read = |i: usize| {
        map.get(ranges[i].clone()).and_then(G::decode).ok_or_else(|| {
            Error::Snark(format!("parameter base {i} of query {query} is not a point of the curve"))
        })
    };
    let ones = terms
        .ones
        .par_chunks(SUM_CHUNK)
        .map(|chunk| {
            let mut acc = G::identity();
            for &i in chunk {
                acc += read(i)?;
            }
            Ok(acc)
        })
        .try_reduce(G::identity, |a, b| Ok(a + b))?;
    if terms.others.is_empty() {
        return Ok(ones);
    }
    let points = terms.others.par_iter().map(|&i| read(i).map(G::from_affine)).collect::<Result<Vec<G>>>()?;
    Ok(ones + G::pippenger(&points, &terms.scalars))
}

#[cfg(test)]
mod tests {
    use super::*;

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
