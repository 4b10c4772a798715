//! `kiln seal batch` end to end through the binary: batch PC1 gives every sector
//! the bytes it gets sealed alone (and the reference vector's for the vector's
//! sector), a batch sector proves and verifies with real Groth16 parameters,
//! bad batches are refused, and a batch killed mid-layer resumes per sector.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;

fn batch_args(dir: &Path, size: &str, sectors: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "seal",
        "batch",
        "--sector-size",
        size,
        "--prover-id",
        &hex32("01"),
        "--sectors",
        sectors,
        "--ticket",
        &hex32("02"),
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn sector(out: &Value, id: u64) -> &Value {
    out["sectors"].as_array().unwrap().iter().find(|s| s["sector_id"] == id).expect("sector in the output")
}

/// Three 2KiB sectors (one with a data piece) labeled together equal the same
/// sectors pre-committed one by one, sector 1 equals the reference vector, and
/// sector 1 then proves with real parameters and verifies (one C2 run).
#[test]
fn batch_sectors_equal_sectors_sealed_alone_and_prove() {
    let tmp = tempfile::tempdir().unwrap();
    let piece = tmp.path().join("piece");
    std::fs::write(&piece, pattern(1016)).unwrap();
    let piece_arg = format!("2:{}", piece.display());
    let root = tmp.path().join("batch");
    let out = json_of(
        &kiln(tmp.path())
            .args(batch_args(&root, "2KiB", "1,2,3", &["--piece", &piece_arg]))
            .output()
            .unwrap(),
    );
    let phases: Vec<&str> =
        out["phases"].as_array().unwrap().iter().map(|p| p["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["pc1", "pc2", "pc2", "pc2"]);

    let reference = vector("seal_2KiB_cc.json");
    for key in ["comm_d", "replica_id", "comm_r"] {
        assert_eq!(sector(&out, 1)[key], reference[key], "sector 1 {key}");
    }
    for id in [2u64, 3] {
        let alone = tmp.path().join(format!("alone-{id}"));
        let mut args = pre_commit_args(&alone, id);
        if id == 2 {
            args.extend(["--piece".to_string(), piece.to_str().unwrap().to_string()]);
        }
        let single = json_of(&kiln(tmp.path()).args(&args).output().unwrap());
        for key in ["comm_d", "replica_id", "comm_r"] {
            assert_eq!(sector(&out, id)[key], single[key], "sector {id} {key}");
        }
        assert_eq!(
            std::fs::read(root.join(id.to_string()).join("sealed")).unwrap(),
            std::fs::read(alone.join("sealed")).unwrap(),
            "sector {id}: the replica"
        );
    }
    assert_ne!(sector(&out, 2)["comm_d"], sector(&out, 3)["comm_d"], "the piece is in sector 2");

    let params = param_dir();
    let proof = json_of(
        &kiln(tmp.path())
            .args(["seal", "commit", "--dir"])
            .arg(root.join("1"))
            .args(["--seed", &hex32("03"), "--param-dir", params.to_str().unwrap(), "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(proof["verified"], true);
    assert_eq!(proof["comm_r"], reference["comm_r"]);
    assert_eq!(proof["challenges"], reference["c1_challenges_formula"]);
}

/// A batch that cannot be a batch is refused before any directory is touched.
#[test]
fn bad_batches_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("batch");
    for (args, says) in [
        (batch_args(&root, "2KiB", "1,2,1", &[]), "sector 1 is given twice"),
        (batch_args(&root, "2KiB", "1,2", &["--piece", "3:/nonexistent"]), "sector 3 is not in --sectors"),
        (batch_args(&root, "2KiB", "1,2", &["--piece", "nonsense"]), "expected N:FILE"),
        (batch_args(&root, "2KiB", "1,2", &["--threads", "0"]), "--threads must be at least 1"),
        (batch_args(&root, "3KiB", "1,2", &[]), "unsupported sector size"),
    ] {
        let out = kiln(tmp.path()).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(!root.exists(), "{args:?} touched the batch directory");
    }
    // A sector whose piece is missing fails alone; the others are sealed.
    let out = kiln(tmp.path())
        .args(batch_args(&root, "2KiB", "1,2", &["--piece", "2:/nonexistent/piece"]))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(sector(&v, 2)["error"].as_str().unwrap().contains("/nonexistent/piece"), "{v}");
    assert_eq!(sector(&v, 1)["comm_r"], vector("seal_2KiB_cc.json")["comm_r"]);
    assert!(stderr(&out).contains("1 of 2 sectors failed"), "{}", stderr(&out));
}

/// A batch killed with SIGKILL during layer 2 resumes sector by sector: each keeps
/// its layer 1 byte for byte, labels layer 2, and ends equal to an uninterrupted batch.
#[test]
fn batch_killed_mid_layer_resumes_per_sector() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("batch");
    let args = batch_args(&root, "8MiB", "4,5", &["--threads", "2"]);
    let records = [root.join("4/cache/pc1-layers.json"), root.join("5/cache/pc1-layers.json")];
    let mut child = kiln(tmp.path()).args(&args).spawn().unwrap();
    let started = std::time::Instant::now();
    let killed_mid_layer = loop {
        let texts: Vec<String> =
            records.iter().map(|r| std::fs::read_to_string(r).unwrap_or_default()).collect();
        if texts.iter().all(|t| t.contains("\"layer\": 1")) {
            child.kill().unwrap();
            child.wait().unwrap();
            break texts.iter().all(|t| !t.contains("\"layer\": 2"));
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the batch exited ({status}) before layer 1 was recorded");
        }
        assert!(started.elapsed().as_secs() < 300, "layer 1 never finished");
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    assert!(killed_mid_layer, "the kill landed after layer 2 finished; nothing to resume");
    let layer1: Vec<Vec<u8>> = ["4", "5"]
        .iter()
        .map(|id| std::fs::read(root.join(id).join("cache/sc-02-data-layer-1.dat")).unwrap())
        .collect();

    let resumed = json_of(&kiln(tmp.path()).args(&args).output().unwrap());
    for (i, id) in [4u64, 5].into_iter().enumerate() {
        assert_eq!(sector(&resumed, id)["layers_reused"], json!([1]), "sector {id}");
        assert_eq!(sector(&resumed, id)["layers_labeled"], json!([2]), "sector {id}");
        let now = std::fs::read(root.join(id.to_string()).join("cache/sc-02-data-layer-1.dat")).unwrap();
        assert!(now == layer1[i], "sector {id}: layer 1 kept byte for byte");
    }
    let fresh = json_of(
        &kiln(tmp.path()).args(batch_args(&tmp.path().join("fresh"), "8MiB", "4,5", &[])).output().unwrap(),
    );
    for id in [4u64, 5] {
        for key in ["comm_d", "replica_id", "comm_r"] {
            assert_eq!(sector(&resumed, id)[key], sector(&fresh, id)[key], "sector {id} {key}");
        }
    }
}
