//! The daemon under `ulimit -n 1024`, real proofs: one 2KiB sector proven on
//! chain, a second one sealing, and 1,100 TCP connections held open against
//! the API and the loopback metrics address the whole time (reopened as the
//! daemon closes them), by anyone, without a token. The descriptor budget
//! keeps the connections within what the work leaves: nothing fails, no
//! Window PoSt skips a sector, no window is missed, the daemon never reaches
//! its limit. (Before, it sat at 1024/1024, the sealing sector failed on
//! "Too many open files" and the proven one was skipped and went faulty.)
//!
//! Then removing the proven sector is refused, saying what would follow; with
//! `--force` it is removed (its record kept) and declared faulty, and every
//! Winning PoSt the daemon sends afterwards is the one the chain expects.
//! Two C2 runs; windows sized from the PoSt times measured first.

mod common;

use common::{client, daemon_config};
use sealing::lifecycle::SectorState;
use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `kiln daemon` under `ulimit -n LIMIT` (soft and hard), logging to `log`.
fn start_limited_daemon(config: &Path, data: &Path, limit: u64, log: &Path) -> Child {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" daemon --config \"$1\""))
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !data.join("api").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("daemon exited with {status}: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(start.elapsed() < Duration::from_secs(60), "daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Holds `count` connections to `targets` (in turn) until `stop`, reopening
/// each one the daemon closes; counts the connections it opened.
fn flood(targets: Vec<String>, count: usize, stop: Arc<AtomicBool>, opened: Arc<AtomicUsize>) {
    let mut held: Vec<Option<TcpStream>> = (0..count).map(|_| None).collect();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        for (i, slot) in held.iter_mut().enumerate() {
            let closed = match slot {
                None => true,
                // Closed by the daemon (at the cap, or past the header deadline): EOF or an error.
                Some(s) => {
                    !matches!(s.read(&mut buf), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
                }
            };
            if closed {
                *slot = TcpStream::connect(&targets[i % targets.len()]).ok().inspect(|s| {
                    let _ = s.set_nonblocking(true);
                    opened.fetch_add(1, Ordering::Relaxed);
                });
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn db(data: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(
        data.join("kiln.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

fn state(data: &Path, n: u64) -> String {
    db(data).query_row("SELECT state FROM sectors WHERE number = ?1", [n as i64], |r| r.get(0)).unwrap()
}

fn strings(data: &Path, sql: &str) -> Vec<String> {
    let c = db(data);
    let mut stmt = c.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn wait_for<T>(what: &str, limit: Duration, log: &Path, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if start.elapsed() > limit {
            panic!(
                "timed out waiting for {what}; daemon log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn held_connections_fail_nothing_and_a_proven_sector_is_removed_only_by_force() {
    // The flood itself needs more than 1,100 descriptors in this process.
    let mine = wire::descriptors::raise_limit().unwrap();
    assert!(mine > 1_300, "this test needs a descriptor limit above 1,300 for itself, not {mine}");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let chain = common::chain_for_posts(common::post_seconds(tmp.path()), 500, 2, 40);
    let extra = format!("{chain}[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let config = daemon_config(&data, true, &extra);
    let log = tmp.path().join("daemon.log");
    let mut daemon = start_limited_daemon(&config, &data, 1024, &log);
    let pid = daemon.id();
    let api = sealing::api::client::Client::from_repo(&data).unwrap();
    let status = api.status().unwrap();
    assert_eq!(status.descriptors.limit, 1024, "{status:?}");
    let d = &status.descriptors;
    assert!(
        d.work + d.api_connections as u64 + d.metrics_connections.unwrap() as u64 + 4 <= 1024,
        "the budget fits: {d:?}"
    );

    // Sector 1 proven on chain, sector 2 pledged: then the flood.
    assert!(client(&data, &["sectors", "pledge", "--count", "1"]).status.success());
    wait_for("sector 1 Proving", Duration::from_secs(600), &log, || {
        (state(&data, 1) == "Proving").then_some(())
    });
    let flooded_from: u64 = api.proving().unwrap().head;
    assert_eq!(api.pledge(1).unwrap().sectors, [2]);
    let api_addr =
        std::fs::read_to_string(data.join("api")).unwrap().trim().trim_start_matches("http://").to_string();
    let metrics_addr = std::fs::read_to_string(data.join("metrics"))
        .unwrap()
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let flooder = {
        let (stop, opened) = (stop.clone(), opened.clone());
        // Ten to the API for each one to the scrape address.
        let mut targets = vec![api_addr.clone(); 10];
        targets.push(metrics_addr);
        std::thread::spawn(move || flood(targets, 1_100, stop, opened))
    };

    // Under the flood: sector 2 seals to Proving, sector 1 is proven in a
    // window opened since, and the daemon stays below its limit.
    let mut most_fds = 0;
    wait_for("sector 2 Proving and sector 1 proven under the flood", Duration::from_secs(900), &log, || {
        most_fds = most_fds.max(open_fds(pid));
        let proven_since = strings(
            &data,
            &format!(
                "SELECT proven FROM chain_posts WHERE open_epoch > {flooded_from} AND proven LIKE '%1%'"
            ),
        );
        (state(&data, 2) == "Proving" && !proven_since.is_empty() && opened.load(Ordering::Relaxed) >= 1_100)
            .then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    eprintln!(
        "under the flood: {} connections opened, the daemon held {most_fds} descriptors at most of 1024 \
         (budget {d:?})",
        opened.load(Ordering::Relaxed)
    );
    assert!(most_fds > 500 && most_fds < 1024, "the daemon held {most_fds} descriptors at most");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("Too many open files"), "the daemon ran out of descriptors");
    let failed = strings(&data, "SELECT event FROM events WHERE event LIKE '%StepFailed%'");
    assert!(failed.is_empty(), "{failed:?}");
    let skipped = strings(&data, "SELECT skipped FROM chain_posts WHERE skipped != '[]'");
    assert!(skipped.is_empty(), "a Window PoSt skipped {skipped:?}");
    let faults = strings(&data, "SELECT why FROM chain_health");
    assert!(faults.is_empty(), "{faults:?}");

    // Removing the proven sector is refused, saying why; forced, it goes.
    let out = client(&data, &["sectors", "remove", "1"]);
    let err = common::stderr(&out);
    assert!(
        !out.status.success() && err.contains("proven and held by the chain") && err.contains("--force"),
        "{err}"
    );
    assert!(err.contains("fault"), "{err}");
    assert_eq!(state(&data, 1), "Proving");
    assert!(data.join("sectors/1/sealed").exists());
    let removed_at = api.proving().unwrap().head;
    let out = client(&data, &["sectors", "remove", "1", "--force"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    wait_for("sector 1 Removed and declared faulty", Duration::from_secs(120), &log, || {
        let declared = strings(&data, "SELECT why FROM chain_health WHERE sector = 1");
        (state(&data, 1) == "Removed" && !declared.is_empty()).then_some(())
    });
    assert!(!data.join("sectors/1").exists(), "its files are gone");
    let record = api.sector(1).unwrap();
    let states: Vec<SectorState> = record.events.iter().map(|e| e.state).collect();
    assert!(states.contains(&SectorState::Proving), "its record is kept: {states:?}");
    let listed = api.sectors().unwrap().into_iter().find(|s| s.sector.number == 1).unwrap();
    assert_eq!(listed.removed_from, Some(SectorState::Proving));

    // Elections since: every Winning PoSt sent is the one the chain expects.
    let won_after = |head: u64| {
        let info = api.proving().unwrap();
        let settled = info
            .elections
            .iter()
            .filter(|e| e.epoch > removed_at && e.epoch + info.schedule.winning_window < head);
        settled.count()
    };
    wait_for("three elections settled since the removal", Duration::from_secs(600), &log, || {
        (won_after(api.proving().unwrap().head) >= 3).then_some(())
    });
    let mut sent = 0;
    for m in api.chain_messages().unwrap() {
        if let sealing::chain::Message::SubmitWinningPoSt { .. } = m.message {
            sent += 1;
            assert!(m.receipt.as_ref().is_none_or(|r| r.exit_code == 0), "{m:?}");
        }
        if let sealing::chain::Message::SubmitWindowedPoSt { .. } = m.message {
            assert!(m.receipt.as_ref().is_none_or(|r| r.exit_code == 0), "{m:?}");
        }
    }
    assert!(sent > 0, "some Winning PoSt was sent");
    let refused = strings(&data, "SELECT receipt_error FROM post_runs WHERE exit_code != 0");
    assert!(refused.is_empty(), "{refused:?}");
    let missed = strings(&data, "SELECT why FROM chain_health WHERE why LIKE 'missed%'");
    assert!(missed.is_empty(), "{missed:?}");
    assert_eq!(state(&data, 2), "Proving");
    daemon.kill().unwrap();
    let _ = daemon.wait();
}
