//! The labeling kernel: SHA-256 of label messages (porep-sdr.md §7), split the
//! way the labelers need it.
//!
//! A label message is 20 compression blocks: the header (replica id, layer,
//! node), 18 blocks of two parent labels each, and a last block holding the
//! 37th parent and the padding. The header depends on no label, so it is
//! compressed apart ([`Kernel::header_states`]): the single-sector labeler does
//! it on a producer thread, leaving 19 blocks on the hashing thread's chain.
//! [`Kernel::labels`] compresses those 19 blocks for up to [`MAX_STREAMS`]
//! independent messages at once; `sha256rnds2` is latency-bound, so the
//! streams of a batch overlap almost for free.
//!
//! Two backends give identical bytes: SHA-NI intrinsics, chosen at run time
//! when the CPU has the SHA extensions, and a portable one that assembles the
//! message and calls `sha2::compress256` (which has its own assembly for CPUs
//! without SHA-NI). The portable backend is also the tests' oracle.

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod shani;

use crate::ids::ReplicaId;
use crate::shape::{BASE_DEGREE, DEGREE};
use std::time::{Duration, Instant};

/// The most messages [`Kernel::labels`] hashes together.
pub const MAX_STREAMS: usize = 8;

/// Parent labels hashed per node.
pub const PARENT_REPEATS: usize = 37;

/// Bit length of a label message: 64-byte header + 37 parents.
const MESSAGE_BITS: u64 = (64 + PARENT_REPEATS as u64 * 32) * 8;

/// SHA-256 initial state.
pub const IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// SHA-256 round constants.
const BLOCK_WORDS_ROUND_CONSTANTS: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// One label to finish: the state after its header block, and its parents' labels
/// (6 base parents of this layer, then 8 expander parents of the previous one;
/// the expander slots are not read in layer 1).
#[derive(Clone, Copy)]
pub struct LabelJob<'a> {
    /// The state after the header block ([`Kernel::header_states`]).
    pub header: &'a [u32; 8],
    /// The 14 parent labels.
    pub parents: &'a [[u8; 32]; DEGREE],
}

/// How many distinct parents a layer's message cycles through: layer 1 has no
/// expander parents.
#[inline]
pub fn parent_cycle(layer: u32) -> usize {
    if layer == 1 {
        BASE_DEGREE
    } else {
        DEGREE
    }
}

/// The header block of `(layer, node)`: `replica_id || layer (u32 BE) || node (u64 BE) || 0^20`.
pub fn header_block(replica_id: &ReplicaId, layer: u32, node: u64) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(&replica_id.0);
    b[32..36].copy_from_slice(&layer.to_be_bytes());
    b[36..44].copy_from_slice(&node.to_be_bytes());
    b
}

/// The compression code in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// x86 SHA extensions through intrinsics, several streams interleaved.
    ShaNi,
    /// `sha2::compress256` on an assembled message, one stream at a time.
    Portable,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ShaNi => "sha-ni",
            Self::Portable => "portable",
        })
    }
}

/// The label kernel with its backend chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    backend: Backend,
}

impl Default for Kernel {
    fn default() -> Self {
        Self::detect()
    }
}

impl Kernel {
    /// The fastest backend this CPU runs: SHA-NI when it has the SHA extensions and SSE4.1.
    pub fn detect() -> Self {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
        {
            return Self { backend: Backend::ShaNi };
        }
        Self::portable()
    }

    /// The portable backend, whatever the CPU.
    pub fn portable() -> Self {
        Self { backend: Backend::Portable }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Compresses one block into each of `N` states (`N <= MAX_STREAMS`).
    pub fn compress<const N: usize>(&self, states: &mut [[u32; 8]; N], blocks: [&[u8; 64]; N]) {
        const { assert!(N >= 1 && N <= MAX_STREAMS) };
        match self.backend {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            #[allow(unsafe_code)]
            // SAFETY: the backend is ShaNi only when `detect` found SHA, SSSE3 and SSE4.1.
            Backend::ShaNi => unsafe { shani::compress_blocks::<N>(states, blocks) },
            _ => {
                for (state, block) in states.iter_mut().zip(blocks) {
                    sha2::compress256(state, &[Block::from(*block)]);
                }
            }
        }
    }

    /// The states after the header blocks of `node` in `layer` for `N` replicas.
    pub fn header_states<const N: usize>(
        &self,
        replica_ids: [&ReplicaId; N],
        layer: u32,
        node: u64,
    ) -> [[u32; 8]; N] {
        let blocks = replica_ids.map(|r| header_block(r, layer, node));
        let mut states = [IV; N];
        self.compress(&mut states, std::array::from_fn(|s| &blocks[s]));
        states
    }

    /// Finishes `N` labels of `layer` (node >= 1) from their header states and parents.
    #[inline]
    pub fn labels<const N: usize>(&self, jobs: [LabelJob<'_>; N], layer: u32) -> [[u8; 32]; N] {
        const { assert!(N >= 1 && N <= MAX_STREAMS) };
        let cycle = parent_cycle(layer);
        match self.backend {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            #[allow(unsafe_code)]
            // SAFETY: the backend is ShaNi only when `detect` found SHA, SSSE3 and SSE4.1.
            Backend::ShaNi => unsafe { shani::labels::<N>(jobs, cycle) },
            _ => jobs.map(|job| portable_label(job, cycle)),
        }
    }

    /// Finishes one label of `layer` (node >= 1).
    #[inline]
    pub fn label(&self, header: &[u32; 8], parents: &[[u8; 32]; DEGREE], layer: u32) -> [u8; 32] {
        self.labels([LabelJob { header, parents }], layer)[0]
    }

    /// Finishes `jobs.len()` labels (1 to [`MAX_STREAMS`]) into `out`, for callers whose
    /// width is known only at run time.
    pub fn labels_into(&self, jobs: &[LabelJob<'_>], layer: u32, out: &mut [[u8; 32]]) {
        macro_rules! width {
            ($($n:literal)*) => {
                match jobs.len() {
                    $($n => out[..$n].copy_from_slice(&self.labels::<$n>(std::array::from_fn(|i| jobs[i]), layer)),)*
                    n => panic!("{n} label streams; the kernel takes 1 to {MAX_STREAMS}"),
                }
            };
        }
        width!(1 2 3 4 5 6 7 8)
    }

    /// Blocks per second this kernel compresses labeling `N` interleaved streams, each
    /// a dependent chain as in a layer (a label's hashing starts only once the previous
    /// label of its stream is known), measured for at least `min` on this thread.
    pub fn measure_label_blocks_per_second<const N: usize>(&self, min: Duration) -> f64 {
        let parents = [[0x5au8; 32]; DEGREE];
        let mut headers = [IV; N];
        let start = Instant::now();
        let mut blocks = 0u64;
        loop {
            for _ in 0..256 {
                let labels = self.labels::<N>(
                    std::array::from_fn(|s| LabelJob { header: &headers[s], parents: &parents }),
                    2,
                );
                for (h, l) in headers.iter_mut().zip(labels) {
                    h[0] ^= u32::from_le_bytes([l[0], l[1], l[2], l[3]]);
                }
            }
            blocks += 256 * 19 * N as u64;
            let elapsed = start.elapsed();
            if elapsed >= min {
                std::hint::black_box(headers);
                return blocks as f64 / elapsed.as_secs_f64();
            }
        }
    }
}

// sha2 0.10's block type is generic-array 0.14's, deprecated upstream in favour of 1.x.
#[allow(deprecated)]
type Block = sha2::digest::generic_array::GenericArray<u8, sha2::digest::consts::U64>;

/// The portable label: the 19 blocks after the header, assembled and compressed by `sha2`.
fn portable_label(job: LabelJob<'_>, cycle: usize) -> [u8; 32] {
    let mut blocks: [Block; 19] = Default::default();
    for i in 0..PARENT_REPEATS {
        let half = (i % 2) * 32;
        blocks[i / 2][half..half + 32].copy_from_slice(&job.parents[i % cycle]);
    }
    blocks[18][32] = 0x80;
    blocks[18][56..].copy_from_slice(&MESSAGE_BITS.to_be_bytes());
    let mut state = *job.header;
    sha2::compress256(&mut state, &blocks);
    state_bytes_trimmed(&state)
}

/// A final state as label bytes: big-endian words, trimmed to 254 bits.
pub fn state_bytes_trimmed(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    crate::ids::trim(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    /// The label by the book: plain SHA-256 over the whole message.
    fn plain_label(rid: &ReplicaId, layer: u32, node: u64, parents: &[[u8; 32]; DEGREE]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(header_block(rid, layer, node));
        for i in 0..PARENT_REPEATS {
            h.update(parents[i % parent_cycle(layer)]);
        }
        let mut out: [u8; 32] = h.finalize().into();
        crate::ids::trim(&mut out);
        out
    }

    fn kernels() -> Vec<Kernel> {
        let mut k = vec![Kernel::portable()];
        if Kernel::detect() != Kernel::portable() {
            k.push(Kernel::detect());
        }
        k
    }

    fn check_width<const N: usize>(
        k: &Kernel,
        rids: &[ReplicaId],
        parents: &[[[u8; 32]; DEGREE]],
        layer: u32,
        node: u64,
    ) {
        let headers = k.header_states::<N>(std::array::from_fn(|s| &rids[s]), layer, node);
        let jobs = std::array::from_fn(|s| LabelJob { header: &headers[s], parents: &parents[s] });
        let got = k.labels::<N>(jobs, layer);
        for s in 0..N {
            assert_eq!(got[s], plain_label(&rids[s], layer, node, &parents[s]), "{k:?} N={N} stream {s}");
        }
        let mut dyn_out = [[0u8; 32]; MAX_STREAMS];
        k.labels_into(&jobs, layer, &mut dyn_out);
        assert_eq!(&dyn_out[..N], &got[..]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Every backend and every width gives plain SHA-256's label, in both kinds of layer.
        #[test]
        fn every_backend_and_width_matches_plain_sha256(
            seed in any::<[u8; 32]>(), layer in 1u32..12, node in 1u64..u64::MAX,
        ) {
            use rand::{RngCore, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::from_seed(seed);
            let rids: Vec<ReplicaId> = (0..MAX_STREAMS).map(|_| { let mut r = [0u8; 32]; rng.fill_bytes(&mut r); ReplicaId(r) }).collect();
            let parents: Vec<[[u8; 32]; DEGREE]> = (0..MAX_STREAMS)
                .map(|_| std::array::from_fn(|_| { let mut p = [0u8; 32]; rng.fill_bytes(&mut p); p }))
                .collect();
            for k in kernels() {
                check_width::<1>(&k, &rids, &parents, layer, node);
                check_width::<2>(&k, &rids, &parents, layer, node);
                check_width::<3>(&k, &rids, &parents, layer, node);
                check_width::<4>(&k, &rids, &parents, layer, node);
                check_width::<5>(&k, &rids, &parents, layer, node);
                check_width::<8>(&k, &rids, &parents, layer, node);
            }
        }
    }

    #[test]
    fn compress_matches_sha2_for_every_width() {
        let blocks: Vec<[u8; 64]> = (0..MAX_STREAMS as u8).map(|i| [i.wrapping_mul(37); 64]).collect();
        for k in kernels() {
            let mut states = [IV; 8];
            for round in 0..3 {
                k.compress::<8>(&mut states, std::array::from_fn(|s| &blocks[(s + round) % 8]));
            }
            for (s, state) in states.iter().enumerate() {
                let mut want = IV;
                for round in 0..3 {
                    sha2::compress256(&mut want, &[Block::from(blocks[(s + round) % 8])]);
                }
                assert_eq!(*state, want, "{k:?} stream {s}");
            }
        }
    }
}
