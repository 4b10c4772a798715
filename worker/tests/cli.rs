//! The `kiln-worker` binary's own output: `info` of this machine, `info --url`
//! of a running worker (plain and HTTPS, trusting its certificate or not), and
//! a refused `--tasks`. The worker runs in-process (`worker::serve`) against a
//! stand-in daemon that only answers registrations and heartbeats; the tests
//! with a real daemon are in `sealing/tests/worker_*.rs`.

use axum::routing::post;
use axum::{Json, Router};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use wire::worker::{HeartbeatResponse, RegisterResponse};
use worker::{TlsFiles, WorkerConfig};

fn kiln_worker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln-worker"))
        .args(args)
        .env_remove("KILN_WORKER_TOKEN")
        .output()
        .unwrap()
}

/// A daemon that accepts every registration and heartbeat.
fn stand_in_daemon() -> Router {
    Router::new()
        .route(
            "/v0/worker/register",
            post(|| async {
                Json(RegisterResponse {
                    name: "w".into(),
                    daemon_instance: "stand-in".into(),
                    heartbeat_ms: 200,
                    lease_ms: 2_000,
                })
            }),
        )
        .route(
            "/v0/worker/heartbeat",
            post(|| async { Json(HeartbeatResponse { daemon_instance: "stand-in".into(), drop: vec![] }) }),
        )
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in `dir`.
fn self_signed(dir: &Path) -> TlsFiles {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let files = TlsFiles { cert: dir.join("worker.crt"), key: dir.join("worker.key") };
    std::fs::write(&files.cert, made.cert.pem()).unwrap();
    std::fs::write(&files.key, made.key_pair.serialize_pem()).unwrap();
    files
}

#[test]
fn info_of_this_machine_and_a_refused_task_type() {
    let out = kiln_worker(&["info", "--param-dir", "/nonexistent"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("cores") && text.contains("params for   none"), "{text}");
    // A CPU build advertises no GPU, whatever the machine has; so does `--no-gpu`.
    if !cfg!(feature = "gpu") {
        assert!(text.contains("gpus         none (CPU build: proving on the CPU)"), "{text}");
    }
    let out = kiln_worker(&["--no-gpu", "info", "--param-dir", "/nonexistent"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("gpus         none"), "{text}");
    let out = kiln_worker(&["run", "--miner", "http://127.0.0.1:9", "--token", "t", "--tasks", "pc2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not offered"));
}

#[test]
fn info_of_running_workers_over_http_and_https() {
    let tmp = tempfile::tempdir().unwrap();
    let pem = self_signed(tmp.path());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let daemon = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let miner = format!("http://{}", daemon.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(daemon, stand_in_daemon()).await });

    let mut stops = Vec::new();
    let mut urls = Vec::new();
    for tls in [None, Some(pem.clone())] {
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        urls.push(format!("{scheme}://{}", listener.local_addr().unwrap()));
        let config = WorkerConfig {
            tls,
            param_dir: PathBuf::from("/nonexistent"),
            ..WorkerConfig::new(miner.clone(), "the-token")
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push((
            stop,
            runtime.spawn(worker::serve(listener, config, async { stopped.await.unwrap_or(()) })),
        ));
    }
    let (plain, https) = (&urls[0], &urls[1]);
    let registered = |url: &str, ca: Option<&Path>| {
        let start = Instant::now();
        while !worker::fetch_info(url, "the-token", ca).is_ok_and(|i| i.registered) {
            assert!(start.elapsed() < Duration::from_secs(30), "{url} never registered");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    registered(plain, None);
    registered(https, Some(&pem.cert));

    let out = kiln_worker(&["info", "--url", plain, "--token", "the-token"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("registered"), "{text}");
    let cert = pem.cert.to_str().unwrap();
    let out = kiln_worker(&["info", "--url", https, "--token", "the-token", "--ca", cert]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("(registered)"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kiln_worker(&["info", "--url", https, "--token", "the-token"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("UnknownIssuer"));

    for (stop, served) in stops {
        stop.send(()).unwrap();
        runtime.block_on(served).unwrap().unwrap();
    }
}
