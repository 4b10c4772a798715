//! The daemon and its CLI on bad input: a malformed config, an unknown sector,
//! unauthenticated and malformed API calls, a piece larger than a sector, a
//! second daemon on the same directory. Each gets a clear error and leaves the
//! stored state as it was. No proofs are computed.

mod common;

use common::{client, daemon_config, start_daemon, stderr};
use sealing::api::client::{Client, ClientError};
use std::path::Path;
use std::process::Command;

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

fn list_json(repo: &Path) -> serde_json::Value {
    let out = client(repo, &["sectors", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn malformed_configs_are_reported_by_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "data_dir = \"/tmp/x\"\nsector_size = \"2KiB\"\nminer_id = 1000\n[limits]\nc2 = 1\n",
            "unknown field `c2`",
        ),
        ("data_dir = \"/tmp/x\"\nsector_size = \"4KiB\"\nminer_id = 1000\n", "4KiB"),
        ("sector_size = \"2KiB\"\nminer_id = 1000\n", "missing field `data_dir`"),
        (
            "data_dir = \"/tmp/x\"\nsector_size = \"2KiB\"\nminer_id = 1000\n[retry]\nmax_attempts = 0\n",
            "max_attempts",
        ),
    ];
    for (text, expected) in cases {
        let path = tmp.path().join("kiln.toml");
        std::fs::write(&path, text).unwrap();
        let out = kiln().args(["daemon", "--config", path.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{text}");
        let err = stderr(&out);
        assert!(err.contains("kiln.toml") && err.contains(expected), "{text}: {err}");
    }
    let out = kiln().args(["daemon", "--config", "/nonexistent/kiln.toml"]).output().unwrap();
    assert!(stderr(&out).contains("/nonexistent/kiln.toml"), "{}", stderr(&out));
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // A long packing wait keeps data sectors open for the whole test.
    let config = daemon_config(&data, false, "[packing]\nwait_ms = 3600000\n");
    let mut daemon = start_daemon(&config, &data, None, &tmp.path().join("daemon.log"));
    let url = std::fs::read_to_string(data.join("api")).unwrap().trim().to_string();

    // Unknown sectors.
    for args in [&["sectors", "status", "42"][..], &["sectors", "remove", "42"]] {
        let out = client(&data, args);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("unknown sector 42") && stderr(&out).contains("404"),
            "{}",
            stderr(&out)
        );
    }

    // No token, a wrong token.
    let r = ureq::get(&format!("{url}/v0/sectors")).call();
    match r {
        Err(ureq::Error::Status(401, resp)) => {
            let body: serde_json::Value = resp.into_json().unwrap();
            assert_eq!(body["kind"], "unauthenticated");
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let wrong = Client::new(&url, &"0".repeat(64));
    for result in [wrong.pledge(1).map(|_| ()), wrong.sectors().map(|_| ())] {
        assert!(matches!(result, Err(ClientError::Api { status: 401, .. })), "{result:?}");
    }

    // Malformed and out-of-range bodies.
    let good = Client::from_repo(&data).unwrap();
    let token = std::fs::read_to_string(data.join("token")).unwrap();
    // The status and the error body of a POST.
    let post = |path: &str, body: &str| -> (u16, serde_json::Value) {
        let r = ureq::post(&format!("{url}/v0{path}"))
            .set("Authorization", &format!("Bearer {}", token.trim()))
            .set("Content-Type", "application/json")
            .send_string(body);
        match r {
            Ok(resp) => (resp.status(), serde_json::Value::Null),
            Err(ureq::Error::Status(code, resp)) => (code, resp.into_json().unwrap_or_default()),
            Err(e) => panic!("{path}: transport error {e}"),
        }
    };
    for (path, body) in [
        ("/sectors/pledge", "{\"count\": \"many\"}"),
        ("/sectors/pledge", "{\"count\": 0}"),
        ("/sectors/pledge", "not json"),
        ("/sectors/add-piece", "{\"file\": \"x\"}"),
    ] {
        let (code, e) = post(path, body);
        assert!((400..500).contains(&code), "{body}: {code}");
        assert_eq!(e["kind"], "invalid_argument", "{body}: {e}");
    }
    let huge = format!("{{\"path\": \"{}\"}}", "a".repeat(100_000));
    let (code, e) = post("/sectors/add-piece", &huge);
    assert_eq!(code, 413, "{e}");

    // A piece larger than a sector: refused before anything is stored.
    let big = tmp.path().join("big.bin");
    std::fs::write(&big, vec![1u8; 2033]).unwrap();
    let out = client(&data, &["sectors", "add-piece", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("2033 bytes") && stderr(&out).contains("2032"), "{}", stderr(&out));
    assert_eq!(list_json(&data), serde_json::json!([]));

    // A valid piece opens sector 1; removing it works once, then is refused.
    let piece = tmp.path().join("piece.bin");
    std::fs::write(&piece, vec![5u8; 500]).unwrap();
    let out = client(&data, &["sectors", "add-piece", piece.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sector 1"));
    let status = good.sector(1).unwrap();
    assert_eq!(status.pieces.len(), 1);
    // The data directory, its database and piece copies are the daemon user's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("kiln.db")), 0o600);
    assert_eq!(mode(&status.pieces[0].path), 0o600);
    assert_eq!(status.sector.lifecycle.state.name(), "Packing");
    let out = client(&data, &["sectors", "status", "1", "--log"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Packing"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(client(&data, &["sectors", "remove", "1"]).status.success());
    let start = std::time::Instant::now();
    while good.sector(1).unwrap().sector.lifecycle.state.name() != "Removed" {
        assert!(start.elapsed().as_secs() < 20, "removal did not finish");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = client(&data, &["sectors", "remove", "1"]);
    assert!(stderr(&out).contains("not valid in state Removed"), "{}", stderr(&out));
    // Operator recovery is refused where it does not apply.
    let out = client(&data, &["sectors", "retry", "1"]);
    assert!(stderr(&out).contains("no failed step") && stderr(&out).contains("409"), "{}", stderr(&out));
    let out = client(&data, &["sectors", "abort", "1"]);
    assert!(stderr(&out).contains("not valid in state Removed"), "{}", stderr(&out));
    let out = client(&data, &["sectors", "retry", "42"]);
    assert!(stderr(&out).contains("unknown sector 42"), "{}", stderr(&out));
    let (code, e) = post("/sectors/1/abort", "{\"reason\": \"\"}");
    assert_eq!((code, e["kind"].as_str()), (400, Some("invalid_argument")), "{e}");
    assert!(!status.pieces[0].path.exists(), "the daemon's copy of the piece is removed");

    // The chain answers.
    let out = client(&data, &["chain", "head"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("epoch"), "{}", stderr(&out));
    // A reader that stops early (`kiln proving deadlines | head`): the command
    // ends quietly with success (it panicked on the broken pipe).
    let mut reader_gone = kiln()
        .args(["proving", "deadlines", "--repo", data.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(reader_gone.stdout.take());
    let out = reader_gone.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));

    // A second daemon on the same directory is refused; the first keeps serving.
    let out = kiln().args(["daemon", "--config", config.to_str().unwrap()]).output().unwrap();
    assert!(stderr(&out).contains("another kiln daemon"), "{}", stderr(&out));
    assert_eq!(list_json(&data).as_array().unwrap().len(), 1);
    // A worker name is a path segment: one that is not a valid name never reaches a URL.
    let pledged = good.pledge(1).unwrap().sectors[0];
    let sneaky = format!("../../sectors/{pledged}/remove?");
    let out = client(&data, &["auth", "revoke-worker-token", &sneaky]);
    assert!(stderr(&out).contains("worker name"), "{}", stderr(&out));
    assert_ne!(good.sector(pledged).unwrap().sector.lifecycle.state.name(), "Removing");

    // Resetting a worker that never registered names it.
    let out = client(&data, &["workers", "reset", "nobody"]);
    assert!(stderr(&out).contains("unknown worker") && stderr(&out).contains("404"), "{}", stderr(&out));

    // A stale `api` file (a crashed daemon's) gets no token sent to whatever
    // listens on its port now.
    let impostor = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stale = tmp.path().join("stale");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("api"), format!("http://{}\n", impostor.local_addr().unwrap())).unwrap();
    std::fs::write(stale.join("token"), "f".repeat(64)).unwrap();
    std::fs::write(stale.join("lock"), "").unwrap();
    impostor.set_nonblocking(true).unwrap();
    let out = client(&stale, &["sectors", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no longer running"), "{}", stderr(&out));
    assert!(impostor.accept().is_err(), "nothing connected to the impostor");

    // SIGTERM stops it cleanly.
    let pid = daemon.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!data.join("api").exists());
}
