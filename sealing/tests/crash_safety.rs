//! Crash safety on real proofs: `kiln daemon` is killed with SIGKILL in every
//! state of a pledged 2KiB sector's life, at the points where a crash is most
//! likely to lose or duplicate work (between a side effect and the event that
//! records it), and once from outside in the middle of C2. After each kill it
//! is restarted on the same data directory. The sector must reach Proving with
//! exactly one PreCommit and one ProveCommit on the chain, PC1 must keep the
//! layer finished before its crash, and a proof finished before a crash must
//! be reused. The driver is also made to panic once (the daemon must exit
//! non-zero and a restart go on) and a task thread once (the task is retried).
//! Crash points are fail points (`sealing::failpoints`), armed through
//! `FAILPOINTS` in test builds only. One full C2 run, plus one cut short.

mod common;

use common::{client, crash_at, daemon_config, start_daemon};
use sealing::api::client::Client;
use sealing::chain::Message;
use sealing::lifecycle::{RetryPolicy, SectorState};
use sealing::store::roles::*;
use sealing::store::{SectorRow, SqliteStore};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

fn sector(data: &Path) -> SectorRow {
    let store = SqliteStore::open(&data.join("kiln.db"), RetryPolicy::default()).unwrap();
    store.check_replay(1).unwrap();
    store.sector(1).unwrap().expect("sector 1 is never lost")
}

/// Waits for a daemon armed with a crash point to kill itself.
fn wait_killed(mut daemon: Child, point: &str, log: &Path) {
    let start = Instant::now();
    loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            assert_eq!(
                status.signal(),
                Some(9),
                "{point}: expected SIGKILL, got {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        if start.elapsed() > Duration::from_secs(600) {
            let _ = daemon.kill();
            panic!("{point} never reached: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_in_every_state_loses_nothing_and_sends_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = daemon_config(
        &data,
        true,
        "[chain]\nblock_time_ms = 500\nseed_delay = 2\n[retry]\nbase_backoff_ms = 200\n",
    );
    let log = |run: &str| tmp.path().join(format!("{run}.log"));
    let read_log = |run: &str| std::fs::read_to_string(log(run)).unwrap();

    // Killed before the pledged sector starts sealing.
    let daemon = start_daemon(&config, &data, Some(&crash_at("packing:before-start")), &log("packing"));
    let out = client(&data, &["sectors", "pledge", "--count", "1"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    wait_killed(daemon, "packing", &log("packing"));
    assert_eq!(sector(&data).lifecycle.state, SectorState::Packing);

    // A panic in the driver stops the daemon with a non-zero exit and a clear
    // line (a supervisor restarts it); nothing is lost.
    let mut daemon = start_daemon(&config, &data, Some("driver:tick=panic"), &log("driver-panic"));
    let status = daemon.wait().unwrap();
    let text = read_log("driver-panic");
    assert_eq!(status.code(), Some(1), "{status}: {text}");
    assert!(text.contains("the driver stopped") && text.contains("panicked"), "{text}");
    assert_eq!(sector(&data).lifecycle.state, SectorState::Packing);

    // (crash point, the state after it, the run's log)
    let steps = [
        ("pc1:mid-labeling", SectorState::Unsealed, "pc1:mid-labeling"),
        ("precommit:sent-unrecorded", SectorState::PreCommitting, "precommit:sent-unrecorded"),
        // The chain executes the PreCommit and dies before its receipt: the
        // effect goes with it (one transaction), so it executes once, with exit 0.
        ("chain:executed-unrecorded", SectorState::PreCommitting, "chain-precommit"),
        ("precommitted:waiting-seed", SectorState::PreCommitted, "precommitted:waiting-seed"),
    ];
    for (point, state, run) in steps {
        let daemon = start_daemon(&config, &data, Some(&crash_at(point)), &log(run));
        wait_killed(daemon, point, &log(run));
        assert_eq!(sector(&data).lifecycle.state, state, "after {point}");
    }
    // PC1 resumed from the recorded layer instead of labeling from scratch.
    assert!(read_log("precommit:sent-unrecorded").contains("PC1 resumed"));
    assert!(read_log("precommit:sent-unrecorded").contains("kept=[1]"));
    // The PreCommit sent before the last crash but never recorded is adopted.
    assert_eq!(sector(&data).precommit_message, Some(sealing::chain::MessageId::from(1)));
    // (By the run that found it: the chain may have crashed before or after.)
    let adopted = |runs: &[&str]| runs.iter().any(|r| read_log(r).contains("adopting the message"));
    assert!(adopted(&["chain-precommit", "precommitted:waiting-seed"]), "{}", read_log("chain-precommit"));

    // Killed from outside in the middle of C2.
    let mut daemon = start_daemon(&config, &data, None, &log("c2"));
    let start = Instant::now();
    while !read_log("c2").contains("circuit synthesised") {
        assert!(start.elapsed() < Duration::from_secs(300), "C2 never started: {}", read_log("c2"));
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.kill().unwrap();
    assert_eq!(daemon.wait().unwrap().signal(), Some(9));
    assert_eq!(sector(&data).lifecycle.state, SectorState::Committing);

    let steps = [
        ("commit:proof-written-unrecorded", SectorState::Committing, "commit:proof-written-unrecorded"),
        ("provecommit:sent-unrecorded", SectorState::CommitWait, "provecommit:sent-unrecorded"),
        ("chain:executed-unrecorded", SectorState::CommitWait, "chain-provecommit"),
        ("finalize:done-unrecorded", SectorState::FinalizeSector, "finalize:done-unrecorded"),
    ];
    for (point, state, run) in steps {
        let daemon = start_daemon(&config, &data, Some(&crash_at(point)), &log(run));
        wait_killed(daemon, point, &log(run));
        assert_eq!(sector(&data).lifecycle.state, state, "after {point}");
    }
    // The proof written before the crash was reused, not recomputed.
    let after_proof = read_log("provecommit:sent-unrecorded");
    assert!(after_proof.contains("reusing the proof"), "{after_proof}");
    assert!(!after_proof.contains("circuit synthesised"), "C2 ran again");
    assert!(adopted(&["chain-provecommit", "finalize:done-unrecorded"]), "{}", read_log("chain-provecommit"));

    // A last start reaches Proving, although its first task thread (finalize) panics:
    // the task fails, is retried, and the daemon goes on.
    let mut daemon = start_daemon(&config, &data, Some("task:run=1*panic"), &log("final"));
    let api = Client::from_repo(&data).unwrap();
    let start = Instant::now();
    while api.sector(1).unwrap().sector.lifecycle.state != SectorState::Proving {
        assert!(start.elapsed() < Duration::from_secs(120), "stuck: {}", read_log("final"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = api.sector(1).unwrap();
    assert!(status.on_chain.unwrap().proven);
    let messages = api.chain_messages().unwrap();
    let precommits =
        messages.iter().filter(|m| matches!(m.message, Message::PreCommitSectors { .. })).count();
    let proves = messages.iter().filter(|m| matches!(m.message, Message::ProveCommitSectors { .. })).count();
    assert_eq!((precommits, proves), (1, 1), "{messages:?}");
    // Every sealing message landed (the prover's PoSt messages may be in flight).
    let sealing = messages.iter().filter(|m| !m.message.sectors().is_empty());
    assert!(
        sealing.clone().count() == 2
            && sealing.into_iter().all(|m| m.receipt.as_ref().is_some_and(|r| r.exit_code == 0))
    );
    assert_eq!(api.sectors().unwrap().len(), 1);
    let events: Vec<String> = status.events.iter().map(|e| e.name().to_string()).collect();
    let failed = status.events.iter().find(|e| e.name() == "StepFailed").expect("the panicked task failed");
    assert!(failed.field("error").unwrap().contains("panicked"), "{events:?}");
    assert_eq!(failed.state, SectorState::FinalizeFailed);
    daemon.kill().unwrap();
    let _ = daemon.wait();
    assert_eq!(sector(&data).lifecycle.state, SectorState::Proving);
}

/// A PC1 batch of two sectors killed mid-layer (`limits.pc1_batch = 2`): after the
/// restart both sectors resume in a batch again, each keeping its recorded layer 1,
/// and both get through PC2 to their PreCommit. No C2.
#[test]
fn sigkill_during_a_pc1_batch_resumes_each_sector() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = daemon_config(&data, false, "[limits]\npc1_batch = 2\n");
    let log = |run: &str| tmp.path().join(format!("{run}.log"));
    let read_log = |run: &str| std::fs::read_to_string(log(run)).unwrap();

    let daemon = start_daemon(&config, &data, Some(&crash_at("pc1:mid-labeling")), &log("crash"));
    let out = client(&data, &["sectors", "pledge", "--count", "2"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    wait_killed(daemon, "pc1:mid-labeling", &log("crash"));
    assert!(read_log("crash").contains("sectors=[1, 2]"), "one batch: {}", read_log("crash"));
    let store = || SqliteStore::open(&data.join("kiln.db"), RetryPolicy::default()).unwrap();
    for n in [1, 2] {
        assert_eq!(store().sector(n).unwrap().unwrap().lifecycle.state, SectorState::Unsealed);
        let record = data.join(format!("sectors/{n}/cache/pc1-layers.json"));
        let text = std::fs::read_to_string(&record).unwrap();
        assert!(text.contains("\"layer\": 1") && !text.contains("\"layer\": 2"), "sector {n}: {text}");
    }

    let mut daemon = start_daemon(&config, &data, None, &log("resume"));
    let start = Instant::now();
    let past_pc = |n| {
        let state = store().sector(n).unwrap().unwrap().lifecycle.state;
        !matches!(state, SectorState::Unsealed | SectorState::Labeled)
    };
    while !(past_pc(1) && past_pc(2)) {
        assert!(start.elapsed() < Duration::from_secs(120), "stuck: {}", read_log("resume"));
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.kill().unwrap();
    let _ = daemon.wait();
    let resumed = read_log("resume");
    assert!(resumed.contains("sectors=[1, 2]"), "resumed as one batch: {resumed}");
    assert_eq!(resumed.matches("PC1 resumed").count(), 2, "{resumed}");
    assert_eq!(resumed.matches("kept=[1]").count(), 2, "{resumed}");
    for n in [1, 2] {
        store().check_replay(n).unwrap();
        assert!(store().sector(n).unwrap().unwrap().comm_r.is_some(), "sector {n} has its comm_r");
    }
}
