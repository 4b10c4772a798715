//! 32-byte values that must never be confused with one another.
//!
//! Each is a newtype over `[u8; 32]` in the byte order the reference prover
//! uses on disk and on the wire (porep-sdr.md §1, §4). Hex forms are plain
//! lowercase hex of those bytes, as the reference vectors print them.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

macro_rules! bytes32 {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Parses 64 hex characters.
            pub fn from_hex(s: &str) -> Result<Self> {
                parse_hex32(s, $what).map(Self)
            }
            /// Lowercase hex of the 32 bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                // Hex in JSON and TOML; the raw 32 bytes in compact binary forms.
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    serde::Serialize::serialize(&self.0, s)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    Self::from_hex(&s).map_err(serde::de::Error::custom)
                } else {
                    <[u8; 32] as serde::Deserialize>::deserialize(d).map(Self)
                }
            }
        }
    };
}

bytes32!(
    /// A commitment: comm_p, comm_d (SHA-256 trunc254 roots) or comm_c, comm_r_last, comm_r
    /// (Poseidon roots, canonical little-endian field elements).
    Commitment,
    "commitment"
);
bytes32!(
    /// The replica id: binds a replica to its prover, sector, ticket, data and proof type.
    ReplicaId,
    "replica id"
);
bytes32!(
    /// The prover id: the miner actor's ID address payload, zero-padded (porep-sdr.md §4.2).
    ProverId,
    "prover id"
);
bytes32!(
    /// Chain randomness: the seal ticket or the interactive seed.
    Randomness,
    "randomness"
);
bytes32!(
    /// The proof-type identifier that seeds the graph (porep-sdr.md §4.1).
    PorepId,
    "porep id"
);

bytes32!(
    /// A node of a merkle tree or a label, as stored on disk.
    Node,
    "tree node"
);

/// Parses exactly 32 bytes of hex, with an optional `0x` prefix.
pub fn parse_hex32(s: &str, what: &'static str) -> Result<[u8; 32]> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    let bytes = hex::decode(s).map_err(|e| Error::InvalidHex { what, reason: e.to_string() })?;
    bytes.try_into().map_err(|b: Vec<u8>| Error::InvalidHex {
        what,
        reason: format!("expected 32 bytes (64 hex characters), got {}", b.len()),
    })
}

impl ProverId {
    /// The prover id of miner actor `f0<actor_id>`: the unsigned LEB128 varint of the id,
    /// zero-padded on the right to 32 bytes (the payload of the miner's ID address).
    pub fn from_actor_id(actor_id: u64) -> Self {
        let mut out = [0u8; 32];
        let mut v = actor_id;
        let mut i = 0;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out[i] = byte;
                break;
            }
            out[i] = byte | 0x80;
            i += 1;
        }
        Self(out)
    }
}

/// Clears the two most significant bits of a little-endian 32-byte value, making it
/// `< 2^254` and so a valid field element (the "trim" of porep-sdr.md §1).
#[inline(always)]
pub fn trim(bytes: &mut [u8; 32]) {
    bytes[31] &= 0x3f;
}

/// `trim(SHA-256(left || right))`: the inner node of the SHA-256 binary trees (tree_d, comm_p).
#[inline]
pub fn sha254_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    let mut out: [u8; 32] = h.finalize().into();
    trim(&mut out);
    out
}

impl ReplicaId {
    /// `replica_id = trim(SHA-256(prover_id || sector_id BE || ticket || comm_d || porep_id))`
    /// (porep-sdr.md §4.3).
    pub fn derive(
        prover_id: &ProverId,
        sector_id: u64,
        ticket: &Randomness,
        comm_d: &Commitment,
        porep_id: &PorepId,
    ) -> Self {
        let mut h = Sha256::new();
        h.update(prover_id.0);
        h.update(sector_id.to_be_bytes());
        h.update(ticket.0);
        h.update(comm_d.0);
        h.update(porep_id.0);
        let mut out: [u8; 32] = h.finalize().into();
        trim(&mut out);
        Self(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prover_id_is_leb128_of_actor_id() {
        assert_eq!(&ProverId::from_actor_id(1000).0[..3], &[0xe8, 0x07, 0x00]);
        assert_eq!(&ProverId::from_actor_id(1).0[..2], &[0x01, 0x00]);
        assert_eq!(&ProverId::from_actor_id(0).0[..2], &[0x00, 0x00]);
        assert_eq!(&ProverId::from_actor_id(128).0[..3], &[0x80, 0x01, 0x00]);
        let max = ProverId::from_actor_id(u64::MAX);
        assert_eq!(&max.0[..10], &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let c = Commitment([7u8; 32]);
        assert_eq!(Commitment::from_hex(&c.to_hex()).unwrap(), c);
        assert_eq!(Commitment::from_hex(&format!("0x{}", c.to_hex())).unwrap(), c);
        assert!(matches!(Commitment::from_hex("abcd"), Err(Error::InvalidHex { .. })));
        assert!(matches!(Commitment::from_hex(&"zz".repeat(32)), Err(Error::InvalidHex { .. })));
    }
}
