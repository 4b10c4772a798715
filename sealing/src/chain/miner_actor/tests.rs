//! Every message kind kiln sends, decoded with ChainSafe's v18 miner actor
//! types (an implementation others wrote) to the values kiln meant, and
//! re-encoded by them to the same bytes.

use super::*;
use fil_actor_miner_state::v18 as actor;
use fvm_ipld_encoding::{from_slice, to_vec};
use fvm_shared::commcid::{
    cid_to_data_commitment_v1, cid_to_piece_commitment_v1, cid_to_replica_commitment_v1,
    FIL_COMMITMENT_SEALED, POSEIDON_BLS12_381_A1_FC1,
};
use serde::de::DeserializeOwned;

/// Decodes `bytes` as the actor's `T` and checks that `T` writes the same bytes back.
fn decode<T: DeserializeOwned + serde::Serialize>(bytes: &[u8]) -> T {
    let decoded: T = from_slice(bytes).expect("the actor's type decodes kiln's bytes");
    assert_eq!(to_vec(&decoded).unwrap(), bytes, "the actor's type re-encodes to kiln's bytes");
    decoded
}

fn commitment(n: u8) -> Commitment {
    let mut c = [n; 32];
    c[31] &= 0x3f;
    Commitment(c)
}

fn bits(b: &BitField) -> Vec<u64> {
    b.iter().collect()
}

#[test]
fn method_numbers_are_the_actors() {
    assert_eq!(method::SUBMIT_WINDOWED_POST, actor::Method::SubmitWindowedPoSt as u64);
    assert_eq!(method::DECLARE_FAULTS, actor::Method::DeclareFaults as u64);
    assert_eq!(method::DECLARE_FAULTS_RECOVERED, actor::Method::DeclareFaultsRecovered as u64);
    assert_eq!(method::PRE_COMMIT_SECTOR_BATCH2, actor::Method::PreCommitSectorBatch2 as u64);
    assert_eq!(method::PROVE_COMMIT_SECTORS3, actor::Method::ProveCommitSectors3 as u64);
}

#[test]
fn proof_types_are_the_networks_numbers() {
    for size in SectorSize::ALL {
        assert_eq!(i64::from(seal_proof(size)), expected_seal(size), "{size}");
        assert_eq!(i64::from(window_post_proof(size)), expected_window(size), "{size}");
    }
}

/// V1_1 seal proofs: 2KiB 5, 8MiB 6, 512MiB 7, 32GiB 8, 64GiB 9.
fn expected_seal(s: SectorSize) -> i64 {
    match s {
        SectorSize::KiB2 => 5,
        SectorSize::MiB8 => 6,
        SectorSize::MiB512 => 7,
        SectorSize::GiB32 => 8,
        SectorSize::GiB64 => 9,
    }
}

/// V1_1 Window PoSt proofs: 2KiB 10 … 64GiB 14.
fn expected_window(s: SectorSize) -> i64 {
    expected_seal(s) + 5
}

#[test]
fn commitment_cids_agree_with_fvm_shared_and_the_actors_zero_comm_d() {
    let c = commitment(9);
    let sealed = sealed_cid(&c).unwrap();
    assert_eq!((sealed.codec(), sealed.hash().code()), (FIL_COMMITMENT_SEALED, POSEIDON_BLS12_381_A1_FC1));
    assert_eq!(cid_to_replica_commitment_v1(&sealed).unwrap(), c.0);
    let unsealed = unsealed_cid(&c).unwrap();
    assert!(actor::is_unsealed_sector(&unsealed));
    assert_eq!(cid_to_data_commitment_v1(&unsealed).unwrap(), c.0);
    assert_eq!(cid_to_piece_commitment_v1(&piece_cid(&c).unwrap()).unwrap(), c.0);
    // The actor's own comm_d of an empty sector is kiln's zero commitment.
    for size in SectorSize::ALL {
        let zero = proofs::pieces::zero_commitment(size.bytes());
        let actors = actor::CompactCommD::empty().get_cid(seal_proof(size)).unwrap();
        assert_eq!(actors, unsealed_cid(&zero).unwrap(), "{size}");
    }
}

fn precommit(sector: u64, data: bool) -> PreCommitEntry {
    PreCommitEntry {
        sector,
        sector_size: SectorSize::KiB2,
        comm_r: commitment(sector as u8),
        comm_d: data.then(|| commitment(100 + sector as u8)),
        ticket_epoch: 1_000 + sector,
        expiration: 600_000 + sector,
    }
}

#[test]
fn pre_commit_batches_of_one_and_ten_decode_as_the_actor_reads_them() {
    for entries in [vec![precommit(1, false)], (1..=10).map(|n| precommit(n, n % 2 == 0)).collect()] {
        let bytes = encode("PreCommitSectorBatch2", &pre_commit_batch(&entries).unwrap()).unwrap();
        let decoded: actor::PreCommitSectorBatchParams2 = decode(&bytes);
        assert_eq!(decoded.sectors.len(), entries.len());
        for (got, want) in decoded.sectors.iter().zip(&entries) {
            assert_eq!(got.seal_proof, RegisteredSealProof::StackedDRG2KiBV1P1);
            assert_eq!(got.sector_number, want.sector);
            assert_eq!(cid_to_replica_commitment_v1(&got.sealed_cid).unwrap(), want.comm_r.0);
            assert_eq!(got.seal_rand_epoch, want.ticket_epoch as i64);
            assert!(got.deal_ids.is_empty());
            assert_eq!(got.expiration, want.expiration as i64);
            match want.comm_d {
                None => assert!(got.unsealed_cid.is_zero(), "a CC sector's comm_d is the compact zero"),
                Some(d) => assert_eq!(
                    cid_to_data_commitment_v1(&got.unsealed_cid.unwrap_nonzero_cid()).unwrap(),
                    d.0
                ),
            }
        }
    }
    assert!(matches!(pre_commit_batch(&[]), Err(ParamsError::Empty(_))));
}

#[test]
fn prove_commit_sectors3_with_one_and_several_proofs_decodes_as_the_actor_reads_it() {
    let cc = ProveCommitEntry { sector: 1, pieces: vec![], proof: vec![0xa1; 192] };
    let data = ProveCommitEntry {
        sector: 2,
        pieces: vec![
            PieceEntry { comm_p: commitment(21), padded_size: 1024 },
            PieceEntry { comm_p: commitment(22), padded_size: 512 },
        ],
        proof: vec![0xb2; 192],
    };
    let third = ProveCommitEntry { sector: 3, pieces: vec![], proof: vec![0xc3; 192] };
    for entries in [vec![cc.clone()], vec![cc, data, third]] {
        let bytes = encode("ProveCommitSectors3", &prove_commit_sectors3(&entries).unwrap()).unwrap();
        let decoded: actor::ProveCommitSectors3Params = decode(&bytes);
        assert_eq!(decoded.sector_activations.len(), entries.len());
        assert_eq!(decoded.sector_proofs.len(), entries.len());
        for ((manifest, proof), want) in
            decoded.sector_activations.iter().zip(&decoded.sector_proofs).zip(&entries)
        {
            assert_eq!(manifest.sector_number, want.sector);
            assert_eq!(proof.bytes(), want.proof.as_slice());
            assert_eq!(manifest.pieces.len(), want.pieces.len());
            for (got, piece) in manifest.pieces.iter().zip(&want.pieces) {
                assert_eq!(cid_to_piece_commitment_v1(&got.cid).unwrap(), piece.comm_p.0);
                assert_eq!(got.size.0, piece.padded_size);
                assert!(got.verified_allocation_key.is_none() && got.notify.is_empty());
            }
        }
        assert!(decoded.aggregate_proof.is_empty() && decoded.aggregate_proof_type.is_none());
        assert!(decoded.require_activation_success && decoded.require_notification_success);
    }
}

#[test]
fn submit_windowed_post_with_skipped_sectors_decodes_as_the_actor_reads_it() {
    let rand = Randomness([0x5c; 32]);
    let partitions =
        [PartitionEntry { index: 0, skipped: vec![3, 5] }, PartitionEntry { index: 1, skipped: vec![] }];
    let params = submit_windowed_post(7, &partitions, SectorSize::KiB2, &[0xee; 192], 4_321, &rand).unwrap();
    let decoded: actor::SubmitWindowedPoStParams = decode(&encode("SubmitWindowedPoSt", &params).unwrap());
    assert_eq!(decoded.deadline, 7);
    assert_eq!(decoded.partitions.len(), 2);
    assert_eq!((decoded.partitions[0].index, bits(&decoded.partitions[0].skipped)), (0, vec![3, 5]));
    assert_eq!((decoded.partitions[1].index, bits(&decoded.partitions[1].skipped)), (1, vec![]));
    assert_eq!(decoded.proofs.len(), 1);
    assert_eq!(i64::from(decoded.proofs[0].post_proof), 10, "Window PoSt 2KiB V1_1");
    assert_eq!(decoded.proofs[0].proof_bytes, vec![0xee; 192]);
    assert_eq!(decoded.chain_commit_epoch, 4_321);
    assert_eq!(decoded.chain_commit_rand.0, rand.0.to_vec());
}

#[test]
fn fault_and_recovery_declarations_over_two_deadlines_decode_as_the_actor_reads_them() {
    let entries = [
        DeclarationEntry { deadline: 2, partition: 0, sectors: vec![1, 2, 9] },
        DeclarationEntry { deadline: 31, partition: 1, sectors: vec![4_000] },
    ];
    let recovered: actor::DeclareFaultsRecoveredParams =
        decode(&encode("DeclareFaultsRecovered", &declare_faults_recovered(&entries).unwrap()).unwrap());
    let got: Vec<(u64, u64, Vec<u64>)> =
        recovered.recoveries.iter().map(|r| (r.deadline, r.partition, bits(&r.sectors))).collect();
    assert_eq!(got, [(2, 0, vec![1, 2, 9]), (31, 1, vec![4_000])]);
    let faults: actor::DeclareFaultsParams =
        decode(&encode("DeclareFaults", &declare_faults(&entries).unwrap()).unwrap());
    let got: Vec<(u64, u64, Vec<u64>)> =
        faults.faults.iter().map(|r| (r.deadline, r.partition, bits(&r.sectors))).collect();
    assert_eq!(got, [(2, 0, vec![1, 2, 9]), (31, 1, vec![4_000])]);
    assert!(matches!(declare_faults_recovered(&[]), Err(ParamsError::Empty(_))));
}

#[test]
fn policy_is_the_actors() {
    use fil_actors_shared::v18::runtime::policy_constants as actors;
    assert_eq!(policy::MAX_PRE_COMMIT_RANDOMNESS_LOOKBACK as i64, actors::MAX_PRE_COMMIT_RANDOMNESS_LOOKBACK);
    assert_eq!(policy::PRE_COMMIT_CHALLENGE_DELAY as i64, actors::PRE_COMMIT_CHALLENGE_DELAY);
    assert_eq!(policy::MIN_SECTOR_EXPIRATION as i64, actors::MIN_SECTOR_EXPIRATION);
    assert_eq!(policy::MAX_SECTOR_EXPIRATION_EXTENSION as i64, actors::MAX_SECTOR_EXPIRATION_EXTENSION);
    let duration = fil_actor_miner_state::v18::max_prove_commit_duration(
        &fil_actors_shared::v18::runtime::Policy::default(),
        RegisteredSealProof::StackedDRG32GiBV1P1,
    )
    .unwrap();
    assert_eq!(policy::MAX_PROVE_COMMIT_DURATION as i64, duration);
    assert_eq!(policy::sector_lifetime(540), (540 * policy::EPOCHS_IN_DAY, false));
    assert_eq!(policy::sector_lifetime(5_000), (policy::MAX_SECTOR_EXPIRATION_EXTENSION, true));
    let (short, clamped) = policy::sector_lifetime(1);
    assert!(clamped && short > policy::MIN_SECTOR_EXPIRATION + policy::MAX_PROVE_COMMIT_DURATION);
}

#[test]
fn exit_code_names_are_for_the_fvms_codes() {
    use crate::chain::exit_code_name;
    use fvm_shared::error::ExitCode;
    for (code, name) in [
        (ExitCode::SYS_INSUFFICIENT_FUNDS, "SysErrInsufficientFunds"),
        (ExitCode::SYS_OUT_OF_GAS, "SysErrOutOfGas"),
        (ExitCode::USR_ILLEGAL_ARGUMENT, "ErrIllegalArgument"),
        (ExitCode::USR_NOT_FOUND, "ErrNotFound"),
        (ExitCode::USR_FORBIDDEN, "ErrForbidden"),
        (ExitCode::USR_INSUFFICIENT_FUNDS, "ErrInsufficientFunds"),
        (ExitCode::USR_ILLEGAL_STATE, "ErrIllegalState"),
        (ExitCode::USR_SERIALIZATION, "ErrSerialization"),
    ] {
        assert_eq!(exit_code_name(code.value() as i64), Some(name));
    }
    assert_eq!(exit_code_name(3), None);
}
