//! `GET /metrics` while a 2KiB sector is pledged and sealed with real proofs
//! by `kiln daemon`: the scrapes parse as Prometheus text (`promtool check
//! metrics`, from Debian's `prometheus`, installed by `scripts/test-deps.sh`),
//! and the values move as the sector walks: sectors by state, a PC1 and a C2
//! duration observed, the tasks counted, the ProveCommit counted with exit
//! code 0. The loopback scrape address answers without a token; the API's
//! `/metrics` does not. One C2 run.

mod common;

use common::{daemon_config, start_daemon};
use sealing::api::client::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Samples by name with their labels as written (`{kind="commit"}`, or "").
type Samples = BTreeMap<String, f64>;

/// The samples of an exposition, checked for the shape the format requires:
/// every sample belongs to a family with HELP and TYPE, and it ends with `# EOF`.
fn parse(text: &str) -> Samples {
    assert!(text.ends_with("# EOF\n"), "no EOF marker");
    let mut families = BTreeSet::new();
    let mut help = BTreeSet::new();
    let mut out = Samples::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.insert(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            help.insert(rest.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample: {line}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a value: {line}"));
            let name = series.split('{').next().unwrap();
            let family = families
                .iter()
                .filter(|f| name.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .unwrap_or_else(|| panic!("{name} has no TYPE"));
            assert!(help.contains(family), "{family} has no HELP");
            assert!(name.starts_with("kiln_") || name.starts_with("process_"), "{name}");
            out.insert(series.to_string(), value);
        }
    }
    out
}

/// `promtool check metrics`: it must parse the text; its only remarks may be
/// that counters (named `x_total` in their samples) carry their HELP under
/// the family name `x`, as OpenMetrics writes it.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; run scripts/test-deps.sh)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(matches!(out.status.code(), Some(0 | 3)), "promtool could not parse the metrics: {said}");
    for remark in said.lines().filter(|l| !l.trim().is_empty()) {
        let counter =
            remark.strip_suffix("_total no help text").unwrap_or_else(|| panic!("promtool remark: {remark}"));
        assert!(text.contains(&format!("# TYPE {counter} counter\n")), "{remark}");
        assert!(text.contains(&format!("# HELP {counter} ")), "{remark}");
    }
}

/// The scrape's text, or the status that refused it.
fn scrape(url: &str, token: Option<&str>) -> Result<String, u16> {
    let req = ureq::get(url);
    let req = match token {
        Some(t) => req.set("Authorization", &format!("Bearer {t}")),
        None => req,
    };
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, _)) => return Err(code),
        Err(e) => panic!("scrape {url}: {e}"),
    };
    assert!(r.content_type().starts_with("application/openmetrics-text"), "{}", r.content_type());
    Ok(r.into_string().unwrap())
}

fn value(s: &Samples, series: &str) -> f64 {
    s.get(series).copied().unwrap_or(0.0)
}

#[test]
fn metrics_follow_a_real_pledge_and_parse_as_prometheus_text() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let extra = "[metrics]\nlisten = \"127.0.0.1:0\"\n[proving]\nenabled = false\n\
                 [chain]\nblock_time_ms = 300\nseed_delay = 2\n";
    let config = daemon_config(&data, true, extra);
    let mut daemon = start_daemon(&config, &data, None, &tmp.path().join("daemon.log"));
    let api = std::fs::read_to_string(data.join("api")).unwrap().trim().to_string();
    let token = std::fs::read_to_string(data.join("token")).unwrap();
    let loopback = std::fs::read_to_string(data.join("metrics")).unwrap().trim().to_string();
    let metrics = format!("{api}/metrics");

    assert_eq!(scrape(&metrics, None).map(|_| ()), Err(401), "/metrics without a token");
    let before = parse(&scrape(&loopback, None).unwrap());
    // A page whose DNS name was rebound to 127.0.0.1 sends its own Host: refused.
    let rebound = ureq::get(&loopback).set("Host", "evil.example:9464").call();
    assert!(matches!(rebound, Err(ureq::Error::Status(403, _))), "{rebound:?}");
    let localhost = loopback.replace("127.0.0.1", "localhost");
    assert!(scrape(&localhost, None).is_ok(), "localhost is a loopback name");
    assert_eq!(value(&before, "kiln_tasks_started_total{kind=\"pc1\",executor=\"local\"}"), 0.0);

    let client = Client::from_repo(&data).unwrap();
    assert_eq!(client.pledge(1).unwrap().sectors, vec![1]);
    let mut states = BTreeSet::new();
    let mut pc1_seen_before_c2 = false;
    let start = Instant::now();
    let last = loop {
        let text = scrape(&metrics, Some(token.trim())).unwrap();
        let s = parse(&text);
        for (series, v) in &s {
            if let Some(state) = series.strip_prefix("kiln_sectors{state=\"") {
                if *v == 1.0 {
                    states.insert(state.trim_end_matches("\"}").to_string());
                }
            }
        }
        let pc1 = value(&s, "kiln_phase_duration_seconds_count{phase=\"pc1\"}");
        let c2 = value(&s, "kiln_phase_duration_seconds_count{phase=\"c2\"}");
        pc1_seen_before_c2 |= pc1 == 1.0 && c2 == 0.0;
        let proving = value(&s, "kiln_sectors{state=\"Proving\"}") == 1.0;
        if proving {
            promtool_check(&text);
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(900), "not Proving; states seen {states:?}");
        std::thread::sleep(Duration::from_millis(150));
    };
    // The sector was seen walking, not only at its end.
    assert!(states.len() >= 4, "states seen: {states:?}");
    assert!(states.contains("Unsealed") && states.contains("Proving"), "{states:?}");
    assert!(pc1_seen_before_c2, "PC1's time was observed before C2 ran");

    for phase in ["pc1", "pc2", "c1", "c2"] {
        let n = value(&last, &format!("kiln_phase_duration_seconds_count{{phase=\"{phase}\"}}"));
        assert_eq!(n, 1.0, "{phase} observed once");
        assert!(value(&last, &format!("kiln_phase_duration_seconds_sum{{phase=\"{phase}\"}}")) > 0.0);
    }
    // A 2KiB sector has 2 layers of 64 nodes (32 bytes each).
    assert_eq!(value(&last, "kiln_pc1_labeled_bytes_total"), 2.0 * 64.0 * 32.0);
    for kind in ["pc1", "pc2", "commit", "finalize"] {
        let labels = format!("kind=\"{kind}\",executor=\"local\"");
        assert_eq!(value(&last, &format!("kiln_tasks_started_total{{{labels}}}")), 1.0, "{kind}");
        let done = format!("kiln_tasks_finished_total{{{labels},outcome=\"done\"}}");
        assert_eq!(value(&last, &done), 1.0, "{kind}");
        assert_eq!(value(&last, &format!("kiln_task_duration_seconds_count{{{labels}}}")), 1.0, "{kind}");
        assert_eq!(value(&last, &format!("kiln_task_queued_seconds_count{{{labels}}}")), 1.0, "{kind}");
    }
    for method in ["PreCommitSectors", "ProveCommitSectors"] {
        assert_eq!(value(&last, &format!("kiln_chain_messages_sent_total{{method=\"{method}\"}}")), 1.0);
        let ok = format!("kiln_chain_message_receipts_total{{method=\"{method}\",exit_code=\"0\"}}");
        assert_eq!(value(&last, &ok), 1.0, "{method}");
    }
    assert!(value(&last, "kiln_chain_head_epoch") > 0.0);
    assert_eq!(value(&last, "kiln_proving_sectors{health=\"active\"}"), 1.0);
    assert!(value(&last, "process_resident_memory_bytes") > 1e6);
    assert!(value(&last, "process_open_fds") > 3.0);

    // The history behind the web view's chart has samples too.
    let history: serde_json::Value = ureq::get(&format!("{api}/v0/history"))
        .set("Authorization", &format!("Bearer {}", token.trim()))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert!(!history["samples"].as_array().unwrap().is_empty());

    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn a_scrape_address_reachable_from_other_machines_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = daemon_config(&data, false, "[metrics]\nlisten = \"0.0.0.0:0\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["daemon", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0.0.0.0:0") && err.contains("must be loopback"), "{err}");
    assert!(!Path::new(&data.join("api")).exists());
}
