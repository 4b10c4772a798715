//! `kiln piece commp` and `kiln seal pre-commit` end to end through the binary:
//! the reference vectors, bad input, and a PC1 killed mid-run.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[test]
fn commp_vectors_through_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let v = vector("commp_fr32.json");
    for case in v["comm_p"].as_array().unwrap() {
        let n = case["unpadded_size"].as_u64().unwrap() as usize;
        if n > 1 << 20 {
            continue; // the 8 MiB cases run in the library tests
        }
        let data = if case["data"] == "zero" { vec![0u8; n] } else { pattern(n) };
        let file = tmp.path().join("piece");
        std::fs::write(&file, &data).unwrap();
        let out = json_of(&kiln(tmp.path()).args(["piece", "commp", "--json"]).arg(&file).output().unwrap());
        assert_eq!(out["comm_p"], case["comm_p"]);
        assert_eq!(out["padded_size"], case["padded_size"]);
    }
}

fn check_vector_through_cli(name: &str) {
    let v = vector(name);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sector");
    let mut args = pre_commit_args(&dir, v["sector_id"].as_u64().unwrap());
    if v["kind"] == "data" {
        let data = pattern(v["unpadded_sector_bytes"].as_u64().unwrap() as usize);
        let mut at = 0;
        for (i, p) in v["pieces"].as_array().unwrap().iter().enumerate() {
            let len = p["size_unpadded"].as_u64().unwrap() as usize;
            let path = tmp.path().join(format!("piece-{i}"));
            std::fs::write(&path, &data[at..at + len]).unwrap();
            at += len;
            args.extend(["--piece".to_string(), path.to_str().unwrap().to_string()]);
        }
    }
    let out = json_of(&kiln(tmp.path()).args(&args).output().unwrap());
    for key in ["comm_d", "replica_id", "comm_c", "comm_r_last", "comm_r"] {
        assert_eq!(out[key], v[key], "{name}: {key}");
    }
    if v["kind"] == "data" {
        let got: Vec<&Value> = out["pieces"].as_array().unwrap().iter().map(|p| &p["comm_p"]).collect();
        let want: Vec<&Value> = v["pieces"].as_array().unwrap().iter().map(|p| &p["comm_p"]).collect();
        assert_eq!(got, want);
    }
    for phase in ["staging", "tree_d", "labeling", "tree_c", "encode", "tree_r_last"] {
        assert!(out["seconds"][phase].is_number(), "seconds for {phase}");
    }
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    assert_eq!(sha256_hex(&read(dir.join("sealed"))), v["sealed_replica_sha256"].as_str().unwrap());
    assert_eq!(sha256_hex(&read(dir.join("unsealed"))), v["staged_unsealed_file_sha256"].as_str().unwrap());
    for (file, want) in v["cache_files_after_pc2"].as_object().unwrap() {
        if file == "t_aux" {
            continue; // embeds the cache path; its layout is checked in the library tests
        }
        let bytes = read(dir.join("cache").join(file));
        assert_eq!(sha256_hex(&bytes), want["sha256"].as_str().unwrap(), "{name}: {file}");
    }
}

#[test]
fn cc_vector_through_cli() {
    check_vector_through_cli("seal_2KiB_cc.json");
}

#[test]
fn data_vector_through_cli() {
    check_vector_through_cli("seal_2KiB_data.json");
}

/// Snapshot of every file under a directory, to show a failed command touched nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(snapshot(&p));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn bad_input_gets_a_clear_error_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sector");

    // unknown sector size
    let mut args = pre_commit_args(&dir, 1);
    args[3] = "4KiB".into();
    let out = kiln(tmp.path()).args(&args).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unsupported sector size 4KiB"), "{}", stderr(&out));
    assert!(!dir.exists());

    // pieces larger than the sector
    let big = tmp.path().join("big");
    std::fs::write(&big, vec![1u8; 2033]).unwrap();
    let mut args = pre_commit_args(&dir, 1);
    args.extend(["--piece".into(), big.to_str().unwrap().into()]);
    let out = kiln(tmp.path()).args(&args).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sector holds 2048"), "{}", stderr(&out));
    assert!(!dir.exists());
    // two pieces that fit alone but not together
    let half = tmp.path().join("half");
    std::fs::write(&half, vec![1u8; 1016]).unwrap();
    let third = tmp.path().join("third");
    std::fs::write(&third, vec![1u8; 600]).unwrap();
    let mut args = pre_commit_args(&dir, 1);
    for p in [&half, &third, &third] {
        args.extend(["--piece".into(), p.to_str().unwrap().into()]);
    }
    let out = kiln(tmp.path()).args(&args).output().unwrap();
    assert!(stderr(&out).contains("sector holds 2048"), "{}", stderr(&out));
    assert!(!dir.exists());

    // an unreadable piece file
    let mut args = pre_commit_args(&dir, 1);
    args.extend(["--piece".into(), tmp.path().join("missing").to_str().unwrap().into()]);
    let out = kiln(tmp.path()).args(&args).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("open piece") && stderr(&out).contains("missing"), "{}", stderr(&out));
    assert!(!dir.exists());

    // a DIR holding another sector's files
    json_of(&kiln(tmp.path()).args(pre_commit_args(&dir, 1)).output().unwrap());
    let before = snapshot(&dir);
    let out = kiln(tmp.path()).args(pre_commit_args(&dir, 2)).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("holds sector 1"), "{}", stderr(&out));
    assert_eq!(snapshot(&dir), before);

    // a DIR holding unrelated files
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"keep me").unwrap();
    let out = kiln(tmp.path()).args(pre_commit_args(&other, 1)).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a kiln sector"), "{}", stderr(&out));
    assert_eq!(std::fs::read(other.join("notes.txt")).unwrap(), b"keep me");

    // a truncated layer file: re-running reports it by name and leaves it
    let layer = dir.join("cache/sc-02-data-layer-2.dat");
    let bytes = std::fs::read(&layer).unwrap();
    std::fs::write(&layer, &bytes[..1024]).unwrap();
    let before = snapshot(&dir);
    let out = kiln(tmp.path()).args(pre_commit_args(&dir, 1)).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sc-02-data-layer-2.dat"), "{}", stderr(&out));
    assert_eq!(snapshot(&dir), before);
}

/// Re-running a finished pre-commit (or one whose replica was damaged after
/// encoding) gives the same commitments and a correct replica.
#[test]
fn pre_commit_is_safely_rerunnable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sector");
    let first = json_of(&kiln(tmp.path()).args(pre_commit_args(&dir, 1)).output().unwrap());
    let sealed = std::fs::read(dir.join("sealed")).unwrap();
    // A PC2 cut off mid-encoding leaves a half-written replica and a stray temp file.
    std::fs::write(dir.join("sealed"), &sealed[..1000]).unwrap();
    std::fs::write(dir.join("sealed.tmp"), b"torn").unwrap();
    let second = json_of(&kiln(tmp.path()).args(pre_commit_args(&dir, 1)).output().unwrap());
    assert_eq!(second["comm_r"], first["comm_r"]);
    assert_eq!(second["layers_reused"], serde_json::json!([1, 2]));
    assert_eq!(std::fs::read(dir.join("sealed")).unwrap(), sealed);
}

/// PC1 killed with SIGKILL after its first layer resumes without relabeling it.
#[test]
fn pc1_killed_mid_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sector");
    let args: Vec<String> = [
        "seal",
        "pre-commit",
        "--sector-size",
        "8MiB",
        "--miner-id",
        "1000",
        "--sector-id",
        "7",
        "--ticket",
        &hex32("05"),
        "--dir",
        dir.to_str().unwrap(),
        "--json",
        "--producers",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let record = dir.join("cache/pc1-layers.json");
    let mut child = kiln(tmp.path()).args(&args).spawn().unwrap();
    let started = std::time::Instant::now();
    let killed_mid_run = loop {
        if let Ok(text) = std::fs::read_to_string(&record) {
            if text.contains("\"layer\": 1") {
                child.kill().unwrap();
                child.wait().unwrap();
                break !text.contains("\"layer\": 2");
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pre-commit exited ({status}) before layer 1 was recorded");
        }
        assert!(started.elapsed().as_secs() < 300, "layer 1 never finished");
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    assert!(killed_mid_run, "the kill landed after layer 2 finished; nothing to resume");
    let layer1 = std::fs::read(dir.join("cache/sc-02-data-layer-1.dat")).unwrap();
    let out = json_of(&kiln(tmp.path()).args(&args).output().unwrap());
    assert_eq!(out["layers_reused"], serde_json::json!([1]));
    assert_eq!(out["layers_labeled"], serde_json::json!([2]));
    assert_eq!(std::fs::read(dir.join("cache/sc-02-data-layer-1.dat")).unwrap(), layer1);

    // The resumed sector equals one sealed in a single run.
    let fresh = tmp.path().join("fresh");
    let mut fresh_args = args.clone();
    fresh_args[11] = fresh.to_str().unwrap().to_string();
    let whole = json_of(&kiln(tmp.path()).args(&fresh_args).output().unwrap());
    for key in ["comm_d", "replica_id", "comm_c", "comm_r_last", "comm_r"] {
        assert_eq!(out[key], whole[key], "{key}");
    }
}
