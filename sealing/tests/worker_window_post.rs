//! Window PoSt SNARKs on a worker: one 2KiB sector sealed by the daemon (one
//! C2), then a worker that takes only `wdpost` proves its Window PoSts from
//! the vanilla proofs the daemon sends (the sector's files stay on the
//! daemon), each checked by the daemon and accepted by the chain. With the
//! worker gone, the daemon proves the next windows itself, in time. A worker
//! whose prover hangs is waited for only as long as the window allows (the
//! timeout is longer than a window), charged, benched, and then not asked.

mod worker_common;

use std::time::Duration;
use wire::api::{TaskKind, TaskState, TaskView, WorkerState};
use wire::worker::RemoteTask;
use worker::WorkerConfig;
use worker_common::*;

#[test]
fn a_worker_proves_window_posts_and_the_daemon_falls_back_when_it_leaves() {
    capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path(), true, 1);
    // Two deadlines of 40 epochs of 300 ms: a window every 12 s (room to wait
    // for a hung worker and still prove here in time).
    config.chain.deadlines = 2;
    config.chain.deadline_window = 40;
    config.proving.winning = false;
    // Longer than a window: the wait must end where the window still
    // leaves time to prove here.
    config.proving.remote_timeout_ms = 60_000;
    // Benched after two failures (the default is three): one window less to wait.
    config.workers.failures_before_bench = 2;
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
    // Each went as a recorded task for no one sector, its result judged and its file removed.
    let wdpost = |worker: &str, state: TaskState| {
        let tasks = client(&config).tasks(None).unwrap();
        let of = |t: &&TaskView| t.kind == TaskKind::WindowPost && t.worker.as_deref() == Some(worker);
        assert!(tasks.iter().filter(of).all(|t| t.sector.is_none()), "{tasks:#?}");
        tasks.iter().filter(of).filter(|t| t.state == state).count()
    };
    assert!(wdpost("w1", TaskState::Done) >= 2, "{:#?}", client(&config).tasks(None));
    w1.stop().unwrap();
    let before = runs("local");
    wait_for(Duration::from_secs(60), "two Window PoSts proved here after w1 left", || {
        (runs("local") >= before + 2).then_some(())
    });

    // A worker whose prover hangs: the daemon waits only as long as the window
    // leaves, proves here in time, charges the worker, and once it is benched
    // asks it no more.
    let scenario = fail::FailScenario::setup();
    fail::cfg("worker:hang-window-post", "return").unwrap();
    let token2 = worker_token(&config, "hung");
    let hung = Worker::start(WorkerConfig {
        tasks: vec![RemoteTask::WindowPost],
        ..worker_config(&miner, &token2, &param_dir())
    });
    wait_online(&config, "hung");
    let asked = || log_lines(&["hung", "Window PoSt SNARK on the worker failed"]).len();
    let before = runs("local");
    let benched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(Duration::from_secs(150), "the hung worker benched, the PoSts proved here", || {
            let w = api_worker(&config, "hung");
            (w.state == WorkerState::Benched && runs("local") >= before + 2).then_some(())
        })
    }));
    if benched.is_err() {
        panic!("{:#?}\n{:#?}", api_worker(&config, "hung"), log_lines(&["Window PoSt"]));
    }
    let benched_after = asked();
    assert_eq!(benched_after, config.workers.failures_before_bench as usize, "{:#?}", log_lines(&["hung"]));
    let more = runs("local");
    wait_for(Duration::from_secs(60), "one more PoSt proved here", || (runs("local") > more).then_some(()));
    assert_eq!(asked(), benched_after, "a benched worker is not asked");
    assert!(wdpost("hung", TaskState::Expired) >= 1, "the late task is expired");
    let results = std::fs::read_dir(config.data_dir.join("results")).unwrap().count();
    assert_eq!(results, 0, "every delivered result was judged and removed");
    // Its requests are still held (a hung prover): left to the process's end.
    std::mem::forget(hung);
    scenario.teardown();

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
    // The runs show the chain's verdicts: every one accepted.
    let runs = daemon.ledger().store().post_runs(200).unwrap();
    assert!(
        runs.iter().filter(|r| r.message.is_some()).all(|r| r.exit_code.is_none_or(|c| c == 0)),
        "{runs:#?}"
    );
    assert!(runs.iter().any(|r| r.exit_code == Some(0)), "receipts are recorded");
    daemon.stop();
}
