//! Authentication, scopes and bad input on both APIs, with a real daemon and
//! a real worker, in-process (no proofs). The `kiln-worker` binary's own
//! output is tested in `worker/tests/cli.rs`.

mod worker_common;

use wire::api::TaskState;
use wire::error::{ApiErrorBody, ErrorKind as K};
use wire::worker::{dispatch_key, RemoteTask, TaskEnvelope, WorkerInfo, PROTOCOL_VERSION, TASK_HEADER};
use worker_common::*;

/// (status, error kind, message) of a request on a fresh connection (a 413
/// answer closes its connection); 2xx gives no kind.
fn call(req: ureq::Request, token: Option<&str>, body: Option<&[u8]>) -> (u16, Option<K>, String) {
    let req = match token {
        Some(t) => req.set("Authorization", &format!("Bearer {t}")),
        None => req,
    };
    let answer = match body {
        Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
        None => req.call(),
    };
    match answer {
        Ok(r) => (r.status(), None, r.into_string().unwrap()),
        Err(ureq::Error::Status(status, r)) => {
            let e: ApiErrorBody = r.into_json().expect("a structured error body");
            (status, Some(e.kind), e.message)
        }
        Err(e) => panic!("transport error: {e}"),
    }
}

/// Announces a `len`-byte body and reads the answer without sending it: a
/// limit is enforced from Content-Length, before the body is read.
fn announce_oversized(url: &str, path: &str, key: &str, len: usize) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: worker\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn tokens_are_scoped_revocable_and_bad_bodies_get_4xx_while_the_worker_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), false, 1);
    let daemon = start_daemon(&config);
    let admin = std::fs::read_to_string(config.data_dir.join("token")).unwrap();
    let d = |path: &str| format!("{}/v0{path}", daemon.url());
    let token = worker_token(&config, "gpu-1");
    let worker = Worker::start(worker_config(&daemon.url(), &token, &tmp.path().join("no-params")));
    let url = wait_online(&config, "gpu-1");
    let w = |path: &str| format!("{url}/v0{path}");

    // --- the daemon ---
    let hb = br#"{"instance":"x","running":[]}"#;
    let (s, kind, _) = call(ureq::post(&d("/worker/heartbeat")), None, Some(hb));
    assert_eq!((s, kind), (401, Some(K::Unauthenticated)));
    let (s, _, _) = call(ureq::post(&d("/worker/heartbeat")), Some("kiln-worker-guess"), Some(hb));
    assert_eq!(s, 401);
    // A worker token opens only the worker endpoints; the daemon's token only the others.
    let (s, kind, msg) = call(ureq::get(&d("/sectors")), Some(&token), None);
    assert_eq!((s, kind), (403, Some(K::Forbidden)), "{msg}");
    let (s, _, _) = call(ureq::post(&d("/auth/worker-tokens")), Some(&token), Some(br#"{"name":"mine"}"#));
    assert_eq!(s, 403);
    let (s, kind, _) = call(ureq::post(&d("/worker/heartbeat")), Some(&admin), Some(hb));
    assert_eq!((s, kind), (403, Some(K::Forbidden)));
    // Authenticated but wrong: unknown instance, malformed and oversized bodies, foreign tasks.
    let (s, kind, _) = call(ureq::post(&d("/worker/heartbeat")), Some(&token), Some(hb));
    assert_eq!((s, kind), (404, Some(K::NotRegistered)));
    let many: Vec<u64> = (0..2_000).collect();
    let long = serde_json::to_vec(&serde_json::json!({"instance": "x", "running": many})).unwrap();
    let (s, kind, msg) = call(ureq::post(&d("/worker/heartbeat")), Some(&token), Some(&long));
    assert_eq!((s, kind), (400, Some(K::InvalidArgument)), "{msg}");
    assert!(msg.contains("at most 1024"), "{msg}");
    let greedy = serde_json::json!({"protocol": PROTOCOL_VERSION, "instance": "x", "url": "http://127.0.0.1:1", "version": "t",
        "capabilities": {"tasks": ["c2"], "slots": u32::MAX, "cores": 1, "memory_bytes": 1, "gpus": [],
        "gpu_build": false, "params": []}});
    let greedy = serde_json::to_vec(&greedy).unwrap();
    let (s, kind, msg) = call(ureq::post(&d("/worker/register")), Some(&token), Some(&greedy));
    assert_eq!((s, kind), (400, Some(K::InvalidArgument)), "{msg}");
    assert!(msg.contains("slots must be between 1 and 256"), "{msg}");
    // Strings shown to operators carry no terminal escapes.
    let escaping = serde_json::json!({"protocol": PROTOCOL_VERSION, "instance": "x\u{1b}[2J", "url": "http://127.0.0.1:1",
        "version": "t", "capabilities": {"tasks": ["c2"], "slots": 1, "cores": 1, "memory_bytes": 1,
        "gpus": [], "gpu_build": false, "params": []}});
    let escaping = serde_json::to_vec(&escaping).unwrap();
    let (s, kind, msg) = call(ureq::post(&d("/worker/register")), Some(&token), Some(&escaping));
    assert_eq!((s, kind), (400, Some(K::InvalidArgument)), "{msg}");
    assert!(msg.contains("printable"), "{msg}");
    let gpu_escape = serde_json::json!({"protocol": PROTOCOL_VERSION, "instance": "x", "url": "http://127.0.0.1:1",
        "version": "t", "capabilities": {"tasks": ["c2"], "slots": 1, "cores": 1, "memory_bytes": 1,
        "gpus": [{"name": "H200\u{1b}]0;owned\u{7}", "memory_bytes": 1}], "gpu_build": true, "params": []}});
    let (s, kind, msg) = call(
        ureq::post(&d("/worker/register")),
        Some(&token),
        Some(&serde_json::to_vec(&gpu_escape).unwrap()),
    );
    assert_eq!((s, kind), (400, Some(K::InvalidArgument)), "{msg}");
    assert!(msg.contains("capabilities.gpus"), "{msg}");
    let (s, kind, _) = call(ureq::post(&d("/worker/heartbeat")), Some(&token), Some(b"{\"instance\": 7"));
    assert!(matches!(s, 400 | 422) && kind == Some(K::InvalidArgument), "{s} {kind:?}");
    // Refused from Content-Length, before the body is read (sending it could
    // meet a connection the server already closed).
    let answer = announce_oversized(&daemon.url(), "/v0/worker/tasks/1/result", &token, 192 * 1000);
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("too_large"), "{answer}");
    let (s, kind, msg) = call(ureq::post(&d("/worker/tasks/99/result")), Some(&token), Some(&[0u8; 192]));
    assert_eq!((s, kind), (409, Some(K::Conflict)), "{msg}");
    let (s, _, _) =
        call(ureq::post(&d("/worker/tasks/nope/failure")), Some(&token), Some(br#"{"message":"x"}"#));
    assert_eq!(s, 400);
    // A failure report is stored bounded and printable: a task handed to
    // gpu-1 (on a sector the driver leaves alone: a data sector without
    // pieces), failed with 60 KB of text and terminal escapes.
    let task = {
        let db = config.data_dir.join("kiln.db");
        use sealing::store::roles::*;
        let mut store = sealing::store::SqliteStore::open(&db, Default::default()).unwrap();
        let n = store.create_sector(proofs::SectorSize::KiB2, false, 0).unwrap();
        store
            .start_task(Some(n), sealing::store::TaskKind::Commit, Some("gpu-1"), Some(i64::MAX / 2), 0)
            .unwrap()
    };
    // A result that is no whole proof is refused, and leaves no file.
    let result = |id: u64, body: &[u8]| {
        call(ureq::post(&d(&format!("/worker/tasks/{id}/result"))), Some(&token), Some(body))
    };
    let (s, kind, msg) = result(task, &[0u8; 100]);
    assert_eq!((s, kind), (400, Some(K::InvalidArgument)));
    assert!(msg.contains("192"), "{msg}");
    let results_dir = config.data_dir.join("results");
    let kept = || std::fs::read_dir(&results_dir).map_or(0, |d| d.count());
    assert_eq!(kept(), 0);
    let long = format!("{{\"message\": \"{}\"}}", "out of memory \\u001b[2J".repeat(2_700));
    assert!(long.len() > 60_000 && long.len() < 64 << 10);
    let (s, _, msg) =
        call(ureq::post(&d(&format!("/worker/tasks/{task}/failure"))), Some(&token), Some(long.as_bytes()));
    assert_eq!(s, 200, "{msg}");
    let stored = client(&config).tasks(None).unwrap().into_iter().find(|t| t.id == task).unwrap();
    let error = stored.error.unwrap();
    assert!(error.len() <= 4_096 + 200, "{} bytes stored", error.len());
    assert!(error.contains("out of memory") && !error.chars().any(char::is_control), "{error:.200}");
    // A result of a task for no one sector (a Window PoSt partition) goes to
    // its own file, recorded with its length; a second delivery is refused.
    let partition = {
        use sealing::store::roles::*;
        let mut store =
            sealing::store::SqliteStore::open(&config.data_dir.join("kiln.db"), Default::default()).unwrap();
        store
            .start_task(None, sealing::store::TaskKind::WindowPost, Some("gpu-1"), Some(i64::MAX / 2), 0)
            .unwrap()
    };
    let (s, _, msg) = result(partition, &[7u8; 384]);
    assert_eq!(s, 200, "{msg}");
    let stored = client(&config).tasks(None).unwrap().into_iter().find(|t| t.id == partition).unwrap();
    assert_eq!((stored.sector, stored.state, stored.result_bytes), (None, TaskState::Reported, Some(384)));
    let files: Vec<_> = std::fs::read_dir(&results_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), [7u8; 384]);
    let (s, kind, _) = result(partition, &[8u8; 192]);
    assert_eq!((s, kind), (409, Some(K::Conflict)));
    assert_eq!(kept(), 1, "the refused delivery left no file");
    // Token management.
    let (s, _, msg) = call(ureq::post(&d("/auth/worker-tokens")), Some(&admin), Some(br#"{"name":"a b"}"#));
    assert_eq!(s, 400, "{msg}");
    let (s, kind, _) =
        call(ureq::post(&d("/auth/worker-tokens")), Some(&admin), Some(br#"{"name":"gpu-1"}"#));
    assert_eq!((s, kind), (409, Some(K::Conflict)));
    let other = worker_token(&config, "gpu-2");
    let revoked = client(&config).revoke_worker_token("gpu-2").unwrap();
    assert_eq!(revoked.name, "gpu-2");
    let (s, kind, msg) = call(ureq::post(&d("/worker/heartbeat")), Some(&other), Some(hb));
    assert_eq!((s, kind), (401, Some(K::Unauthenticated)));
    assert!(msg.contains("revoked"), "{msg}");
    let names: Vec<_> = client(&config)
        .worker_tokens()
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.revoked_ms.is_some()))
        .collect();
    assert_eq!(names, [("gpu-1".to_string(), false), ("gpu-2".to_string(), true)]);

    // --- the worker ---
    let key = dispatch_key(&token);
    let (s, _, _) = call(ureq::get(&w("/info")), None, None);
    assert_eq!(s, 401);
    let (s, _, _) = call(ureq::get(&w("/info")), Some(&admin), None);
    assert_eq!(s, 401, "the daemon's own token is not the dispatch key");
    let (s, _, _) = call(ureq::get(&w("/info")), Some(&token), None);
    assert_eq!(s, 401, "nor is the worker token itself");
    let c2 = TaskEnvelope { kind: RemoteTask::C2, sector_size: proofs::SectorSize::KiB2, sector: Some(5) };
    let task = |id: u64, envelope: &TaskEnvelope| {
        ureq::post(&w(&format!("/tasks/{id}"))).set(TASK_HEADER, &envelope.to_header())
    };
    let (s, kind, msg) = call(task(5, &c2), Some(&key), Some(b"definitely not a C1 output"));
    assert_eq!((s, kind), (400, Some(K::InvalidArgument)));
    assert!(msg.contains("C1 output"), "{msg}");
    let mut forged = b"KILNC1\0\0".to_vec();
    forged.extend(1u32.to_le_bytes());
    forged.extend([0xff; 64]);
    let (s, _, msg) = call(task(6, &c2), Some(&key), Some(&forged));
    assert_eq!(s, 400, "{msg}");
    let (s, kind, msg) = call(ureq::post(&w("/tasks/6")), Some(&key), Some(&forged));
    assert_eq!((s, kind), (400, Some(K::InvalidArgument)));
    assert!(msg.contains(TASK_HEADER), "{msg}");
    let post = TaskEnvelope { kind: RemoteTask::WindowPost, sector: None, ..c2 };
    let (s, kind, msg) = call(task(6, &post), Some(&key), Some(b"vanilla"));
    assert_eq!((s, kind), (422, Some(K::FailedPrecondition)));
    assert!(msg.contains("does not offer wdpost"), "{msg}");
    let answer = announce_oversized(&url, "/v0/tasks/7", &key, 3 << 20);
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("too_large"), "{answer}");
    let (s, _, _) = call(ureq::delete(&w("/tasks/8")), Some(&key), None);
    assert_eq!(s, 404);

    // Still up, still registered, holding nothing.
    assert!(worker.is_running(), "the worker stopped");
    let (s, _, body) = call(ureq::get(&w("/info")), Some(&key), None);
    assert_eq!(s, 200);
    let info: WorkerInfo = serde_json::from_str(&body).unwrap();
    assert!(info.registered && info.tasks.is_empty() && info.capabilities.params.is_empty());
    let listed = client(&config).workers().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].capabilities.slots, 1);

    // What `kiln-worker info --url` asks, of the running worker.
    let info = worker::fetch_info(&url, &token, None).unwrap();
    assert!(info.registered, "{info:?}");

    worker.stop().unwrap();
    daemon.stop();
}

/// Registrations and heartbeats are each a durable transaction: a worker
/// calling faster than it needs is answered 429 (it retries later). A worker
/// may register only a URL on the address it connects from, so its token
/// cannot point the daemon's requests at another machine.
#[test]
fn registrations_are_rate_limited_and_a_worker_url_must_be_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), false, 1);
    let daemon = start_daemon(&config);
    let d = |path: &str| format!("{}/v0{path}", daemon.url());
    let token = worker_token(&config, "gpu-1");
    let register = |instance: &str, url: &str| {
        let body = serde_json::json!({"protocol": PROTOCOL_VERSION, "instance": instance, "url": url,
            "version": "t", "capabilities": {"tasks": ["c2"], "slots": 1, "cores": 1, "memory_bytes": 1,
            "gpus": [], "gpu_build": false, "params": []}});
        call(ureq::post(&d("/worker/register")), Some(&token), Some(&serde_json::to_vec(&body).unwrap()))
    };
    // Another machine's URL: refused, naming both addresses.
    let (s, kind, msg) = register("a", "http://10.255.255.1:3456");
    assert_eq!((s, kind), (400, Some(K::InvalidArgument)), "{msg}");
    assert!(
        msg.contains("10.255.255.1") && msg.contains("127.0.0.1") && msg.contains("trust_advertised_urls"),
        "{msg}"
    );
    assert!(client(&config).workers().unwrap().is_empty(), "nothing recorded");
    // Its own address, by IP or by a name that resolves to it.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let (s, _, msg) = register("a", "http://localhost:3456");
    assert_eq!(s, 200, "{msg}");
    // A second registration within half a second: 429, retried later.
    let (s, kind, msg) = register("b", "http://127.0.0.1:3456");
    assert_eq!((s, kind), (429, Some(K::Busy)), "{msg}");
    // Heartbeats faster than a quarter of the interval (300 ms) are refused.
    let hb = br#"{"instance":"a","running":[]}"#;
    let answers: Vec<u16> =
        (0..20).map(|_| call(ureq::post(&d("/worker/heartbeat")), Some(&token), Some(hb)).0).collect();
    assert_eq!(answers[0], 200, "{answers:?}");
    assert!(answers.contains(&429), "{answers:?}");
    assert!(answers.iter().all(|s| matches!(s, 200 | 429)), "{answers:?}");
    daemon.stop();
}
