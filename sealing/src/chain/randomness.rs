//! Chain randomness as Filecoin draws it, for every backend.
//!
//! The chain gives a 32-byte digest per epoch from one of two sources (the
//! tickets of its blocks, or the drand beacon); an actor turns it into
//! randomness for one purpose with a domain-separation tag and entropy:
//! `blake2b-256(tag as i64 BE ‖ digest ‖ epoch as i64 BE ‖ entropy)`.
//! [`RandomnessKind`] names each purpose kiln uses with the source, tag and
//! entropy the miner actor uses for it, so the embedded chain (which draws
//! with [`draw`] over its own digests) and a Lotus node (asked with
//! `StateGetRandomnessFromTickets`/`…FromBeacon`) answer the same question.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use fvm_shared::address::Address;
use proofs::Randomness;

/// Filecoin's domain-separation tags (the actors' `DomainSeparationTag`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum DomainTag {
    /// A block's ticket.
    TicketProduction = 1,
    /// A block's election proof.
    ElectionProofProduction = 2,
    /// A Winning PoSt's challenge.
    WinningPoStChallengeSeed = 3,
    /// A Window PoSt's challenge.
    WindowedPoStChallengeSeed = 4,
    /// A seal's ticket.
    SealRandomness = 5,
    /// A seal's interactive seed.
    InteractiveSealChallengeSeed = 6,
    /// Which deadline a new sector goes to.
    WindowPoStDeadlineAssignment = 7,
    /// The market actor's cron.
    MarketDealCronSeed = 8,
    /// The chain a Window PoSt commits to (`chain_commit_rand`).
    PoStChainCommit = 9,
}

/// Where a chain's per-epoch digest comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandomnessSource {
    /// The tickets of the chain's blocks (`StateGetRandomnessFromTickets`).
    Tickets,
    /// The drand beacon (`StateGetRandomnessFromBeacon`).
    Beacon,
}

/// The kinds of chain randomness sealing and proving use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandomnessKind {
    /// The seal ticket (drawn before PC1).
    Ticket,
    /// The interactive seed (drawn after the PreCommit lands).
    Seed,
    /// A deadline's Window PoSt challenge.
    WindowPost,
    /// A won election's Winning PoSt challenge.
    WinningPost,
    /// The chain a Window PoSt commits to (`chain_commit_rand`).
    ChainCommit,
}

impl RandomnessKind {
    /// The tag the miner actor draws it with.
    pub fn tag(self) -> DomainTag {
        match self {
            Self::Ticket => DomainTag::SealRandomness,
            Self::Seed => DomainTag::InteractiveSealChallengeSeed,
            Self::WindowPost => DomainTag::WindowedPoStChallengeSeed,
            Self::WinningPost => DomainTag::WinningPoStChallengeSeed,
            Self::ChainCommit => DomainTag::PoStChainCommit,
        }
    }

    /// The source the miner actor draws it from.
    pub fn source(self) -> RandomnessSource {
        match self {
            Self::Ticket | Self::ChainCommit => RandomnessSource::Tickets,
            Self::Seed | Self::WindowPost | Self::WinningPost => RandomnessSource::Beacon,
        }
    }

    /// The entropy the miner actor draws it with: the CBOR of the miner's
    /// address, except for the chain commitment, which has none.
    pub fn entropy(self, miner_id: u64) -> Vec<u8> {
        match self {
            Self::ChainCommit => Vec::new(),
            _ => miner_entropy(miner_id),
        }
    }
}

/// The CBOR encoding of miner `f0<miner_id>`'s address: the entropy of every
/// miner-specific draw.
pub fn miner_entropy(miner_id: u64) -> Vec<u8> {
    fvm_ipld_encoding::to_vec(&Address::new_id(miner_id))
        .expect("an ID address always encodes (a byte string of at most 11 bytes)")
}

/// Filecoin's draw: randomness for `tag` at `epoch` from the chain's digest
/// of that epoch and `entropy`.
pub fn draw(tag: DomainTag, digest: &[u8; 32], epoch: i64, entropy: &[u8]) -> Randomness {
    let out = Blake2b::<U32>::new()
        .chain_update((tag as i64).to_be_bytes())
        .chain_update(digest)
        .chain_update(epoch.to_be_bytes())
        .chain_update(entropy)
        .finalize();
    Randomness(out.into())
}

/// The digest a chain keeps for an epoch: blake2b-256 of its ticket's VRF
/// proof or of its beacon entry's signature.
pub fn digest_of(bytes: &[u8]) -> [u8; 32] {
    Blake2b::<U32>::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_hashes_tag_digest_epoch_and_entropy_in_filecoins_layout() {
        let digest = [7u8; 32];
        let entropy = miner_entropy(1000);
        // f01000: a CBOR byte string (0x43) of protocol 0 and LEB128(1000) = e8 07.
        assert_eq!(entropy, [0x43, 0x00, 0xe8, 0x07]);
        let mut preimage = Vec::new();
        preimage.extend_from_slice(&5i64.to_be_bytes());
        preimage.extend_from_slice(&digest);
        preimage.extend_from_slice(&1234i64.to_be_bytes());
        preimage.extend_from_slice(&entropy);
        // An independent BLAKE2b (blake2b_simd, the one fvm_shared hashes with).
        let expected = blake2b_simd::Params::new().hash_length(32).hash(&preimage);
        let drawn = draw(DomainTag::SealRandomness, &digest, 1234, &entropy);
        assert_eq!(drawn.0.as_slice(), expected.as_bytes());
        assert_eq!(
            digest_of(b"x").as_slice(),
            blake2b_simd::Params::new().hash_length(32).hash(b"x").as_bytes()
        );
    }

    #[test]
    fn every_kind_uses_the_actors_tag_source_and_entropy() {
        use RandomnessKind::*;
        let tags: Vec<i64> =
            [Ticket, Seed, WindowPost, WinningPost, ChainCommit].iter().map(|k| k.tag() as i64).collect();
        // The actors' own numbering (ChainSafe's v18 types).
        use fil_actors_shared::v18::runtime::DomainSeparationTag as Actors;
        let actors: Vec<i64> = [
            Actors::SealRandomness,
            Actors::InteractiveSealChallengeSeed,
            Actors::WindowedPoStChallengeSeed,
            Actors::WinningPoStChallengeSeed,
            Actors::PoStChainCommit,
        ]
        .iter()
        .map(|t| *t as i64)
        .collect();
        assert_eq!(tags, actors);
        assert_eq!(Ticket.source(), RandomnessSource::Tickets);
        assert_eq!(ChainCommit.source(), RandomnessSource::Tickets);
        assert_eq!(Seed.source(), RandomnessSource::Beacon);
        assert_eq!(WindowPost.source(), RandomnessSource::Beacon);
        assert!(ChainCommit.entropy(1000).is_empty());
        assert_eq!(Seed.entropy(1000), miner_entropy(1000));
    }
}
