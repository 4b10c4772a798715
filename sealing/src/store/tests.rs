//! The store against a temporary database.

use super::*;
use SectorEvent as E;

fn store(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("kiln.db"), RetryPolicy { max_attempts: 2, ..Default::default() }).unwrap()
}

#[test]
fn events_persist_across_reopen_and_replay_to_the_row() {
    let tmp = tempfile::tempdir().unwrap();
    let n = {
        let mut s = store(tmp.path());
        let n = s.create_sector(SectorSize::KiB2, true, 1_000).unwrap();
        s.apply(n, &E::StartSealing, 1_001).unwrap();
        s.apply(
            n,
            &E::PreCommitted2 { comm_d: Commitment([0xdd; 32]), comm_r: Commitment([0xee; 32]) },
            1_002,
        )
        .unwrap();
        s.apply(n, &E::PreCommitSent { message: MessageId::from(1) }, 1_003).unwrap();
        n
    };
    let mut s = store(tmp.path());
    let row = s.sector(n).unwrap().unwrap();
    assert_eq!(row.lifecycle.state, SectorState::PreCommitting);
    assert_eq!((row.comm_d, row.precommit_message), (Some(Commitment([0xdd; 32])), Some(MessageId::from(1))));
    assert_eq!(row.updated_ms, 1_003);
    let log = s.events(n).unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(log[2].state, SectorState::PreCommitting);
    assert_eq!(s.check_replay(n).unwrap(), row.lifecycle);

    // A refused event records nothing.
    let err = s.apply(n, &E::Finalized, 2_000).unwrap_err();
    assert!(err.to_string().contains("event Finalized is not valid in state PreCommitting"), "{err}");
    assert_eq!(s.events(n).unwrap().len(), 3);
    assert_eq!(s.sector(n).unwrap().unwrap().updated_ms, 1_003);

    // Failures count, record the error, and give up at the cap.
    s.apply(
        n,
        &E::StepFailed { error: "chain down".into(), disposition: crate::lifecycle::Disposition::Temporary },
        2_001,
    )
    .unwrap();
    s.apply(n, &E::Retry, 2_002).unwrap();
    let row = s
        .apply(
            n,
            &E::StepFailed {
                error: "still down".into(),
                disposition: crate::lifecycle::Disposition::Temporary,
            },
            2_003,
        )
        .unwrap();
    assert_eq!(row.lifecycle, Lifecycle { state: SectorState::Failed, attempts: 2 });
    assert_eq!(row.last_error.as_deref(), Some("still down"));
    assert_eq!(s.check_replay(n).unwrap().state, SectorState::Failed);
}

#[test]
fn sector_numbers_are_never_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path());
    let a = s.create_sector(SectorSize::KiB2, true, 0).unwrap();
    let b = s.create_sector(SectorSize::KiB2, true, 0).unwrap();
    s.apply(b, &E::Remove, 1).unwrap();
    s.apply(b, &E::RemoveDone, 2).unwrap();
    drop(s);
    let mut s = store(tmp.path());
    let c = s.create_sector(SectorSize::MiB8, false, 3).unwrap();
    assert_eq!((a, b, c), (1, 2, 3));
    assert_eq!(s.sectors().unwrap().len(), 3);
    assert_eq!(s.sector(c).unwrap().unwrap().sector_size, SectorSize::MiB8);
}

#[test]
fn unknown_sectors_and_foreign_files_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = store(tmp.path());
    assert!(matches!(s.apply(42, &E::StartSealing, 0), Err(StoreError::UnknownSector(42))));
    assert!(matches!(s.events(42), Err(StoreError::UnknownSector(42))));
    assert_eq!(s.sector(42).unwrap(), None);
    drop(s);
    let junk = tmp.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database, it is a text file of some length......").unwrap();
    let err = SqliteStore::open(&junk, RetryPolicy::default()).err().expect("refused");
    assert!(err.to_string().contains("junk.db"), "{err}");
}

#[test]
fn active_sectors_leave_out_proving_and_terminal_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(dir.path());
    let a = s.create_sector(SectorSize::KiB2, true, 0).unwrap();
    let b = s.create_sector(SectorSize::KiB2, true, 0).unwrap();
    s.apply(b, &E::Remove, 1).unwrap();
    s.apply(b, &E::RemoveDone, 2).unwrap();
    let active: Vec<u64> = s.active_sectors().unwrap().iter().map(|r| r.number).collect();
    assert_eq!(active, [a]);
}

#[test]
fn tasks_record_how_long_their_sector_waited_and_schema_3_gains_the_column() {
    let tmp = tempfile::tempdir().unwrap();
    let old_task = {
        let mut s = store(tmp.path());
        let n = s.create_sector(SectorSize::KiB2, true, 1_000).unwrap();
        s.apply(n, &E::StartSealing, 1_500).unwrap();
        let id = s.start_task(Some(n), TaskKind::Pc1, None, None, 4_000).unwrap();
        assert_eq!(s.task(id).unwrap().unwrap().queued_ms, Some(2_500), "waited since StartSealing");
        // The database as schema 3 left it: no queued time.
        s.conn
            .execute_batch(
                "UPDATE tasks SET kind = 'pre_commit';
                 ALTER TABLE tasks DROP COLUMN result_path; ALTER TABLE tasks DROP COLUMN result_len;
                 ALTER TABLE tasks ADD COLUMN result BLOB;
                 DROP INDEX tasks_by_owner; ALTER TABLE tasks DROP COLUMN owner;
                 ALTER TABLE tasks DROP COLUMN queued_ms; ALTER TABLE workers DROP COLUMN failures;
                 ALTER TABLE workers DROP COLUMN benched_until_ms; ALTER TABLE workers DROP COLUMN bench_reason;
                 DROP INDEX post_runs_awaiting;
                 ALTER TABLE post_runs DROP COLUMN exit_code; ALTER TABLE post_runs DROP COLUMN receipt_error;
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        id
    };
    let mut s = store(tmp.path());
    assert_eq!(s.task(old_task).unwrap().unwrap().queued_ms, None, "old records have none");
    let id = s.start_task(Some(1), TaskKind::Pc1, None, None, 5_000).unwrap();
    assert_eq!(s.task(id).unwrap().unwrap().queued_ms, Some(3_500));
    let counts = s.sector_counts().unwrap();
    assert_eq!(counts, vec![(SectorState::Unsealed, 1)]);
    // Schema 5's columns came with the migration: workers' charges, runs' receipts.
    s.create_worker_token("w", "h", "k", 1).unwrap();
    s.register_worker("w", "i", "http://w", &Default::default(), 1).unwrap();
    assert_eq!(s.charge_worker("w", "x", 2).unwrap(), None);
    assert_eq!(s.workers().unwrap()[0].failures, 1);
    assert!(s.runs_awaiting_receipt().unwrap().is_empty());
    // Schema 6's: tasks from before owners are the one-box node's.
    assert_eq!(s.task(old_task).unwrap().unwrap().owner, DEFAULT_NODE);
    // Schema 7's: a pre-commit task of before (PC1 and PC2 in one) is recorded as PC1.
    assert_eq!(s.task(old_task).unwrap().unwrap().kind, TaskKind::Pc1);
}

#[test]
fn schema_8_keeps_results_in_files_and_never_reuses_task_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let (judged, waiting, failed) = {
        let mut s = store(tmp.path());
        let n = s.create_sector(SectorSize::KiB2, true, 1_000).unwrap();
        let ids: Vec<u64> = (0..4)
            .map(|i| s.start_task(Some(n), TaskKind::Commit, Some("w"), None, 2_000 + i).unwrap())
            .collect();
        // The database as schema 7 left it: results in the row, every task of a sector.
        s.conn
            .execute_batch(&format!(
                "ALTER TABLE tasks DROP COLUMN result_path; ALTER TABLE tasks DROP COLUMN result_len;
                 ALTER TABLE tasks ADD COLUMN result BLOB;
                 UPDATE tasks SET state = 'done', result = x'0102' WHERE id = {};
                 UPDATE tasks SET state = 'reported', result = x'0304' WHERE id = {};
                 UPDATE tasks SET state = 'reported', error = 'out of memory' WHERE id = {};
                 DELETE FROM tasks WHERE id = {};
                 PRAGMA user_version = 7;",
                ids[0], ids[1], ids[2], ids[3]
            ))
            .unwrap();
        (ids[0], ids[1], ids[2])
    };
    let mut s = store(tmp.path());
    let row = |s: &SqliteStore, id| s.task(id).unwrap().unwrap();
    assert_eq!((row(&s, judged).state, row(&s, judged).result_bytes), (TaskState::Done, Some(2)));
    // A result delivered but not judged was in the row: given up, the task runs again.
    let given_up = row(&s, waiting);
    assert_eq!(given_up.state, TaskState::Expired);
    assert!(given_up.error.unwrap().contains("schema 8"));
    assert_eq!(s.task_result(waiting).unwrap(), None);
    // A reported failure stays to be judged.
    assert_eq!(
        (row(&s, failed).state, row(&s, failed).error.as_deref()),
        (TaskState::Reported, Some("out of memory"))
    );
    // The highest id was pruned before the migration: still not reused.
    let next = s.start_task(None, TaskKind::WindowPost, Some("w"), Some(10), 3_000).unwrap();
    assert_eq!(next, failed + 2, "ids go on after the pruned one");
    assert_eq!(row(&s, next).sector, None);
}
