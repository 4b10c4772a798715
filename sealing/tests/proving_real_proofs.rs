//! Proving end to end on the daemon, real proofs: three 2KiB sectors sealed
//! to Proving (three C2 runs) are proven in their deadlines on the embedded
//! chain period after period, and won elections are answered with Winning
//! PoSts the chain verifies. The daemon is killed between proving a Window
//! PoSt and sending it: restarted, it proves that window again in time and
//! never submits twice. A replica is corrupted: the sector is declared faulty
//! (or skipped) while its partition's other sector is still proven; once the
//! file is restored, recovery is declared and the sector proven again.
//! Windows are sized from the PoSt times measured first. ~6 minutes on two cores.

mod common;

use common::{client, crash_at, daemon_config, start_daemon};
use sealing::api::client::Client;
use sealing::chain::{Message, SectorHealth};
use sealing::lifecycle::SectorState;
use std::path::Path;
use std::time::{Duration, Instant};

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

fn head(api: &Client) -> u64 {
    api.proving().unwrap().head
}

#[test]
fn sectors_are_proven_in_their_deadlines_through_faults_recoveries_and_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // 3 deadlines of half-second epochs, windows sized from the PoSt times
    // measured here (at least 15 s): on a slower machine the test takes longer
    // instead of missing deadlines.
    let chain = common::chain_for_posts(common::post_seconds(tmp.path()), 500, 3, 40);
    let config = daemon_config(&data, true, &chain);
    let log = |run: &str| tmp.path().join(format!("{run}.log"));

    // Seal three sectors.
    let mut daemon = start_daemon(&config, &data, None, &log("seal"));
    let out = client(&data, &["sectors", "pledge", "--count", "3"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let api = Client::from_repo(&data).unwrap();
    wait_for("three sectors Proving", Duration::from_secs(900), &log("seal"), || {
        let s = api.sectors().unwrap();
        (s.len() == 3 && s.iter().all(|s| s.sector.lifecycle.state == SectorState::Proving)).then_some(())
    });
    let sealed_at = head(&api);

    // Two proving periods: every sector proven at least twice, an election answered.
    let period = api.proving().unwrap().schedule.period();
    wait_for(
        "two proven windows per sector and a Winning PoSt",
        Duration::from_secs(300),
        &log("seal"),
        || {
            let info = api.proving().unwrap();
            let posts: Vec<_> = (0..3).flat_map(|d| api.deadline(d).unwrap().posts).collect();
            let twice =
                [1u64, 2, 3].iter().all(|s| posts.iter().filter(|p| p.proven.contains(s)).count() >= 2);
            let won = info.elections.iter().any(|e| e.sector.is_some());
            (twice && won && info.head > sealed_at + period).then_some(())
        },
    );
    let out = client(&data, &["proving", "info"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("3 active, 0 faulty"), "{text}");
    assert!(text.contains("window deadline") && text.contains("winning epoch"), "{text}");

    // Killed after proving a Window PoSt, before sending it: restarted, it proves again in time.
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let mut crashing = start_daemon(&config, &data, Some(&crash_at("wdpost:proved-unsent")), &log("crash"));
    let status =
        wait_for("the crash point", Duration::from_secs(120), &log("crash"), || crashing.try_wait().unwrap());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{}", std::fs::read_to_string(log("crash")).unwrap());
    let mut daemon = start_daemon(&config, &data, None, &log("restart"));
    let api = Client::from_repo(&data).unwrap();

    // Corrupt a sector that shares its partition; its partner is still proven.
    let sectors: Vec<_> = (0..3).flat_map(|d| api.deadline(d).unwrap().sectors).collect();
    let (victim, partner) = sectors
        .iter()
        .find_map(|a| {
            sectors
                .iter()
                .find(|b| b.sector != a.sector && (b.deadline, b.partition) == (a.deadline, a.partition))
                .map(|b| (a.clone(), b.sector))
        })
        .expect("two sectors share a partition");
    let replica = data.join(format!("sectors/{}/sealed", victim.sector));
    let good = std::fs::read(&replica).unwrap();
    let corrupted_at = head(&api);
    std::fs::write(&replica, good.iter().map(|b| b ^ 0x5a).collect::<Vec<_>>()).unwrap();
    let out = client(&data, &["proving", "check", &victim.deadline.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("FAULTY"), "{text}");
    wait_for(
        "the partner proven without the corrupted sector",
        Duration::from_secs(200),
        &log("restart"),
        || {
            let posts = api.deadline(victim.deadline).unwrap().posts;
            let faulty = api
                .faults()
                .unwrap()
                .sectors
                .iter()
                .any(|s| s.sector == victim.sector && s.health == SectorHealth::Faulty);
            let proven_alone = posts.iter().any(|p| {
                p.open_epoch > corrupted_at && p.partition == victim.partition && p.proven == [partner]
            });
            (faulty && proven_alone).then_some(())
        },
    );

    // Restored: recovery declared, the sector proven again, active.
    std::fs::write(&replica, &good).unwrap();
    let restored_at = head(&api);
    wait_for("the restored sector proven again", Duration::from_secs(250), &log("restart"), || {
        let active = api.faults().unwrap().sectors.iter().all(|s| s.sector != victim.sector);
        let posts = api.deadline(victim.deadline).unwrap().posts;
        let proven = posts.iter().any(|p| p.open_epoch > restored_at && p.proven.contains(&victim.sector));
        (active && proven).then_some(())
    });
    // The victim's whole health record (the API shows the last two periods
    // only, and recovery can take longer than that on a loaded machine).
    let of_victim: Vec<String> = rusqlite::Connection::open(data.join("kiln.db"))
        .unwrap()
        .prepare("SELECT why FROM chain_health WHERE sector = ?1 ORDER BY id")
        .unwrap()
        .query_map([victim.sector as i64], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let of_victim: Vec<&str> = of_victim.iter().map(String::as_str).collect();
    assert!(of_victim.contains(&"declared recovered"), "{of_victim:?}");
    assert!(of_victim.contains(&"proven after recovery"), "{of_victim:?}");
    assert!(
        of_victim.iter().any(|w| *w == "declared faulty" || w.starts_with("skipped")),
        "faulted by declaration or by its own PoSt: {of_victim:?}"
    );

    // No window was missed (the crashed one included), no PoSt was sent twice,
    // every Winning PoSt sent was accepted or only late.
    let db = rusqlite::Connection::open(data.join("kiln.db")).unwrap();
    let missed: Vec<String> = db
        .prepare("SELECT why FROM chain_health WHERE why LIKE 'missed%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    use sealing::store::ProvingStore;
    let runs = sealing::store::SqliteStore::open(&data.join("kiln.db"), Default::default())
        .unwrap()
        .post_runs(100)
        .unwrap();
    assert!(
        missed.is_empty(),
        "{missed:?}\nruns: {runs:#?}\ncrash log:\n{}\nrestart log:\n{}",
        std::fs::read_to_string(log("crash")).unwrap_or_default(),
        std::fs::read_to_string(log("restart")).unwrap_or_default()
    );
    let mut windows = std::collections::HashSet::new();
    for m in api.chain_messages().unwrap() {
        let code = m.receipt.as_ref().map_or(0, |r| r.exit_code);
        match &m.message {
            Message::SubmitWindowedPoSt { open_epoch, partition, .. } => {
                assert!(windows.insert((*open_epoch, *partition)), "sent twice: {m:?}");
                assert_eq!(code, 0, "{m:?}");
            }
            // One that could not land in time was not sent: every one sent is accepted.
            Message::SubmitWinningPoSt { .. } => assert_eq!(code, 0, "{m:?}"),
            _ => {}
        }
    }
    let out = client(&data, &["proving", "deadlines"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
