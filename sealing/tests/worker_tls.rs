//! TLS on both APIs, with self-signed certificates and no proofs: who trusts
//! whom, what a plain or untrusting client gets, and unusable certificate files.
//! Workers run in-process. (`worker_remote_c2` proves sectors through an HTTPS
//! daemon and worker; `worker/tests/cli.rs` runs `kiln-worker info` over HTTPS.)

mod worker_common;

use sealing::api::client::{Client, ClientError, API_CERT_FILE};
use sealing::daemon::{Daemon, DaemonError};
use sealing::workers::dispatch::{Dispatcher, HttpDispatcher};
use std::time::Duration;
use wire::worker::{dispatch_key, RemoteTask, TaskEnvelope};
use worker::WorkerConfig;
use worker_common::*;

#[test]
fn daemon_and_worker_speak_https_to_clients_that_trust_them_and_to_no_others() {
    capture_logs();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path(), false, 1);
    let (daemon_pem, worker_pem) = (self_signed(tmp.path(), "daemon"), self_signed(tmp.path(), "worker"));
    // One file with the certificate and its key, as some operators keep them.
    let combined = tmp.path().join("daemon-combined.pem");
    let text = std::fs::read_to_string(&daemon_pem.cert).unwrap()
        + &std::fs::read_to_string(&daemon_pem.key).unwrap();
    std::fs::write(&combined, text).unwrap();
    config.api.tls_cert = Some(combined);
    config.api.tls_key = Some(daemon_pem.key.clone());
    config.workers.ca_cert = Some(worker_pem.cert.clone());
    let daemon = start_daemon(&config);
    let url = daemon.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let api = std::fs::read_to_string(config.data_dir.join("api")).unwrap();
    assert_eq!(api.trim(), url);

    // Local commands trust the certificate the daemon copied (without the key).
    let copied = std::fs::read_to_string(config.data_dir.join(API_CERT_FILE)).unwrap();
    assert!(copied.contains("BEGIN CERTIFICATE") && !copied.contains("PRIVATE KEY"), "{copied}");
    assert!(client(&config).sectors().unwrap().is_empty());
    let token = std::fs::read_to_string(config.data_dir.join("token")).unwrap();
    match Client::new(&url, &token).sectors() {
        Err(ClientError::Unreachable { reason, .. }) => {
            assert!(reason.contains("UnknownIssuer"), "a client without the certificate: {reason}")
        }
        other => panic!("an untrusted certificate was accepted: {other:?}"),
    }
    let plain =
        ureq::get(&format!("http://{}/v0/sectors", daemon.addr())).timeout(Duration::from_secs(10)).call();
    assert!(matches!(plain, Err(ureq::Error::Transport(_))), "plain HTTP to the TLS port: {plain:?}");

    // A worker serving HTTPS registers and heartbeats over HTTPS.
    let worker_token = worker_token(&config, "tls-1");
    let worker = Worker::start(WorkerConfig {
        tls: Some(worker_pem.tls()),
        miner_ca: Some(config.data_dir.join(API_CERT_FILE)),
        ..worker_config(&url, &worker_token, &tmp.path().join("no-params"))
    });
    let worker_url = wait_online(&config, "tls-1");
    assert!(worker_url.starts_with("https://127.0.0.1:"), "{worker_url}");

    // The daemon's dispatcher reaches it when it trusts the worker's certificate.
    let key = dispatch_key(&worker_token);
    let trusting =
        HttpDispatcher::new(wire::tls::agent(Duration::from_secs(10), Some(&worker_pem.cert)).unwrap());
    let c2 = TaskEnvelope { kind: RemoteTask::C2, sector_size: proofs::SectorSize::KiB2, sector: Some(1) };
    let refused = trusting.send_task(&worker_url, &key, 77, &c2, b"not a C1 output").unwrap_err().to_string();
    assert!(refused.contains("HTTP 400") && refused.contains("C1 output"), "{refused}");
    let untrusting = HttpDispatcher::with_timeout(Duration::from_secs(10));
    let refused =
        untrusting.send_task(&worker_url, &key, 77, &c2, b"not a C1 output").unwrap_err().to_string();
    assert!(refused.contains("UnknownIssuer"), "{refused}");

    // What `kiln-worker info --url` asks, over HTTPS, trusting the worker's certificate or not.
    let info = worker::fetch_info(&worker_url, &worker_token, Some(&worker_pem.cert)).unwrap();
    assert!(info.registered, "{info:?}");
    let refused = worker::fetch_info(&worker_url, &worker_token, None).unwrap_err();
    assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");
    worker.stop().unwrap();

    // A worker that does not trust the daemon's certificate never registers, and says why.
    let stranger = Worker::start(WorkerConfig {
        tls: Some(worker_pem.tls()),
        miner_ca: Some(worker_pem.cert.clone()),
        ..worker_config(&url, &worker_token, &tmp.path().join("no-params"))
    });
    let stranger_url = format!("https://{}", stranger.addr);
    let said = wait_for(Duration::from_secs(30), "the worker to report why it cannot register", || {
        log_lines(&[&stranger_url, "cannot register"]).pop()
    });
    assert!(said.contains("invalid peer certificate"), "{said}");
    stranger.stop().unwrap();
    daemon.stop();
    assert!(!config.data_dir.join(API_CERT_FILE).exists(), "api.crt goes with the api file");
}

#[test]
fn unusable_certificate_files_stop_the_daemon_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (self_signed(tmp.path(), "a"), self_signed(tmp.path(), "b"));
    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all\n").unwrap();
    let missing = tmp.path().join("missing.pem");
    let cases = [
        (&a.cert, &b.key, &b.key, "does not fit certificate"),
        (&garbage, &a.key, &garbage, "no PEM certificate"),
        (&a.cert, &garbage, &garbage, "no usable private key"),
        (&missing, &a.key, &missing, "cannot read"),
    ];
    for (cert, key, named, reason) in cases {
        let mut config = config(tmp.path(), false, 1);
        config.api.tls_cert = Some(cert.clone());
        config.api.tls_key = Some(key.clone());
        match Daemon::start(&config) {
            Err(DaemonError::Tls(e)) => {
                assert_eq!(&e.path, named, "{e}");
                assert!(e.to_string().contains(reason), "{e}");
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("the daemon started with {} and {}", cert.display(), key.display()),
        }
        assert!(!config.data_dir.exists(), "nothing was created before the files were checked");
    }
    let mut config = config(tmp.path(), false, 1);
    config.workers.ca_cert = Some(garbage.clone());
    match Daemon::start(&config) {
        Err(DaemonError::Tls(e)) => assert_eq!(e.path, garbage),
        other => panic!("{:?}", other.err()),
    }
}
