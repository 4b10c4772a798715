//! Helpers shared by the `kiln` binary tests.
#![allow(dead_code)]

use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn vector(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proofs/tests/vectors").join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `kiln` with its shared caches inside `home`, so tests do not touch the user's.
pub fn kiln(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env("XDG_CACHE_HOME", home.join("xdg-cache")).env("RUST_LOG", "warn");
    cmd
}

pub fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "kiln failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn hex32(byte: &str) -> String {
    byte.repeat(32)
}

pub fn pre_commit_args(dir: &Path, sector_id: u64) -> Vec<String> {
    [
        "seal",
        "pre-commit",
        "--sector-size",
        "2KiB",
        "--prover-id",
        &hex32("01"),
        "--sector-id",
        &sector_id.to_string(),
        "--ticket",
        &hex32("02"),
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The shared Groth16 parameter directory (the user's cache, so that runs reuse
/// one 2KiB test setup), with the 2KiB setup generated if absent.
pub fn param_dir() -> PathBuf {
    static READY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = sealing::dirs::param_dir();
            for params in proofs::snark::params::GrothParams::all(&dir, proofs::SectorSize::KiB2) {
                params.generate_test_setup(proofs::snark::params::SetupSeed::KILN).expect("2KiB test setup");
            }
            dir
        })
        .clone()
}

/// A daemon config for tests: the given data dir, an ephemeral API port, the
/// shared parameters if `real_params` (else an empty directory), `extra` TOML.
pub fn daemon_config(data_dir: &Path, real_params: bool, extra: &str) -> PathBuf {
    let params = if real_params { param_dir() } else { data_dir.with_extension("params") };
    let text = format!(
        "data_dir = {data:?}\nsector_size = \"2KiB\"\nminer_id = 1000\nparam_dir = {params:?}\nparent_cache_dir = {parents:?}\n\
         [api]\nlisten = \"127.0.0.1:0\"\n{extra}",
        data = data_dir.to_str().unwrap(),
        params = params.to_str().unwrap(),
        parents = data_dir.with_extension("parents").to_str().unwrap(),
    );
    let path = data_dir.with_extension("toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `FAILPOINTS` value arming crash point `point` (see `sealing::failpoints`).
pub fn crash_at(point: &str) -> String {
    format!("{point}=return")
}

/// Starts `kiln daemon --config CONFIG`, logging to `log`, optionally with
/// fail points armed (a `FAILPOINTS` value: `name=action;...`); returns once
/// its API answers.
pub fn start_daemon(
    config: &Path,
    data_dir: &Path,
    failpoints: Option<&str>,
    log: &Path,
) -> std::process::Child {
    let _ = std::fs::remove_file(data_dir.join("api"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(["daemon", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env_remove("FAILPOINTS")
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap());
    if let Some(points) = failpoints {
        cmd.env("FAILPOINTS", points);
    }
    let mut child = cmd.spawn().expect("start kiln daemon");
    let start = std::time::Instant::now();
    while !data_dir.join("api").exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("daemon exited with {status}: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(start.elapsed().as_secs() < 60, "daemon did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

/// `kiln` as a client of the daemon whose data directory is `repo`.
pub fn client(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .arg("--repo")
        .arg(repo)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Seconds a Window PoSt partition and a Winning PoSt take here, in this
/// build (`kiln bench --phases wdpost,wnpost`, 2KiB, quiet: run before any
/// daemon): what a test's deadline windows are sized from.
pub fn post_seconds(home: &Path) -> (f64, f64) {
    let out = kiln(home)
        .args(["bench", "--sector-size", "2KiB", "--batch", "2", "--phases", "wdpost,wnpost", "--json"])
        .arg("--param-dir")
        .arg(param_dir())
        .output()
        .unwrap();
    let report = json_of(&out);
    let seconds = |phase: &str| {
        report["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["phase"] == phase)
            .and_then(|p| p["seconds"].as_f64())
            .unwrap_or_else(|| panic!("no {phase} in {report}"))
    };
    (seconds("wdpost"), seconds("wnpost"))
}

/// A `[chain]` and `[proving]` table for proving tests, sized from the PoSt
/// times measured here (`post_seconds`) rather than guessed: a window holds
/// three times a Window and a Winning PoSt together (a Winning PoSt may have
/// started just before it opened, and sealing runs beside both), at least 15
/// s; an election waits twice as long as both take (a Winning PoSt waits for
/// a Window PoSt due first), at least 10 s. Epochs of `block_ms`.
pub fn chain_for_posts(
    (window_post, winning_post): (f64, f64),
    block_ms: u64,
    deadlines: u64,
    election_per_mille: u64,
) -> String {
    let epochs = |seconds: f64| (seconds * 1000.0 / block_ms as f64).ceil() as u64;
    let both = window_post + winning_post;
    let window = epochs((3.0 * both).max(15.0));
    let winning = epochs((2.0 * both).max(10.0));
    eprintln!(
        "PoSt here: Window {window_post:.2} s, Winning {winning_post:.2} s: windows of {window} epochs, \
         elections wait {winning} epochs ({block_ms} ms each)"
    );
    format!(
        "[chain]\nblock_time_ms = {block_ms}\nseed_delay = 2\ndeadlines = {deadlines}\ndeadline_window = {window}\n\
         challenge_lookback = 2\nelection_per_mille = {election_per_mille}\nwinning_window = {winning}\n\
         [proving]\ncheck_ahead_epochs = 6\n"
    )
}
