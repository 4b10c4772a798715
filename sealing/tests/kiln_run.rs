//! README's main command: `kiln run --sector-size 2KiB --pledge 1 --dir DIR`
//! starts a daemon with the embedded chain, pledges, shows progress and exits
//! 0 once the sector is Proving with its proof accepted by the chain. One C2 run.

mod common;

use sealing::lifecycle::{RetryPolicy, SectorState};
use sealing::store::roles::*;
use sealing::store::{SqliteStore, TaskKind, TaskState};

#[test]
fn kiln_run_seals_a_pledged_sector_to_proving() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = common::kiln(tmp.path())
        .args([
            "run",
            "--sector-size",
            "2KiB",
            "--pledge",
            "1",
            "--dir",
            dir.to_str().unwrap(),
            "--param-dir",
        ])
        .arg(common::param_dir())
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", common::stderr(&out));
    for expected in
        ["sector 1: PreCommitting", "sector 1: Committing", "sector 1: Proving", "exit code 0", "proven true"]
    {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(stdout.contains("1 sector(s) Proving, proofs accepted by the chain"), "{stdout}");
    // Not a terminal: plain lines, and the log goes to the data directory, not in between.
    let log = dir.join("kiln.log");
    assert!(stdout.contains(&format!("log: {}", log.display())), "{stdout}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("task started") && logged.contains("daemon started"), "{logged}");
    assert!(!common::stderr(&out).contains(" INFO "), "{}", common::stderr(&out));

    // The database in DIR holds the sector, its full history and the chain.
    let store = SqliteStore::open(&dir.join("kiln.db"), RetryPolicy::default()).unwrap();
    assert_eq!(store.check_replay(1).unwrap().state, SectorState::Proving);
    // With no worker registered, every task (C2 included) ran in the daemon.
    let tasks: Vec<_> =
        store.tasks(Some(1)).unwrap().into_iter().map(|t| (t.kind, t.worker, t.state)).collect();
    assert_eq!(
        tasks,
        [
            (TaskKind::Pc1, None, TaskState::Done),
            (TaskKind::Pc2, None, TaskState::Done),
            (TaskKind::Commit, None, TaskState::Done),
            (TaskKind::Finalize, None, TaskState::Done)
        ]
    );
    assert!(!dir.join("api").exists(), "the daemon stopped");
    // Finalize removed the layers and kept the replica.
    let sector = dir.join("sectors/1");
    assert!(sector.join("sealed").exists());
    assert!(!sector.join("cache/sc-02-data-layer-1.dat").exists());
}
