//! TLS on both APIs, with self-signed certificates and no proofs: who trusts
//! whom, what a plain or untrusting client gets, and unusable certificate files.
//! (`remote_c2` proves sectors through an HTTPS daemon and worker.)

mod common;

use common::*;
use sealing::api::client::{Client, ClientError, API_CERT_FILE};
use sealing::daemon::{Daemon, DaemonError};
use sealing::workers::dispatch::{Dispatcher, HttpDispatcher};
use sealing::workers::protocol::dispatch_key;
use std::process::Command;
use std::time::Duration;

#[test]
fn daemon_and_worker_speak_https_to_clients_that_trust_them_and_to_no_others() {
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
    let log = tmp.path().join("worker.log");
    let tls = tls_args(&worker_pem, &config.data_dir.join(API_CERT_FILE));
    let mut worker = spawn_worker_with(&url, &worker_token, &tmp.path().join("no-params"), &log, None, &tls);
    let worker_url = wait_online(&config, "tls-1");
    assert!(worker_url.starts_with("https://127.0.0.1:"), "{worker_url}");

    // The daemon's dispatcher reaches it when it trusts the worker's certificate.
    let key = dispatch_key(&worker_token);
    let trusting =
        HttpDispatcher::new(sealing::tls::agent(Duration::from_secs(10), Some(&worker_pem.cert)).unwrap());
    let refused = trusting.send_c2(&worker_url, &key, 77, b"not a C1 output").unwrap_err();
    assert!(refused.contains("HTTP 400") && refused.contains("C1 output"), "{refused}");
    let untrusting = HttpDispatcher::with_timeout(Duration::from_secs(10));
    let refused = untrusting.send_c2(&worker_url, &key, 77, b"not a C1 output").unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");

    // `kiln-worker info` over HTTPS, trusting the worker's certificate or not.
    let info = |ca: Option<&std::path::Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln-worker"));
        cmd.args(["info", "--url", &worker_url, "--token", &worker_token]);
        if let Some(ca) = ca {
            cmd.arg("--ca").arg(ca);
        }
        cmd.output().unwrap()
    };
    let out = info(Some(&worker_pem.cert));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("(registered)"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = info(None);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("UnknownIssuer"));
    worker.kill().unwrap();
    worker.wait().unwrap();

    // A worker that does not trust the daemon's certificate never registers, and says why.
    let other = tmp.path().join("other.log");
    let tls = tls_args(&worker_pem, &worker_pem.cert);
    let mut stranger =
        spawn_worker_with(&url, &worker_token, &tmp.path().join("no-params"), &other, None, &tls);
    let said = wait_for(Duration::from_secs(30), "the worker to report why it cannot register", || {
        std::fs::read_to_string(&other).ok().filter(|l| l.contains("cannot register"))
    });
    assert!(said.contains("invalid peer certificate"), "{said}");
    stranger.kill().unwrap();
    stranger.wait().unwrap();
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
