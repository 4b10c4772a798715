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

/// The value of `series` in an exposition (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.parse().unwrap())
}

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
    let (mut workers, mut tokens) = (Vec::new(), Vec::new());
    for (name, tls) in [("w1", Some(w1_pem.tls())), ("w2", None)] {
        let token = worker_token(&config, name);
        tokens.push(token.clone());
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

    // Metrics: w2 counts the C2s it proved (its /metrics takes its dispatch
    // key); the restarted daemon counts the remote C2s that ended since.
    let w2 = format!("http://{}/metrics", workers[1].addr);
    let key = wire::worker::dispatch_key(&tokens[1]);
    assert!(matches!(ureq::get(&w2).call(), Err(ureq::Error::Status(401, _))));
    let text =
        ureq::get(&w2).set("Authorization", &format!("Bearer {key}")).call().unwrap().into_string().unwrap();
    let on_w2 = sectors
        .iter()
        .flat_map(|&n| commit_tasks(&config, n))
        .filter(|t| t.0.as_deref() == Some("w2"))
        .count();
    let proved = sample(&text, "kiln_worker_tasks_total{kind=\"c2\",outcome=\"done\"}");
    assert!(proved >= 1.0 && proved <= on_w2 as f64, "w2 proved {proved} of its {on_w2} tasks:\n{text}");
    assert_eq!(sample(&text, "kiln_worker_task_duration_seconds_count{kind=\"c2\"}"), proved);
    assert_eq!(sample(&text, "kiln_worker_slots"), 1.0);
    let daemon_text = client(&config).metrics().unwrap();
    let remote_done: f64 = ["w1", "w2"]
        .iter()
        .map(|w| {
            sample(
                &daemon_text,
                &format!("kiln_tasks_finished_total{{kind=\"commit\",executor=\"{w}\",outcome=\"done\"}}"),
            )
        })
        .sum();
    assert!(remote_done >= 1.0, "{daemon_text}");
    assert_eq!(sample(&daemon_text, "kiln_remote_workers{state=\"online\"}"), 2.0);
    for w in workers {
        w.stop().unwrap();
    }
    daemon.stop();
}
