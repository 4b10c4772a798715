//! The miner actor's interface (builtin actors v18, network version 28):
//! method numbers, the CBOR parameters of every method kiln calls, and their
//! construction from kiln's values.
//!
//! Only the parameter structs are written here (they mirror
//! `actors/miner/src/types.rs` of builtin-actors, field for field: CBOR tuples
//! have no names, so order is the contract). Everything inside them is the
//! ecosystem's: CIDs (`cid`), commitment CIDs (`fvm_shared::commcid`),
//! addresses, proof types and PoSt proofs (`fvm_shared`), bitfields
//! (`fvm_ipld_bitfield`) and DAG-CBOR (`fvm_ipld_encoding`). Tests decode
//! every message with ChainSafe's v18 types.

use cid::Cid;
use fvm_ipld_bitfield::BitField;
use fvm_ipld_encoding::tuple::*;
use fvm_ipld_encoding::RawBytes;
use fvm_shared::address::Address;
use fvm_shared::commcid;
use fvm_shared::randomness::Randomness as ChainRandomness;
use fvm_shared::sector::{
    PoStProof, RegisteredAggregateProof, RegisteredPoStProof, RegisteredSealProof,
    SectorSize as FvmSectorSize,
};
use proofs::{Commitment, Randomness, SectorSize};

/// Method numbers of the miner actor.
pub mod method {
    /// `SubmitWindowedPoSt`.
    pub const SUBMIT_WINDOWED_POST: u64 = 5;
    /// `DeclareFaults`.
    pub const DECLARE_FAULTS: u64 = 10;
    /// `DeclareFaultsRecovered`.
    pub const DECLARE_FAULTS_RECOVERED: u64 = 11;
    /// `PreCommitSectorBatch2`.
    pub const PRE_COMMIT_SECTOR_BATCH2: u64 = 28;
    /// `ProveCommitSectors3` (single proofs and aggregates alike).
    pub const PROVE_COMMIT_SECTORS3: u64 = 34;
}

/// The miner actor's bounds that sealing plans around (builtin actors v18
/// policy, mainnet and calibnet alike).
pub mod policy {
    /// Epochs per day (30-second epochs).
    pub const EPOCHS_IN_DAY: u64 = 2_880;
    /// Epochs after which the chain cannot reorganise.
    pub const CHAIN_FINALITY: u64 = 900;
    /// The oldest a seal ticket may be when its PreCommit lands.
    pub const MAX_PRE_COMMIT_RANDOMNESS_LOOKBACK: u64 = EPOCHS_IN_DAY + CHAIN_FINALITY;
    /// Epochs from a PreCommit landing to its interactive seed.
    pub const PRE_COMMIT_CHALLENGE_DELAY: u64 = 150;
    /// The longest a PreCommit waits for its ProveCommit (V1_1 proofs).
    pub const MAX_PROVE_COMMIT_DURATION: u64 = 30 * EPOCHS_IN_DAY + PRE_COMMIT_CHALLENGE_DELAY;
    /// The shortest a sector may live past its activation.
    pub const MIN_SECTOR_EXPIRATION: u64 = 180 * EPOCHS_IN_DAY;
    /// The longest a sector may live past the epoch it is committed in.
    pub const MAX_SECTOR_EXPIRATION_EXTENSION: u64 = 1_278 * EPOCHS_IN_DAY;

    /// The sector lifetime, in epochs after its ticket, that the actor
    /// accepts for `days` wanted: at least the minimum past the latest
    /// activation a ticket allows (its lookback plus the prove-commit
    /// duration), at most the maximum extension. Also says whether it clamped.
    pub fn sector_lifetime(days: u64) -> (u64, bool) {
        let min = MIN_SECTOR_EXPIRATION + MAX_PRE_COMMIT_RANDOMNESS_LOOKBACK + MAX_PROVE_COMMIT_DURATION;
        let wanted = days.saturating_mul(EPOCHS_IN_DAY);
        let lifetime = wanted.clamp(min, MAX_SECTOR_EXPIRATION_EXTENSION);
        (lifetime, lifetime != wanted)
    }
}

/// A parameter kiln cannot put in a message.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// A sector number or epoch past what the actor takes.
    #[error("{what} {value} is out of range for the miner actor")]
    OutOfRange {
        /// What it is.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// A commitment that has no CID (never for 32 bytes; kept for the crate's contract).
    #[error("commitment {commitment}: {reason}")]
    Commitment {
        /// The commitment, hex.
        commitment: String,
        /// Why.
        reason: &'static str,
    },
    /// A message with nothing in it.
    #[error("a {0} message needs at least one entry")]
    Empty(&'static str),
    /// The CBOR encoder failed.
    #[error("cannot encode {method}: {reason}")]
    Encoding {
        /// The method.
        method: &'static str,
        /// The encoder's error.
        reason: String,
    },
}

// --- The actor's parameter structs (CBOR tuples, in the actor's field order).

/// `PreCommitSectorBatch2`'s parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct PreCommitSectorBatchParams2 {
    /// The sectors.
    pub sectors: Vec<SectorPreCommitInfo>,
}

/// One sector of a `PreCommitSectorBatch2`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct SectorPreCommitInfo {
    /// The seal proof type.
    pub seal_proof: RegisteredSealProof,
    /// The sector number.
    pub sector_number: u64,
    /// comm_r as a sealed-commitment CID.
    pub sealed_cid: Cid,
    /// The epoch the ticket was drawn at.
    pub seal_rand_epoch: i64,
    /// Market deals (none: kiln declares pieces at ProveCommit, as DDO does).
    pub deal_ids: Vec<u64>,
    /// The epoch the sector expires.
    pub expiration: i64,
    /// comm_d as an unsealed-commitment CID; `None` for a sector of zeros (CC).
    pub unsealed_cid: Option<Cid>,
}

/// `ProveCommitSectors3`'s parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct ProveCommitSectors3Params {
    /// One manifest per sector proven.
    pub sector_activations: Vec<SectorActivationManifest>,
    /// One proof per sector, parallel to the manifests (or none with an aggregate).
    pub sector_proofs: Vec<RawBytes>,
    /// An aggregate of every sector's proof (or empty).
    pub aggregate_proof: RawBytes,
    /// The aggregate's type, with an aggregate only.
    pub aggregate_proof_type: Option<RegisteredAggregateProof>,
    /// Abort the whole message if one sector fails to activate.
    pub require_activation_success: bool,
    /// Abort if a notified actor fails.
    pub require_notification_success: bool,
}

/// A sector proven by `ProveCommitSectors3` and its pieces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct SectorActivationManifest {
    /// The sector number.
    pub sector_number: u64,
    /// Its pieces, in order (none for CC: zeros fill the rest).
    pub pieces: Vec<PieceActivationManifest>,
}

/// One piece of a sector proven by `ProveCommitSectors3`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct PieceActivationManifest {
    /// comm_p as a piece-commitment CID.
    pub cid: Cid,
    /// The padded size.
    pub size: u64,
    /// A verified allocation claimed (FIL+).
    pub verified_allocation_key: Option<VerifiedAllocationKey>,
    /// Actors notified of the activation.
    pub notify: Vec<DataActivationNotification>,
}

/// A verified allocation: client and allocation id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct VerifiedAllocationKey {
    /// The client's actor id.
    pub client: u64,
    /// The allocation's id.
    pub id: u64,
}

/// An actor to notify of a piece's activation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct DataActivationNotification {
    /// The actor.
    pub address: Address,
    /// What it is sent.
    pub payload: RawBytes,
}

/// `SubmitWindowedPoSt`'s parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct SubmitWindowedPoStParams {
    /// The deadline.
    pub deadline: u64,
    /// The partitions proven.
    pub partitions: Vec<PoStPartition>,
    /// One proof per proof type (kiln has one).
    pub proofs: Vec<PoStProof>,
    /// The epoch whose chain the proof commits to.
    pub chain_commit_epoch: i64,
    /// The ticket randomness at `chain_commit_epoch`.
    pub chain_commit_rand: ChainRandomness,
}

/// A partition of a `SubmitWindowedPoSt`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct PoStPartition {
    /// The partition's index in the deadline.
    pub index: u64,
    /// Sectors left out of the proof that were not declared faulty.
    pub skipped: BitField,
}

/// `DeclareFaults`'s parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct DeclareFaultsParams {
    /// Faulty sectors by deadline and partition.
    pub faults: Vec<SectorsDeclaration>,
}

/// `DeclareFaultsRecovered`'s parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct DeclareFaultsRecoveredParams {
    /// Recovered sectors by deadline and partition.
    pub recoveries: Vec<SectorsDeclaration>,
}

/// Sectors of one partition of one deadline (the actor's `FaultDeclaration`
/// and `RecoveryDeclaration`, which are the same tuple).
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct SectorsDeclaration {
    /// The deadline.
    pub deadline: u64,
    /// The partition in it.
    pub partition: u64,
    /// The sectors.
    pub sectors: BitField,
}

// --- From kiln's values.

/// The seal proof type of `size` (Stacked DRG V1_1, the interactive PoRep).
pub fn seal_proof(size: SectorSize) -> RegisteredSealProof {
    RegisteredSealProof::from_sector_size(fvm_size(size), fvm_shared::version::NetworkVersion::V28)
}

/// The Window PoSt proof type of `size` (V1_1).
pub fn window_post_proof(size: SectorSize) -> RegisteredPoStProof {
    match size {
        SectorSize::KiB2 => RegisteredPoStProof::StackedDRGWindow2KiBV1P1,
        SectorSize::MiB8 => RegisteredPoStProof::StackedDRGWindow8MiBV1P1,
        SectorSize::MiB512 => RegisteredPoStProof::StackedDRGWindow512MiBV1P1,
        SectorSize::GiB32 => RegisteredPoStProof::StackedDRGWindow32GiBV1P1,
        SectorSize::GiB64 => RegisteredPoStProof::StackedDRGWindow64GiBV1P1,
    }
}

fn fvm_size(size: SectorSize) -> FvmSectorSize {
    match size {
        SectorSize::KiB2 => FvmSectorSize::_2KiB,
        SectorSize::MiB8 => FvmSectorSize::_8MiB,
        SectorSize::MiB512 => FvmSectorSize::_512MiB,
        SectorSize::GiB32 => FvmSectorSize::_32GiB,
        SectorSize::GiB64 => FvmSectorSize::_64GiB,
    }
}

/// comm_r as the sealed-commitment CID the actor takes.
pub fn sealed_cid(comm_r: &Commitment) -> Result<Cid, ParamsError> {
    commcid::replica_commitment_v1_to_cid(&comm_r.0).map_err(|reason| commitment_error(comm_r, reason))
}

/// comm_d as the unsealed-commitment CID the actor takes.
pub fn unsealed_cid(comm_d: &Commitment) -> Result<Cid, ParamsError> {
    commcid::data_commitment_v1_to_cid(&comm_d.0).map_err(|reason| commitment_error(comm_d, reason))
}

/// comm_p as the piece CID the actor takes.
pub fn piece_cid(comm_p: &Commitment) -> Result<Cid, ParamsError> {
    commcid::piece_commitment_v1_to_cid(&comm_p.0).map_err(|reason| commitment_error(comm_p, reason))
}

fn commitment_error(c: &Commitment, reason: &'static str) -> ParamsError {
    ParamsError::Commitment { commitment: c.to_hex(), reason }
}

/// Sector numbers as the bitfield the actor takes.
pub fn bitfield(sectors: &[u64]) -> Result<BitField, ParamsError> {
    BitField::try_from_bits(sectors.iter().copied()).map_err(|_| ParamsError::OutOfRange {
        what: "sector number",
        value: sectors.iter().copied().max().unwrap_or(0),
    })
}

fn epoch(what: &'static str, value: u64) -> Result<i64, ParamsError> {
    i64::try_from(value).map_err(|_| ParamsError::OutOfRange { what, value })
}

/// One sector to pre-commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreCommitEntry {
    /// The sector number.
    pub sector: u64,
    /// Its size.
    pub sector_size: SectorSize,
    /// Its replica commitment.
    pub comm_r: Commitment,
    /// Its data commitment; `None` for a committed-capacity sector (zeros).
    pub comm_d: Option<Commitment>,
    /// The epoch its ticket was drawn at.
    pub ticket_epoch: u64,
    /// The epoch it expires.
    pub expiration: u64,
}

/// `PreCommitSectorBatch2`'s parameters for `entries`.
pub fn pre_commit_batch(entries: &[PreCommitEntry]) -> Result<PreCommitSectorBatchParams2, ParamsError> {
    if entries.is_empty() {
        return Err(ParamsError::Empty("PreCommitSectorBatch2"));
    }
    let sectors = entries
        .iter()
        .map(|e| {
            Ok(SectorPreCommitInfo {
                seal_proof: seal_proof(e.sector_size),
                sector_number: e.sector,
                sealed_cid: sealed_cid(&e.comm_r)?,
                seal_rand_epoch: epoch("ticket epoch", e.ticket_epoch)?,
                deal_ids: Vec::new(),
                expiration: epoch("expiration", e.expiration)?,
                unsealed_cid: e.comm_d.as_ref().map(unsealed_cid).transpose()?,
            })
        })
        .collect::<Result<_, ParamsError>>()?;
    Ok(PreCommitSectorBatchParams2 { sectors })
}

/// A piece of a sector, as it is declared when the sector is proven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceEntry {
    /// Its commitment.
    pub comm_p: Commitment,
    /// Its padded size.
    pub padded_size: u64,
}

/// One sector to prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProveCommitEntry {
    /// The sector number.
    pub sector: u64,
    /// Its pieces (none for CC).
    pub pieces: Vec<PieceEntry>,
    /// Its Groth16 seal proof.
    pub proof: Vec<u8>,
}

/// `ProveCommitSectors3`'s parameters for `entries`, one proof each. A
/// batch is all or nothing (`require_activation_success`): a sector that
/// cannot activate fails the message, and its receipt names it.
pub fn prove_commit_sectors3(entries: &[ProveCommitEntry]) -> Result<ProveCommitSectors3Params, ParamsError> {
    if entries.is_empty() {
        return Err(ParamsError::Empty("ProveCommitSectors3"));
    }
    let sector_activations = entries
        .iter()
        .map(|e| {
            let pieces = e
                .pieces
                .iter()
                .map(|p| {
                    Ok(PieceActivationManifest {
                        cid: piece_cid(&p.comm_p)?,
                        size: p.padded_size,
                        verified_allocation_key: None,
                        notify: Vec::new(),
                    })
                })
                .collect::<Result<_, ParamsError>>()?;
            Ok(SectorActivationManifest { sector_number: e.sector, pieces })
        })
        .collect::<Result<_, ParamsError>>()?;
    Ok(ProveCommitSectors3Params {
        sector_activations,
        sector_proofs: entries.iter().map(|e| RawBytes::new(e.proof.clone())).collect(),
        aggregate_proof: RawBytes::default(),
        aggregate_proof_type: None,
        require_activation_success: true,
        require_notification_success: true,
    })
}

/// A partition proven in a Window PoSt, with the sectors it skips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionEntry {
    /// The partition's index in its deadline.
    pub index: u64,
    /// Sectors left out (not proven, not already faulty).
    pub skipped: Vec<u64>,
}

/// `SubmitWindowedPoSt`'s parameters: `proof` proves `partitions` of
/// `deadline`, committed to the chain at `chain_commit_epoch`.
pub fn submit_windowed_post(
    deadline: u64,
    partitions: &[PartitionEntry],
    sector_size: SectorSize,
    proof: &[u8],
    chain_commit_epoch: u64,
    chain_commit_rand: &Randomness,
) -> Result<SubmitWindowedPoStParams, ParamsError> {
    if partitions.is_empty() {
        return Err(ParamsError::Empty("SubmitWindowedPoSt"));
    }
    Ok(SubmitWindowedPoStParams {
        deadline,
        partitions: partitions
            .iter()
            .map(|p| Ok(PoStPartition { index: p.index, skipped: bitfield(&p.skipped)? }))
            .collect::<Result<_, ParamsError>>()?,
        proofs: vec![PoStProof { post_proof: window_post_proof(sector_size), proof_bytes: proof.to_vec() }],
        chain_commit_epoch: epoch("chain commit epoch", chain_commit_epoch)?,
        chain_commit_rand: ChainRandomness(chain_commit_rand.0.to_vec()),
    })
}

/// Sectors of one partition of one deadline, for a fault or a recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclarationEntry {
    /// The deadline.
    pub deadline: u64,
    /// The partition.
    pub partition: u64,
    /// The sectors.
    pub sectors: Vec<u64>,
}

fn declarations(
    kind: &'static str,
    entries: &[DeclarationEntry],
) -> Result<Vec<SectorsDeclaration>, ParamsError> {
    if entries.is_empty() {
        return Err(ParamsError::Empty(kind));
    }
    entries
        .iter()
        .map(|e| {
            Ok(SectorsDeclaration {
                deadline: e.deadline,
                partition: e.partition,
                sectors: bitfield(&e.sectors)?,
            })
        })
        .collect()
}

/// `DeclareFaultsRecovered`'s parameters.
pub fn declare_faults_recovered(
    entries: &[DeclarationEntry],
) -> Result<DeclareFaultsRecoveredParams, ParamsError> {
    Ok(DeclareFaultsRecoveredParams { recoveries: declarations("DeclareFaultsRecovered", entries)? })
}

/// `DeclareFaults`'s parameters.
pub fn declare_faults(entries: &[DeclarationEntry]) -> Result<DeclareFaultsParams, ParamsError> {
    Ok(DeclareFaultsParams { faults: declarations("DeclareFaults", entries)? })
}

/// The DAG-CBOR bytes of a method's parameters.
pub fn encode<T: serde::Serialize>(method: &'static str, params: &T) -> Result<Vec<u8>, ParamsError> {
    fvm_ipld_encoding::to_vec(params).map_err(|e| ParamsError::Encoding { method, reason: e.to_string() })
}

#[cfg(test)]
mod tests;
