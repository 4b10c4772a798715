//! End to end on loopback: a daemon and two workers, in-process; four
//! pledged 2KiB sectors reach Proving with every C2 proven on a worker (the
//! daemon has no local C2 slot), and a daemon restart while C2 tasks are on
//! the workers loses none and sends none twice. The daemon and w1 serve
//! HTTPS (self-signed certificates), w2 plain HTTP (as a client it trusts the
//! daemon's certificate). Four C2 runs.

mod worker_common;

use sealing::store::TaskState;
use std::collections::BTreeSet;
use std::time::Duration;
use worker::WorkerConfig;
use worker_common::*;

#[test]
fn two_workers_prove_four_sectors_through_a_daemon_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path(), true, 0);
    let (daemon_pem, w1_pem) = (self_signed(tmp.path(), "daemon"), self_signed(tmp.path(), "w1"));
    config.api.tls_cert = Some(daemon_pem.cert.clone());
    config.api.tls_key = Some(daemon_pem.key.clone());
    config.workers.ca_cert = Some(w1_pem.cert.clone());
    let miner = format!("https://{}", config.api.listen);
    let daemon = start_daemon(&config);
    assert_eq!(daemon.url(), miner);
    let mut workers = Vec::new();
    for (name, tls) in [("w1", Some(w1_pem.tls())), ("w2", None)] {
        let token = worker_token(&config, name);
        workers.push(Worker::start(WorkerConfig {
            tls,
            miner_ca: Some(daemon_pem.cert.clone()),
            ..worker_config(&miner, &token, &param_dir())
        }));
    }
    assert!(wait_online(&config, "w1").starts_with("https://"));
    assert!(wait_online(&config, "w2").starts_with("http://"));
    let sectors = client(&config).pledge(4).unwrap().sectors;
    assert_eq!(sectors, [1, 2, 3, 4]);

    // Stop the daemon while a C2 is on a worker; start it again at the same URL.
    let in_flight = wait_for(Duration::from_secs(300), "a remote C2 in flight", || {
        let tasks = client(&config).tasks(None).ok()?;
        tasks.into_iter().find(|t| t.worker.is_some() && t.state == TaskState::Running).map(|t| t.id)
    });
    std::thread::sleep(Duration::from_secs(1));
    daemon.stop();
    std::thread::sleep(Duration::from_secs(2));
    let daemon = start_daemon(&config);

    wait_proving(&config, &sectors, Duration::from_secs(1200));
    let task = client(&config).tasks(None).unwrap().into_iter().find(|t| t.id == in_flight).unwrap();
    assert_eq!(
        task.state,
        TaskState::Done,
        "the task in flight across the restart was re-attached: {task:?}"
    );

    let mut used = BTreeSet::new();
    for &n in &sectors {
        let tasks = commit_tasks(&config, n);
        assert!(tasks.iter().all(|(w, _)| w.is_some()), "sector {n}: a C2 ran locally: {tasks:?}");
        let done: Vec<_> = tasks.iter().filter(|(_, s)| *s == TaskState::Done).collect();
        assert_eq!(done.len(), 1, "sector {n}: {tasks:?}");
        used.insert(done[0].0.clone().unwrap());
    }
    assert_eq!(used, BTreeSet::from(["w1".to_string(), "w2".to_string()]), "both workers proved");
    // One ProveCommit per sector, each accepted.
    let mut proves = prove_commits(&config);
    proves.sort();
    assert_eq!(proves, sectors.iter().map(|&n| (n, Some(0))).collect::<Vec<_>>());
    for w in client(&config).workers().unwrap() {
        assert!(w.tasks.is_empty() && w.unhealthy.is_none(), "{w:?}");
    }
    for w in workers {
        w.stop().unwrap();
    }
    daemon.stop();
}
