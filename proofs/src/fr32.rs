//! fr32 padding: 127 raw bytes become 128 bytes of four 254-bit field elements
//! (porep-sdr.md §2).
//!
//! The raw bytes are read as one little-endian bit stream and cut into 254-bit
//! chunks; each chunk is stored in a 32-byte little-endian word whose top two
//! bits are zero. Padding restarts every 127 bytes, so the streaming adapters
//! here hold at most one block and never a whole sector.

use std::io::{self, Read, Write};

/// Raw bytes per padding block.
pub const UNPADDED_BLOCK: usize = 127;
/// Padded bytes per padding block.
pub const PADDED_BLOCK: usize = 128;

/// Bit offset and byte offset of word `k` (0..4) inside a raw block.
#[inline(always)]
fn word_origin(k: usize) -> (usize, u32) {
    let bit = 254 * k;
    (bit / 8, (bit % 8) as u32)
}

/// Pads one 127-byte block into 128 bytes.
pub fn pad_block(raw: &[u8; UNPADDED_BLOCK], out: &mut [u8; PADDED_BLOCK]) {
    for k in 0..4 {
        let (base, shift) = word_origin(k);
        let word = &mut out[32 * k..32 * k + 32];
        for (i, w) in word.iter_mut().enumerate() {
            let lo = raw.get(base + i).copied().unwrap_or(0);
            let hi = raw.get(base + i + 1).copied().unwrap_or(0);
            *w = if shift == 0 { lo } else { (lo >> shift) | (hi << (8 - shift)) };
        }
        word[31] &= 0x3f;
    }
}

/// Unpads one 128-byte block into 127 bytes. Bits 254 and 255 of each word are ignored.
pub fn unpad_block(padded: &[u8; PADDED_BLOCK], out: &mut [u8; UNPADDED_BLOCK]) {
    out.fill(0);
    for k in 0..4 {
        let (base, shift) = word_origin(k);
        for i in 0..32 {
            let mut w = padded[32 * k + i];
            if i == 31 {
                w &= 0x3f;
            }
            if let Some(o) = out.get_mut(base + i) {
                *o |= w << shift;
            }
            if shift != 0 {
                if let Some(o) = out.get_mut(base + i + 1) {
                    *o |= w >> (8 - shift);
                }
            }
        }
    }
}

/// Padded length of `unpadded` raw bytes (the reference's `transform_byte_offset`, rounding up).
pub fn to_padded(unpadded: u64) -> u64 {
    let bits = unpadded * 8;
    (bits / 254 * 256 + bits % 254).div_ceil(8)
}

/// Raw bytes carried by `padded` padded bytes (rounding down).
pub fn to_unpadded(padded: u64) -> u64 {
    let bits = padded * 8;
    (bits / 256 * 254 + bits % 256) / 8
}

/// Pads a raw stream on the fly. A stream that ends inside a 127-byte block is
/// zero-filled to the end of that block, so the output is always whole blocks.
pub struct Fr32Reader<R> {
    inner: R,
    raw: [u8; UNPADDED_BLOCK],
    block: [u8; PADDED_BLOCK],
    pos: usize,
    len: usize,
    raw_bytes: u64,
}

impl<R: Read> Fr32Reader<R> {
    /// Wraps a raw byte stream.
    pub fn new(inner: R) -> Self {
        Self { inner, raw: [0; UNPADDED_BLOCK], block: [0; PADDED_BLOCK], pos: 0, len: 0, raw_bytes: 0 }
    }

    /// Raw bytes consumed from the inner stream so far.
    pub fn raw_bytes_read(&self) -> u64 {
        self.raw_bytes
    }

    fn refill(&mut self) -> io::Result<()> {
        let mut got = 0;
        while got < UNPADDED_BLOCK {
            match self.inner.read(&mut self.raw[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.raw_bytes += got as u64;
        self.pos = 0;
        if got == 0 {
            self.len = 0;
            return Ok(());
        }
        self.raw[got..].fill(0);
        pad_block(&self.raw, &mut self.block);
        self.len = PADDED_BLOCK;
        Ok(())
    }
}

impl<R: Read> Read for Fr32Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos == self.len {
            self.refill()?;
            if self.len == 0 {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpads a padded stream on the fly. Call [`Fr32Writer::finish`] to flush a
/// trailing partial block (which yields `to_unpadded` of its length).
pub struct Fr32Writer<W: Write> {
    inner: W,
    block: [u8; PADDED_BLOCK],
    len: usize,
}

impl<W: Write> Fr32Writer<W> {
    /// Wraps the destination of the raw bytes.
    pub fn new(inner: W) -> Self {
        Self { inner, block: [0; PADDED_BLOCK], len: 0 }
    }

    fn emit(&mut self, take: usize) -> io::Result<()> {
        let mut raw = [0u8; UNPADDED_BLOCK];
        self.block[self.len..].fill(0);
        unpad_block(&self.block, &mut raw);
        self.len = 0;
        self.inner.write_all(&raw[..take])
    }

    /// Writes out a trailing partial block, flushes, and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.len > 0 {
            let take = to_unpadded(self.len as u64) as usize;
            self.emit(take)?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Fr32Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(PADDED_BLOCK - self.len);
        self.block[self.len..self.len + n].copy_from_slice(&buf[..n]);
        self.len += n;
        if self.len == PADDED_BLOCK {
            self.emit(UNPADDED_BLOCK)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pad_all(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Fr32Reader::new(raw).read_to_end(&mut out).unwrap();
        out
    }

    fn unpad_all(padded: &[u8]) -> Vec<u8> {
        let mut w = Fr32Writer::new(Vec::new());
        w.write_all(padded).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn all_ones_block_clears_top_bits_only() {
        let out = pad_all(&[0xff; 127]);
        for k in 0..4 {
            assert!(out[32 * k..32 * k + 31].iter().all(|&b| b == 0xff));
            assert_eq!(out[32 * k + 31], 0x3f);
        }
    }

    #[test]
    fn size_conversions() {
        assert_eq!(to_padded(127), 128);
        assert_eq!(to_padded(127 * 1024), 128 * 1024);
        assert_eq!(to_unpadded(128), 127);
        assert_eq!(to_unpadded(2048), 2032);
        assert_eq!(to_padded(1), 1);
        assert_eq!(to_padded(32), 33);
        assert_eq!(to_unpadded(32), 31);
    }

    #[test]
    fn partial_block_is_zero_filled() {
        let mut raw = vec![0xaau8; 100];
        let out = pad_all(&raw);
        assert_eq!(out.len(), 128);
        raw.resize(127, 0);
        assert_eq!(out, pad_all(&raw));
    }

    #[test]
    fn writer_partial_tail() {
        let raw: Vec<u8> = (0..254u32).map(|i| (i * 31 + 7) as u8).collect();
        let padded = pad_all(&raw);
        // 128 + 64 padded bytes carry 127 + 63 raw bytes
        assert_eq!(unpad_all(&padded[..192]), raw[..190]);
    }

    proptest! {
        #[test]
        fn round_trip(raw in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let padded = pad_all(&raw);
            prop_assert_eq!(padded.len(), raw.len().div_ceil(127) * 128);
            for w in padded.chunks(32) {
                prop_assert_eq!(w[31] & 0xc0, 0);
            }
            let back = unpad_all(&padded);
            prop_assert_eq!(&back[..raw.len()], &raw[..]);
            prop_assert!(back[raw.len()..].iter().all(|&b| b == 0));
        }
    }
}
