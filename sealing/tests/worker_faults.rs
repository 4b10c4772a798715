//! Worker faults on real proofs: a worker stopped during C2 (it stops
//! heartbeating and its result is discarded, as for a killed one), and one
//! returning a corrupted proof (the `worker:corrupt-proof` fail point). In
//! both the sector still reaches Proving, its C2 run again in the daemon.
//! About three C2 runs (one abandoned). Workers run in-process; each test holds
//! a `fail::FailScenario`, which also keeps the two from running at once.

mod worker_common;

use sealing::store::TaskState;
use std::time::Duration;
use wire::api::WorkerState;
use wire::worker::{dispatch_key, WorkerInfo};
use worker_common::*;

#[test]
fn a_worker_killed_during_c2_loses_the_task_and_the_sector_still_reaches_proving() {
    let scenario = fail::FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), true, 1);
    let daemon = start_daemon(&config);
    let token = worker_token(&config, "doomed");
    let worker = Worker::start(worker_config(&daemon.url(), &token, &param_dir()));
    let url = wait_online(&config, "doomed");
    client(&config).pledge(1).unwrap();
    // Stop it once it is proving (its own view, asked over its task API).
    wait_for(Duration::from_secs(300), "the worker proving", || {
        let info: WorkerInfo = ureq::get(&format!("{url}/v0/info"))
            .set("Authorization", &format!("Bearer {}", dispatch_key(&token)))
            .call()
            .ok()?
            .into_json()
            .ok()?;
        info.tasks.iter().any(|t| t.state == "proving").then_some(())
    });
    worker.stop().unwrap(); // no heartbeat from here on; its proof is discarded

    wait_proving(&config, &[1], Duration::from_secs(600));
    assert_eq!(
        commit_tasks(&config, 1),
        [(Some("doomed".into()), TaskState::Expired), (None, TaskState::Done)]
    );
    let w = &client(&config).workers().unwrap()[0];
    assert_eq!(w.state, WorkerState::Offline);
    assert_eq!(prove_commits(&config), [(1, Some(0))]);
    daemon.stop();
    scenario.teardown();
}

#[test]
fn a_worker_returning_a_corrupted_proof_is_marked_unhealthy_and_the_proof_recomputed() {
    let scenario = fail::FailScenario::setup();
    fail::cfg("worker:corrupt-proof", "return").unwrap();
    capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), true, 1);
    let daemon = start_daemon(&config);
    let token = worker_token(&config, "liar");
    let worker = Worker::start(worker_config(&daemon.url(), &token, &param_dir()));
    let url = wait_online(&config, "liar");
    client(&config).pledge(1).unwrap();

    wait_proving(&config, &[1], Duration::from_secs(900));
    let tasks = client(&config).tasks(Some(1)).unwrap();
    let commits: Vec<_> = tasks.iter().filter(|t| t.kind == sealing::store::TaskKind::Commit).collect();
    assert_eq!(commits.len(), 2, "{commits:?}");
    assert_eq!((commits[0].worker.as_deref(), commits[0].state), (Some("liar"), TaskState::Rejected));
    assert_eq!((commits[1].worker.as_deref(), commits[1].state), (None, TaskState::Done));
    let w = &client(&config).workers().unwrap()[0];
    assert_eq!(w.state, WorkerState::Unhealthy);
    assert!(w.unhealthy.as_deref().unwrap().contains("sector 1"), "{w:?}");
    // Only the recomputed, verified proof went to the chain.
    assert_eq!(prove_commits(&config), [(1, Some(0))]);
    assert!(!log_lines(&[&url, "worker:corrupt-proof", "corrupted before it is reported"]).is_empty());
    worker.stop().unwrap();
    daemon.stop();
    scenario.teardown();
}
