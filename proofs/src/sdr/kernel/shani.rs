//! The SHA-NI label kernel: the label message is read straight from the parent
//! slots into registers (no 1,248-byte buffer), and up to eight independent
//! messages are hashed in lock step, one 4-round group of each in turn, so the
//! latency-bound `sha256rnds2` chains of different streams overlap.
//!
//! Every function here needs the CPU's SHA extensions and SSE4.1; [`super::Kernel`]
//! calls them only after detecting both at run time.

#![allow(unsafe_code)]

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use super::{LabelJob, BLOCK_WORDS_ROUND_CONSTANTS, MESSAGE_BITS};

/// Byte order mask: each 32-bit lane reversed (message bytes are big-endian words).
#[inline(always)]
unsafe fn be_mask() -> __m128i {
    // SAFETY: SSE2, which every caller has enabled.
    unsafe { _mm_set_epi64x(0x0c0d_0e0f_0809_0a0bu64 as i64, 0x0405_0607_0001_0203u64 as i64) }
}

/// Loads 16 bytes as four big-endian message words.
///
/// # Safety
/// SSSE3 must be available; `bytes` is 16 readable bytes (guaranteed by the type).
#[inline(always)]
unsafe fn load_be(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: `bytes` is 16 bytes; `loadu` has no alignment requirement.
    unsafe { _mm_shuffle_epi8(_mm_loadu_si128(bytes.as_ptr().cast()), be_mask()) }
}

/// The SHA-256 state `[a..h]` in the `(abef, cdgh)` register form `sha256rnds2` works on.
#[inline(always)]
unsafe fn load_state(state: &[u32; 8]) -> (__m128i, __m128i) {
    // SAFETY: `state` is 32 readable bytes; unaligned loads.
    unsafe {
        let dcba = _mm_loadu_si128(state.as_ptr().cast());
        let hgfe = _mm_loadu_si128(state.as_ptr().add(4).cast());
        let cdab = _mm_shuffle_epi32(dcba, 0xb1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1b);
        (_mm_alignr_epi8(cdab, efgh, 8), _mm_blend_epi16(efgh, cdab, 0xf0))
    }
}

/// The `(abef, cdgh)` register form back in word order: `([a, b, c, d], [e, f, g, h])`.
#[inline(always)]
unsafe fn unload_state(abef: __m128i, cdgh: __m128i) -> (__m128i, __m128i) {
    // SAFETY: SSE2, SSSE3 and SSE4.1 shuffles and blends, which every caller has enabled.
    unsafe {
        let feba = _mm_shuffle_epi32(abef, 0x1b);
        let dchg = _mm_shuffle_epi32(cdgh, 0xb1);
        (_mm_blend_epi16(feba, dchg, 0xf0), _mm_alignr_epi8(dchg, feba, 8))
    }
}

/// The digest bytes (big-endian words) of a state in `(abef, cdgh)` form.
#[inline(always)]
unsafe fn digest_bytes(abef: __m128i, cdgh: __m128i) -> [u8; 32] {
    let mut out = [0u8; 32];
    // SAFETY: `out` is 32 writable bytes (unaligned stores); instructions enabled by the caller.
    unsafe {
        let (dcba, hgfe) = unload_state(abef, cdgh);
        _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_shuffle_epi8(dcba, be_mask()));
        _mm_storeu_si128(out.as_mut_ptr().add(16).cast(), _mm_shuffle_epi8(hgfe, be_mask()));
    }
    out
}

/// Words `t..t+4` of the message schedule from the four previous groups.
#[inline(always)]
unsafe fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    // SAFETY: SHA, SSE2 and SSSE3 instructions, which every caller has enabled.
    unsafe {
        _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8(w3, w2, 4)), w3)
    }
}

/// Rounds `4G..4G+4` of `N` streams; `w` holds the four latest message-word groups.
#[inline(always)]
unsafe fn group<const N: usize, const G: usize>(
    abef: &mut [__m128i; N],
    cdgh: &mut [__m128i; N],
    w: &mut [[__m128i; 4]; N],
) {
    // SAFETY: SHA and SSE instructions, which every caller has enabled; the round-constant
    // table has 64 words and `4G + 4 <= 64`.
    unsafe {
        let k = _mm_loadu_si128(BLOCK_WORDS_ROUND_CONSTANTS[G * 4..].as_ptr().cast());
        for s in 0..N {
            let ws = &mut w[s];
            if G >= 4 {
                ws[G % 4] = schedule(ws[G % 4], ws[(G + 1) % 4], ws[(G + 2) % 4], ws[(G + 3) % 4]);
            }
            let wk = _mm_add_epi32(ws[G % 4], k);
            cdgh[s] = _mm_sha256rnds2_epu32(cdgh[s], abef[s], wk);
            abef[s] = _mm_sha256rnds2_epu32(abef[s], cdgh[s], _mm_shuffle_epi32(wk, 0x0e));
        }
    }
}

/// One compression of `N` independent streams, each given its state and 16 message words.
/// Fully unrolled, so the message words stay in registers.
#[inline(always)]
unsafe fn compress<const N: usize>(
    abef: &mut [__m128i; N],
    cdgh: &mut [__m128i; N],
    mut w: [[__m128i; 4]; N],
) {
    // SAFETY: SHA and SSE instructions, which every caller has enabled.
    unsafe {
        let (abef0, cdgh0) = (*abef, *cdgh);
        group::<N, 0>(abef, cdgh, &mut w);
        group::<N, 1>(abef, cdgh, &mut w);
        group::<N, 2>(abef, cdgh, &mut w);
        group::<N, 3>(abef, cdgh, &mut w);
        group::<N, 4>(abef, cdgh, &mut w);
        group::<N, 5>(abef, cdgh, &mut w);
        group::<N, 6>(abef, cdgh, &mut w);
        group::<N, 7>(abef, cdgh, &mut w);
        group::<N, 8>(abef, cdgh, &mut w);
        group::<N, 9>(abef, cdgh, &mut w);
        group::<N, 10>(abef, cdgh, &mut w);
        group::<N, 11>(abef, cdgh, &mut w);
        group::<N, 12>(abef, cdgh, &mut w);
        group::<N, 13>(abef, cdgh, &mut w);
        group::<N, 14>(abef, cdgh, &mut w);
        group::<N, 15>(abef, cdgh, &mut w);
        for s in 0..N {
            abef[s] = _mm_add_epi32(abef[s], abef0[s]);
            cdgh[s] = _mm_add_epi32(cdgh[s], cdgh0[s]);
        }
    }
}

/// Compresses one 64-byte block into each of `N` states.
///
/// # Safety
/// The CPU supports SHA, SSSE3 and SSE4.1.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) unsafe fn compress_blocks<const N: usize>(states: &mut [[u32; 8]; N], blocks: [&[u8; 64]; N]) {
    let mut abef = [_mm_setzero_si128(); N];
    let mut cdgh = [_mm_setzero_si128(); N];
    let mut w = [[_mm_setzero_si128(); 4]; N];
    for s in 0..N {
        // SAFETY: features enabled on this function.
        unsafe {
            (abef[s], cdgh[s]) = load_state(&states[s]);
            for (i, chunk) in blocks[s].as_chunks::<16>().0.iter().enumerate() {
                w[s][i] = load_be(chunk);
            }
        }
    }
    // SAFETY: features enabled on this function.
    unsafe { compress::<N>(&mut abef, &mut cdgh, w) };
    for s in 0..N {
        // SAFETY: `states[s]` is 32 writable bytes (unaligned stores); features enabled here.
        unsafe {
            let (dcba, hgfe) = unload_state(abef[s], cdgh[s]);
            _mm_storeu_si128(states[s].as_mut_ptr().cast(), dcba);
            _mm_storeu_si128(states[s].as_mut_ptr().add(4).cast(), hgfe);
        }
    }
}

/// Finishes `N` labels: blocks 1 to 19 of each message (the parents and the padding)
/// compressed into its header state, then the digest trimmed to 254 bits.
///
/// # Safety
/// The CPU supports SHA, SSSE3 and SSE4.1.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(super) unsafe fn labels<const N: usize>(jobs: [LabelJob<'_>; N], cycle: usize) -> [[u8; 32]; N] {
    let mut abef = [_mm_setzero_si128(); N];
    let mut cdgh = [_mm_setzero_si128(); N];
    for s in 0..N {
        // SAFETY: features enabled on this function.
        (abef[s], cdgh[s]) = unsafe { load_state(jobs[s].header) };
    }
    // Block 19: the 37th parent, then 0x80 and the message length in bits.
    let pad_lo = _mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32);
    let pad_hi = _mm_set_epi32(MESSAGE_BITS as i32, 0, 0, 0);
    for block in 0..19 {
        let mut w = [[_mm_setzero_si128(); 4]; N];
        for s in 0..N {
            let first = jobs[s].parents[(2 * block) % cycle].as_chunks::<16>().0;
            // SAFETY: features enabled on this function.
            unsafe {
                w[s][0] = load_be(&first[0]);
                w[s][1] = load_be(&first[1]);
                if block < 18 {
                    let second = jobs[s].parents[(2 * block + 1) % cycle].as_chunks::<16>().0;
                    w[s][2] = load_be(&second[0]);
                    w[s][3] = load_be(&second[1]);
                } else {
                    w[s][2] = pad_lo;
                    w[s][3] = pad_hi;
                }
            }
        }
        // SAFETY: features enabled on this function.
        unsafe { compress::<N>(&mut abef, &mut cdgh, w) };
    }
    let mut out = [[0u8; 32]; N];
    for s in 0..N {
        // SAFETY: features enabled on this function.
        out[s] = unsafe { digest_bytes(abef[s], cdgh[s]) };
        out[s][31] &= 0x3f;
    }
    out
}
