//! Window PoSt SNARKs on a worker: one 2KiB sector sealed by the daemon (one
//! C2), then a worker that takes only `wdpost` proves its Window PoSts from
//! the vanilla proofs the daemon sends (the sector's files stay on the
//! daemon), each checked by the daemon and accepted by the chain. With the
//! worker gone, the daemon proves the next windows itself, in time.

mod worker_common;

use std::time::Duration;
use wire::worker::RemoteTask;
use worker::WorkerConfig;
use worker_common::*;

#[test]
fn a_worker_proves_window_posts_and_the_daemon_falls_back_when_it_leaves() {
    capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path(), true, 1);
    // Two deadlines of 12 epochs of 300 ms: a window every 3.6 s.
    config.chain.deadlines = 2;
    config.chain.deadline_window = 12;
    config.proving.winning = false;
    config.proving.remote_timeout_ms = 3_000;
    let daemon = start_daemon(&config);
    let miner = format!("http://{}", config.api.listen);
    let token = worker_token(&config, "w1");
    let w1 = Worker::start(WorkerConfig {
        tasks: vec![RemoteTask::WindowPost],
        ..worker_config(&miner, &token, &param_dir())
    });
    wait_online(&config, "w1");
    let sectors = client(&config).pledge(1).unwrap().sectors;
    wait_proving(&config, &sectors, Duration::from_secs(600));
    assert!(commit_tasks(&config, 1).iter().all(|(w, _)| w.is_none()), "C2 ran here: w1 takes only wdpost");

    let runs = |prover: &str| {
        let runs = daemon.ledger().store().post_runs(100).unwrap();
        runs.into_iter().filter(|r| r.prover == prover && r.message.is_some() && r.error.is_none()).count()
    };
    let on_w1 = || (runs("w1") >= 2).then_some(());
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(Duration::from_secs(60), "w1", on_w1)
    }))
    .is_err()
    {
        panic!("no two Window PoSts proved on w1: {:#?}", log_lines(&["Window PoSt"]));
    }
    w1.stop().unwrap();
    let before = runs("local");
    wait_for(Duration::from_secs(60), "two Window PoSts proved here after w1 left", || {
        (runs("local") >= before + 2).then_some(())
    });

    // Every Window PoSt sent was accepted, none twice, no window missed.
    let api = client(&config);
    let mut windows = std::collections::HashSet::new();
    for m in api.chain_messages().unwrap() {
        if let sealing::chain::Message::SubmitWindowedPoSt { open_epoch, partition, .. } = &m.message {
            assert!(windows.insert((*open_epoch, *partition)), "sent twice: {m:?}");
            // Landed, or sent in this very epoch.
            assert!(matches!(m.receipt.as_ref().map(|r| r.exit_code), None | Some(0)), "{m:?}");
        }
    }
    let events = api.faults().unwrap().events;
    assert!(events.iter().all(|e| !e.why.contains("missed")), "{events:?}");
    assert!(api.workers().unwrap().iter().all(|w| w.unhealthy.is_none()));
    daemon.stop();
}
