//! Property tests over the daemon's decoders of untrusted input: every API
//! and worker request body and query, sent over HTTP to a running daemon
//! (so the real extractors, checks and handlers answer), and the TOML config.
//! Valid inputs are damaged (bytes flipped, cut, spliced, values swapped) and
//! garbage is sent; every answer must be a 2xx or a 4xx with an error body
//! naming the problem, never a 5xx, and the daemon must keep serving.
//!
//! Bounded for CI by proptest's default case count; run longer with
//! `PROPTEST_CASES=20000 cargo test --release -p kiln-sealing --test fuzz_inputs`.

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use sealing::api::client::Client;
use sealing::config::Config;
use sealing::daemon::Daemon;
use wire::error::ApiErrorBody;
use wire::worker::PROTOCOL_VERSION;

/// Ways to damage a valid body.
fn damaged(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let n = valid.len().max(1);
    prop_oneof![
        (0..n, 1..=255u8).prop_map({
            let v = valid.clone();
            move |(at, mask)| {
                let mut b = v.clone();
                let len = b.len();
                if len > 0 {
                    b[at % len] ^= mask;
                }
                b
            }
        }),
        (0..n).prop_map({
            let v = valid.clone();
            move |at| v[..at.min(v.len())].to_vec()
        }),
        (0..n, prop::collection::vec(any::<u8>(), 1..24)).prop_map({
            let v = valid.clone();
            move |(at, more)| {
                let mut b = v.clone();
                let at = at.min(b.len());
                b.splice(at..at, more);
                b
            }
        }),
        (
            0..n,
            prop::sample::select(vec![
                &b"null"[..],
                b"-1",
                b"1e999",
                b"18446744073709551616",
                b"\"\\u0000\"",
                b"[]",
                b"{}",
                b"\"\x1b[2J\"",
                b"4294967296",
                b"true",
            ])
        )
            .prop_map({
                let v = valid.clone();
                move |(at, value)| {
                    // Replace the JSON value after the `at`-th byte's next colon.
                    let mut b = v.clone();
                    let at = at.min(b.len());
                    if let Some(colon) = b[at..].iter().position(|&c| c == b':').map(|p| p + at + 1) {
                        let end = b[colon..]
                            .iter()
                            .position(|&c| c == b',' || c == b'}')
                            .map_or(b.len(), |p| p + colon);
                        b.splice(colon..end, value.iter().copied());
                    }
                    b
                }
            }),
        Just(valid),
    ]
}

fn any_body(valid: &str) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => damaged(valid.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
    .boxed()
}

/// POSTs `body` (as JSON) and returns the status and body.
fn post(base: &str, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    let req = ureq::post(&format!("{base}/v0{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "application/json");
    answer(req.send_bytes(body))
}

fn get(base: &str, path: &str, token: &str) -> (u16, String) {
    answer(ureq::get(&format!("{base}/v0{path}")).set("Authorization", &format!("Bearer {token}")).call())
}

fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("transport: {e}"),
    }
}

/// A 2xx, or a 4xx whose body is an error naming what is wrong.
fn check(what: &str, (status, body): (u16, String)) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{what}: {status} {body}");
    if status >= 400 {
        let e: ApiErrorBody = serde_json::from_str(&body).map_err(|e| {
            TestCaseError::fail(format!("{what}: {status} body is not an error ({e}): {body}"))
        })?;
        prop_assert!(!e.message.trim().is_empty(), "{what}: {status} with an empty message");
        prop_assert!(!e.message.chars().any(|c| c.is_control() && c != '\n'), "{what}: {:?}", e.message);
    }
    Ok(())
}

#[test]
fn api_and_worker_requests_get_2xx_or_a_clear_4xx() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::new(tmp.path().join("data"), proofs::SectorSize::KiB2, 1000);
    config.param_dir = Some(tmp.path().join("no-params"));
    config.api.listen = "127.0.0.1:0".into();
    let daemon = Daemon::start(&config).unwrap();
    let base = format!("http://{}", daemon.addr());
    let admin = std::fs::read_to_string(config.data_dir.join("token")).unwrap().trim().to_string();
    let client = Client::from_repo(&config.data_dir).unwrap();
    let worker = client.create_worker_token("fuzz").unwrap().token;

    let register = format!(
        r#"{{"protocol": {PROTOCOL_VERSION}, "instance": "i1", "url": "http://127.0.0.1:9", "version": "t",
        "capabilities": {{"tasks": ["c2"], "slots": 2, "cores": 4, "memory_bytes": 8589934592,
        "gpus": [{{"name": "NVIDIA H200", "memory_bytes": 150000000000}}], "gpu_build": true,
        "params": [{{"sector_size": "2KiB", "file": "p.params"}}]}}}}"#
    );
    // (path, token, a valid body): the admin API, then the worker API.
    let posts: Vec<(&str, &str, String)> = vec![
        ("/sectors/pledge", &admin, r#"{"count": 0}"#.into()),
        ("/sectors/add-piece", &admin, r#"{"path": "/nonexistent/piece.bin"}"#.into()),
        ("/sectors/1/retry", &admin, "{}".into()),
        ("/sectors/1/abort", &admin, r#"{"reason": "operator"}"#.into()),
        ("/sectors/1/remove", &admin, "{}".into()),
        ("/auth/worker-tokens", &admin, r#"{"name": "w-2"}"#.into()),
        ("/auth/worker-tokens/nobody/revoke", &admin, "{}".into()),
        ("/workers/nobody/reset", &admin, "{}".into()),
        ("/worker/register", &worker, register),
        ("/worker/heartbeat", &worker, r#"{"instance": "i1", "running": [1, 2, 3]}"#.into()),
        ("/worker/tasks/1/failure", &worker, r#"{"message": "out of memory"}"#.into()),
        ("/worker/tasks/1/result", &worker, "x".repeat(192)),
    ];
    let gets = ["/tasks", "/chain/messages", "/sectors/1", "/tasks?sector=1"];
    let bodies: Vec<BoxedStrategy<Vec<u8>>> = posts.iter().map(|p| any_body(&p.2)).collect();
    let strategy = prop_oneof![
        4 => (0..posts.len()).prop_flat_map(move |i| (Just(i), bodies[i].clone())),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|q| (usize::MAX, q)),
    ];
    let mut runner = TestRunner::new(RunnerConfig::default());
    runner
        .run(&strategy, |(i, body)| {
            if i == usize::MAX {
                // A query string of any bytes on the paginated lists.
                let query: String = body.iter().map(|b| format!("%{b:02x}")).collect();
                for path in gets {
                    let sep = if path.contains('?') { '&' } else { '?' };
                    check(path, get(&base, &format!("{path}{sep}{query}"), &admin))?;
                    check(path, get(&base, &format!("{path}{sep}limit={query}"), &admin))?;
                }
                return Ok(());
            }
            let (path, token, _) = &posts[i];
            check(path, post(&base, path, token, &body))
        })
        .unwrap();
    // Still serving, and still whole.
    assert!(client.status().is_ok());
    assert!(client.sectors().is_ok());
    daemon.stop();
}

/// A damaged config file is refused with its path and the problem, or loads
/// and passes its checks.
#[test]
fn damaged_configs_are_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("kiln.toml");
    let valid = r#"data_dir = "/var/lib/kiln"
sector_size = "2KiB"
miner_id = 1000

[api]
listen = "127.0.0.1:2345"
max_connections = 8192

[limits]
pre_commit = 1
commit = 1
remote_c1 = 4
finalize = 2

[retry]
max_attempts = 5

[workers]
heartbeat_ms = 5000
lease_ms = 60000

[history]
tasks_keep_ms = 2592000000
"#;
    std::fs::write(&path, valid).unwrap();
    Config::load(&path).expect("the valid config loads");
    let mut runner = TestRunner::new(RunnerConfig::default());
    runner
        .run(&any_body(valid), |bytes| {
            std::fs::write(&path, &bytes).unwrap();
            match Config::load(&path) {
                Ok(c) => prop_assert!(c.check().is_ok()),
                Err(e) => {
                    let text = e.to_string();
                    prop_assert!(text.contains("kiln.toml") && text.len() > "kiln.toml".len() + 4, "{text}");
                }
            }
            Ok(())
        })
        .unwrap();
}
