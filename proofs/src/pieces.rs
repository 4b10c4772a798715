//! Pieces: their commitments (comm_p), their placement in a sector, and the
//! sector's data commitment (comm_d) folded from them (porep-sdr.md §3).
//!
//! Sizes follow Filecoin's two units: a piece's *unpadded* size is `127·2^k`
//! raw bytes; its *padded* size `128·2^k` is what it occupies in the sector.

use crate::error::{Error, Result};
use crate::fr32::{Fr32Reader, PADDED_BLOCK, UNPADDED_BLOCK};
use crate::ids::{sha254_pair, Commitment};
use crate::merkle::sha_tree::StreamingRoot;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::sync::OnceLock;

/// Smallest piece, unpadded.
pub const MIN_UNPADDED_PIECE: u64 = UNPADDED_BLOCK as u64;

/// A piece as the sector sees it: its commitment and padded size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceInfo {
    /// The piece commitment.
    pub comm_p: Commitment,
    /// The padded size in bytes (a power of two, at least 128).
    pub padded_size: u64,
}

impl PieceInfo {
    /// The unpadded size (`127/128` of the padded size).
    pub fn unpadded_size(&self) -> u64 {
        self.padded_size / 128 * 127
    }

    /// The all-zero piece of a padded size.
    pub fn zero(padded_size: u64) -> Self {
        Self { comm_p: zero_commitment(padded_size), padded_size }
    }
}

/// `Z(2^i)` for `i = 5..=36`: commitments of all-zero pieces up to 64 GiB.
fn zero_table() -> &'static [[u8; 32]; 32] {
    static T: OnceLock<[[u8; 32]; 32]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = [[0u8; 32]; 32];
        for i in 1..32 {
            t[i] = sha254_pair(&t[i - 1], &t[i - 1]);
        }
        t
    })
}

/// Commitment of `padded_size` zero bytes (`padded_size` a power of two, 32 to 64 GiB).
pub fn zero_commitment(padded_size: u64) -> Commitment {
    assert!(
        padded_size.is_power_of_two() && (32..=1 << 36).contains(&padded_size),
        "zero piece size {padded_size} must be a power of two between 32 B and 64 GiB"
    );
    Commitment(zero_table()[padded_size.trailing_zeros() as usize - 5])
}

/// The unpadded piece size a raw input of `len` bytes is padded up to:
/// the smallest `127·2^k >= len` (at least 127).
pub fn unpadded_piece_size(len: u64) -> u64 {
    let blocks = len.div_ceil(UNPADDED_BLOCK as u64).max(1);
    blocks.next_power_of_two() * UNPADDED_BLOCK as u64
}

/// Checks that `unpadded` is a valid piece size (`127·2^k`).
pub fn check_unpadded_size(unpadded: u64) -> Result<()> {
    if unpadded < MIN_UNPADDED_PIECE
        || !unpadded.is_multiple_of(UNPADDED_BLOCK as u64)
        || !(unpadded / UNPADDED_BLOCK as u64).is_power_of_two()
    {
        return Err(Error::PieceSize(format!("{unpadded} bytes is not 127·2^k (k >= 0)")));
    }
    Ok(())
}

/// Pads a raw piece on the fly and commits to it, optionally copying the padded
/// bytes to `sink` (the staged sector file). The input is zero-padded up to the
/// next `127·2^k`; `max_unpadded` bounds what is read so an oversized input
/// is rejected without reading it to the end.
pub fn commit_piece<R: Read>(
    source: R,
    max_unpadded: Option<u64>,
    mut sink: Option<&mut dyn Write>,
) -> Result<(PieceInfo, u64)> {
    let limit = max_unpadded.map_or(u64::MAX, |m| m.saturating_add(1));
    let mut reader = Fr32Reader::new(source.take(limit));
    let mut root = StreamingRoot::new();
    let mut buf = vec![0u8; 64 * PADDED_BLOCK];
    loop {
        let n = read_full(&mut reader, &mut buf)
            .map_err(|e| Error::Stream { what: "read piece".into(), source: e })?;
        if n == 0 {
            break;
        }
        for leaf in buf[..n].as_chunks::<32>().0 {
            root.push(*leaf);
        }
        if let Some(s) = sink.as_mut() {
            s.write_all(&buf[..n])
                .map_err(|e| Error::Stream { what: "write staged piece".into(), source: e })?;
        }
    }
    let raw_len = reader.raw_bytes_read();
    if let Some(max) = max_unpadded {
        if raw_len > max {
            return Err(Error::PieceSize(format!("piece is larger than the {max} bytes a sector holds")));
        }
    }
    let unpadded = unpadded_piece_size(raw_len);
    let padded_size = unpadded / 127 * 128;
    // Pad the tree with aligned zero subtrees up to the piece size.
    let mut leaves = root.leaves();
    let target = padded_size / 32;
    while leaves < target {
        let level = leaves.trailing_zeros().min(63 - (target - leaves).leading_zeros());
        root.push_subtree(zero_commitment(32 << level).0, level);
        if let Some(s) = sink.as_mut() {
            io::copy(&mut io::repeat(0).take(32 << level), s)
                .map_err(|e| Error::Stream { what: "write staged piece".into(), source: e })?;
        }
        leaves += 1 << level;
    }
    let comm_p = root.finish().expect("a power of two of leaves");
    Ok((PieceInfo { comm_p: Commitment(comm_p), padded_size }, raw_len))
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Where one piece, or one zero filler, sits in a sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Padded byte offset in the sector.
    pub offset: u64,
    /// Padded size.
    pub padded_size: u64,
    /// Index of the caller's piece, or None for a zero filler.
    pub source: Option<usize>,
}

/// Places pieces of the given padded sizes in order with lotus's filler rules:
/// before each piece, zero fillers (one per set bit of the gap, smallest first)
/// align it to its own size; after the last, fillers cover the rest of the sector.
/// Returns every piece, fillers included, in sector order.
pub fn place_pieces(padded_sizes: &[u64], sector_size: u64) -> Result<Vec<Placement>> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    let fill = |out: &mut Vec<Placement>, offset: &mut u64, gap: u64| {
        for bit in 0..64 {
            if gap & (1 << bit) != 0 {
                out.push(Placement { offset: *offset, padded_size: 1u64 << bit, source: None });
                *offset += 1 << bit;
            }
        }
    };
    for (i, &size) in padded_sizes.iter().enumerate() {
        if !size.is_power_of_two() || size < PADDED_BLOCK as u64 {
            return Err(Error::PieceSize(format!("padded size {size} is not a power of two >= 128")));
        }
        let gap = offset.wrapping_neg() % size;
        let needed = offset + gap + size;
        if needed > sector_size {
            let needed = offset + gap + padded_sizes[i..].iter().sum::<u64>();
            return Err(Error::PiecesTooLarge { needed, capacity: sector_size });
        }
        fill(&mut out, &mut offset, gap);
        out.push(Placement { offset, padded_size: size, source: Some(i) });
        offset += size;
    }
    let rest = sector_size - offset;
    fill(&mut out, &mut offset, rest);
    Ok(out)
}

/// comm_d from the pieces that tile a sector in order (the reference's `compute_comm_d`).
/// No pieces means an empty (committed-capacity) sector.
pub fn comm_d_from_pieces(pieces: &[PieceInfo], sector_size: u64) -> Result<Commitment> {
    if pieces.is_empty() {
        return Ok(zero_commitment(sector_size));
    }
    let total: u64 = pieces.iter().map(|p| p.padded_size).sum();
    if total != sector_size {
        return Err(Error::PieceSize(format!("pieces cover {total} bytes of a {sector_size}-byte sector")));
    }
    let mut stack: Vec<PieceInfo> = Vec::new();
    let reduce = |stack: &mut Vec<PieceInfo>| {
        while stack.len() >= 2 && stack[stack.len() - 1].padded_size == stack[stack.len() - 2].padded_size {
            let b = stack.pop().expect("two entries");
            let a = stack.pop().expect("two entries");
            stack.push(PieceInfo {
                comm_p: Commitment(sha254_pair(&a.comm_p.0, &b.comm_p.0)),
                padded_size: 2 * a.padded_size,
            });
        }
    };
    for p in pieces {
        while let Some(top) = stack.last().copied().filter(|t| t.padded_size < p.padded_size) {
            stack.push(PieceInfo::zero(top.padded_size));
            reduce(&mut stack);
        }
        stack.push(*p);
        reduce(&mut stack);
    }
    while stack.len() > 1 {
        let top = *stack.last().expect("non-empty");
        stack.push(PieceInfo::zero(top.padded_size));
        reduce(&mut stack);
    }
    Ok(stack[0].comm_p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_commitments_match_spec() {
        let cases = [
            (64, "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb0b"),
            (128, "3731bb99ac689f66eef5973e4a94da188f4ddcae580724fc6f3fd60dfd488333"),
            (2048, "fc7e928296e516faade986b28f92d44a4f24b935485223376a799027bc18f833"),
            (4096, "08c47b38ee13bc43f41b915c0eed9911a26086b3ed62401bf9d58b8d19dff624"),
        ];
        for (size, hex) in cases {
            assert_eq!(zero_commitment(size).to_hex(), hex, "{size}");
        }
    }

    #[test]
    fn piece_sizes() {
        assert_eq!(unpadded_piece_size(0), 127);
        assert_eq!(unpadded_piece_size(127), 127);
        assert_eq!(unpadded_piece_size(128), 254);
        assert_eq!(unpadded_piece_size(1000), 1016);
        assert_eq!(unpadded_piece_size(1017), 2032);
        assert!(check_unpadded_size(508).is_ok());
        assert!(check_unpadded_size(381).is_err());
        assert!(check_unpadded_size(128).is_err());
    }

    #[test]
    fn short_input_is_zero_padded() {
        let data = vec![5u8; 300];
        let (info, raw) = commit_piece(&data[..], None, None).unwrap();
        assert_eq!((raw, info.padded_size), (300, 512));
        let mut padded = data.clone();
        padded.resize(508, 0);
        let (full, _) = commit_piece(&padded[..], None, None).unwrap();
        assert_eq!(info, full);
    }

    #[test]
    fn lotus_fillers() {
        // 256 then 1024 in a 2 KiB sector: 256, fillers 256+512, 1024, nothing left.
        let placed = place_pieces(&[256, 1024], 2048).unwrap();
        let sizes: Vec<_> = placed.iter().map(|p| (p.offset, p.padded_size, p.source)).collect();
        assert_eq!(sizes, vec![(0, 256, Some(0)), (256, 256, None), (512, 512, None), (1024, 1024, Some(1))]);
        // Remainder fillers, smallest first.
        let placed = place_pieces(&[128], 2048).unwrap();
        let sizes: Vec<_> = placed.iter().map(|p| p.padded_size).collect();
        assert_eq!(sizes, vec![128, 128, 256, 512, 1024]);
        assert!(matches!(place_pieces(&[2048, 128], 2048), Err(Error::PiecesTooLarge { .. })));
        assert!(matches!(place_pieces(&[4096], 2048), Err(Error::PiecesTooLarge { needed: 4096, .. })));
    }

    #[test]
    fn comm_d_of_zero_pieces_is_zero_sector() {
        let pieces: Vec<PieceInfo> =
            place_pieces(&[128], 2048).unwrap().iter().map(|p| PieceInfo::zero(p.padded_size)).collect();
        assert_eq!(comm_d_from_pieces(&pieces, 2048).unwrap(), zero_commitment(2048));
        assert_eq!(comm_d_from_pieces(&[], 2048).unwrap(), zero_commitment(2048));
    }
}
