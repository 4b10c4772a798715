//! The daemon's API under a flood of idle and half-sent connections (a
//! slow-loris): while 5,000 of them are held open, authenticated requests and
//! worker heartbeats are answered, and the held connections are closed by the
//! header deadline. Loopback only; bounded in count and time.

use sealing::api::client::Client;
use sealing::config::Config;
use sealing::daemon::Daemon;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Raises this process's descriptor limit to its hard limit; returns it.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write/read the struct we own; no other memory is touched.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// A daemon in `root` with no parameters, on an ephemeral port, its API limits tweaked.
fn daemon(root: &std::path::Path, tweak: impl FnOnce(&mut sealing::config::ApiConfig)) -> (Config, Daemon) {
    let mut config = Config::new(root.join("data"), proofs::SectorSize::KiB2, 1000);
    config.param_dir = Some(root.join("no-params"));
    config.api.listen = "127.0.0.1:0".into();
    tweak(&mut config.api);
    let daemon = Daemon::start(&config).unwrap();
    (config, daemon)
}

#[test]
fn held_connections_do_not_stop_the_api_and_are_closed_by_the_header_deadline() {
    // Each held connection costs two descriptors here (client and server side).
    let fds = raise_fd_limit();
    let held_count = 5_000.min((fds.saturating_sub(1_000) / 2) as usize);
    assert!(held_count >= 500, "descriptor limit {fds} is too low for this test");

    let tmp = tempfile::tempdir().unwrap();
    let (config, daemon) = daemon(tmp.path(), |api| api.header_read_timeout_ms = 2_000);
    let addr = daemon.addr();
    let api = Client::from_repo(&config.data_dir).unwrap();
    let worker_token = api.create_worker_token("w1").unwrap().token;

    let started = Instant::now();
    // Half of them send nothing, half send a request line and one header, never the end.
    let mut held = Vec::with_capacity(held_count);
    for i in 0..held_count {
        let mut s = TcpStream::connect(addr).unwrap();
        if i % 2 == 1 {
            s.write_all(b"GET /v0/sectors HTTP/1.1\r\nHost: kiln\r\n").unwrap();
        }
        held.push(s);
    }
    let opened = Instant::now();
    eprintln!("{held_count} connections held after {:?}", started.elapsed());

    // The API still answers: the operator, and a worker's heartbeat.
    assert!(api.sectors().unwrap().is_empty());
    assert_eq!(api.pledge(1).unwrap().sectors, [1]);
    let heartbeat = ureq::post(&format!("{}/v0/worker/heartbeat", daemon.url()))
        .set("Authorization", &format!("Bearer {worker_token}"))
        .send_json(serde_json::json!({"instance": "i", "running": []}));
    match heartbeat {
        Err(ureq::Error::Status(404, r)) => assert!(r.into_string().unwrap().contains("not_registered")),
        other => panic!("a heartbeat gets its answer (register first), got {other:?}"),
    }
    assert!(opened.elapsed() < Duration::from_secs(2), "answered while all connections were held");

    // Past the deadline every held connection has been closed by the server.
    std::thread::sleep(Duration::from_millis(3_000).saturating_sub(opened.elapsed()));
    let mut still_open = 0;
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            // Closed.
            Ok(0) => {}
            Ok(_) => {
                // An answer (e.g. 408): the connection must end right after it.
                if !matches!(s.read(&mut buf), Ok(0) | Err(_)) {
                    still_open += 1;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                still_open += 1
            }
            Err(_) => {}
        }
    }
    eprintln!("checked after {:?}", started.elapsed());
    assert_eq!(still_open, 0, "of {held_count} held connections, {still_open} were still open");
    assert_eq!(api.sectors().unwrap().len(), 1);
    daemon.stop();
}

/// The cap closes a connection past it at once; a keep-alive connection left
/// idle after its answer is closed by the header deadline too.
#[test]
fn the_connection_cap_and_idle_keep_alive_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, daemon) = daemon(tmp.path(), |api| {
        api.header_read_timeout_ms = 1_000;
        api.max_connections = Some(4);
    });
    let token = std::fs::read_to_string(config.data_dir.join("token")).unwrap();

    // One request on a keep-alive connection, answered; then it idles.
    let mut idle = TcpStream::connect(daemon.addr()).unwrap();
    write!(idle, "GET /v0/sectors HTTP/1.1\r\nHost: kiln\r\nAuthorization: Bearer {}\r\n\r\n", token.trim())
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Three silent ones fill the cap; a fifth is closed at once.
    let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(daemon.addr()).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(daemon.addr()).unwrap();
    over.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let closed = match over.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    assert!(closed, "past the cap: closed at once");
    let started = Instant::now();
    // The idle keep-alive connection ends by the deadline (not the 5 s read timeout).
    assert!(matches!(idle.read(&mut buf), Ok(0)), "closed by the server");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    drop(silent);
    // Once they are gone, the API answers again.
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(Client::from_repo(&config.data_dir).unwrap().sectors().unwrap().is_empty());
    daemon.stop();
}

/// A request whose body never finishes arriving is answered 408 at the request deadline.
#[test]
fn a_request_that_stalls_mid_body_gets_408() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, daemon) = daemon(tmp.path(), |api| api.request_timeout_ms = 500);
    let token = std::fs::read_to_string(config.data_dir.join("token")).unwrap();
    let mut s = TcpStream::connect(daemon.addr()).unwrap();
    write!(
        s,
        "POST /v0/sectors/pledge HTTP/1.1\r\nHost: kiln\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"count\"",
        token.trim()
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(Client::from_repo(&config.data_dir).unwrap().sectors().unwrap().is_empty(), "nothing pledged");
    daemon.stop();
}

/// Lists that grow without bound answer a page at a time; a limit out of
/// range is a clear 400, and the client reads every page.
#[test]
fn list_endpoints_are_paginated() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, daemon) = daemon(tmp.path(), |_| {});
    let token = std::fs::read_to_string(config.data_dir.join("token")).unwrap();
    let get = |path: &str| -> (u16, String) {
        let url = format!("http://{}/v0{path}", daemon.addr());
        match ureq::get(&url).set("Authorization", &format!("Bearer {}", token.trim())).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        }
    };
    for bad in ["/tasks?limit=0", "/tasks?limit=10001", "/chain/messages?limit=0", "/chain/messages?after=x"]
    {
        let (status, body) = get(bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("invalid_argument"), "{bad}: {body}");
    }
    let (status, body) = get("/tasks?limit=10000&after=5");
    assert_eq!((status, body.as_str()), (200, "[]"));
    let (status, body) = get("/chain/messages?limit=1");
    assert_eq!((status, body.as_str()), (200, "[]"));
    let client = Client::from_repo(&config.data_dir).unwrap();
    assert!(client.tasks(None).unwrap().is_empty() && client.chain_messages().unwrap().is_empty());
    daemon.stop();
}
