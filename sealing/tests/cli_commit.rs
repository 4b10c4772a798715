//! C1, C2 and verification end to end through `kiln`, on real Groth16 proofs
//! made with the shared 2KiB test setup (generated once into the user's cache).
//!
//! C2 runs in this file: 3 (about a minute each), serialised by `PROVING`.

mod common;

use common::*;
use proofs::snark::params::GrothParams;
use proofs::snark::{verify_seal, SealStatement};
use proofs::{Commitment, ProverId, Randomness, SectorSize};
use serde_json::Value;
use std::process::Output;
use std::sync::Mutex;

/// One C2 at a time: each takes about 3 GB and both cores.
static PROVING: Mutex<()> = Mutex::new(());

fn verify_args(v: &Value, proof: &str) -> Vec<String> {
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    vec![
        "seal".into(),
        "verify".into(),
        "--sector-size".into(),
        "2KiB".into(),
        "--prover-id".into(),
        s("prover_id"),
        "--sector-id".into(),
        v["sector_id"].to_string(),
        "--ticket".into(),
        s("ticket"),
        "--seed".into(),
        s("seed"),
        "--comm-d".into(),
        s("comm_d"),
        "--comm-r".into(),
        s("comm_r"),
        "--proof".into(),
        proof.into(),
        "--param-dir".into(),
        param_dir().to_str().unwrap().into(),
    ]
}

fn verified(out: &Output) -> bool {
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
    let ok = out.status.success();
    assert_eq!(ok, String::from_utf8_lossy(&out.stdout).contains("verified  true"), "{}", stderr(out));
    ok
}

fn with(v: &Value, key: &str, value: Value) -> Value {
    let mut v = v.clone();
    v[key] = value;
    v
}

#[test]
fn seal_all_cc_gives_a_proof_that_verifies_and_tampering_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let params = param_dir();
    let mut args = pre_commit_args(&tmp.path().join("sector"), 1);
    args[1] = "all".into();
    args.extend(["--seed".into(), hex32("03"), "--param-dir".into(), params.to_str().unwrap().into()]);
    let out = {
        let _one = PROVING.lock().unwrap_or_else(|e| e.into_inner());
        kiln(tmp.path()).args(&args).output().unwrap()
    };
    let v = json_of(&out);
    let reference = vector("seal_2KiB_cc.json");
    assert_eq!(v["verified"], true);
    assert_eq!(v["comm_r"], reference["comm_r"]);
    assert_eq!(v["challenges"], reference["c1_challenges_formula"]);
    let phases: Vec<&str> =
        v["phases"].as_array().unwrap().iter().map(|p| p["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["pc1", "pc2", "c1", "params", "c2", "verify"]);
    assert!(v["phases"][4]["peak_rss_bytes"].as_u64().unwrap() > 100 << 20, "C2 peak memory is measured");
    let proof = v["proof"].as_str().unwrap().to_string();
    assert_eq!(proof.len(), 2 * 192);

    // The same proof through `kiln seal verify`, then with one thing wrong at a time.
    assert!(verified(&kiln(tmp.path()).args(verify_args(&v, &proof)).output().unwrap()));
    let mut flipped = hex::decode(&proof).unwrap();
    flipped[100] ^= 0x01;
    let cases = [
        ("a flipped proof bit", v.clone(), hex::encode(&flipped)),
        ("a truncated proof", v.clone(), proof[..proof.len() - 2].to_string()),
        ("a wrong comm_r", with(&v, "comm_r", reference["comm_r_last"].clone()), proof.clone()),
        ("a wrong seed", with(&v, "seed", Value::from(hex32("04"))), proof.clone()),
        ("a wrong sector id", with(&v, "sector_id", Value::from(2)), proof.clone()),
        ("a wrong ticket", with(&v, "ticket", Value::from(hex32("05"))), proof.clone()),
    ];
    for (what, statement, proof) in cases {
        let out = kiln(tmp.path()).args(verify_args(&statement, &proof)).output().unwrap();
        assert!(!verified(&out), "accepted {what}");
    }

    // A verifying key of another sector size is rejected. The 2KiB key filed as
    // the 8MiB key (with a manifest saying so) stands in for a real 8MiB key.
    let statement = SealStatement {
        sector_size: SectorSize::KiB2,
        prover_id: ProverId::from_hex(v["prover_id"].as_str().unwrap()).unwrap(),
        sector_id: 1,
        ticket: Randomness([2; 32]),
        seed: Randomness([3; 32]),
        comm_d: Commitment::from_hex(v["comm_d"].as_str().unwrap()).unwrap(),
        comm_r: Commitment::from_hex(v["comm_r"].as_str().unwrap()).unwrap(),
    };
    let proof = hex::decode(&proof).unwrap();
    let vk2 = GrothParams::porep(&params, SectorSize::KiB2).seal_verifying_key().unwrap();
    assert!(verify_seal(&statement, &proof, &vk2).unwrap());
    let other = tmp.path().join("other-params");
    std::fs::create_dir(&other).unwrap();
    let p8 = GrothParams::porep(&other, SectorSize::MiB8);
    std::fs::copy(GrothParams::porep(&params, SectorSize::KiB2).vk_path(), p8.vk_path()).unwrap();
    let digest = proofs::snark::params::file_digest(&p8.vk_path()).unwrap();
    let name = p8.vk_path().file_name().unwrap().to_str().unwrap().to_string();
    let manifest =
        serde_json::json!({ name: {"sector_size": 8u64 << 20, "circuit": "PoRep", "digest": digest} });
    std::fs::write(other.join("kiln-local-manifest.json"), manifest.to_string()).unwrap();
    assert!(!verify_seal(&statement, &proof, &p8.seal_verifying_key().unwrap()).unwrap());
    // ... and a statement about another size finds no key rather than passing.
    let out = kiln(tmp.path())
        .args(verify_args(&v, &hex::encode(&proof)))
        .args(["--sector-size", "8MiB", "--param-dir", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn c2_runs_from_a_c1_file_in_another_process_and_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let params = param_dir();
    let reference = vector("seal_2KiB_data.json");
    let data = pattern(2032);
    let sector = tmp.path().join("sector");
    let mut args = pre_commit_args(&sector, 2);
    let mut at = 0;
    for (i, len) in [1016usize, 508, 508].into_iter().enumerate() {
        let piece = tmp.path().join(format!("piece-{i}"));
        std::fs::write(&piece, &data[at..at + len]).unwrap();
        at += len;
        args.extend(["--piece".into(), piece.to_str().unwrap().into()]);
    }
    let pre = json_of(&kiln(tmp.path()).args(&args).output().unwrap());
    assert_eq!(pre["comm_r"], reference["comm_r"]);

    let c1_file = tmp.path().join("c1.bin");
    let out = {
        let _one = PROVING.lock().unwrap_or_else(|e| e.into_inner());
        kiln(tmp.path())
            .args(["seal", "commit", "--seed", &hex32("03"), "--json", "--dir", sector.to_str().unwrap()])
            .args(["--c1-out", c1_file.to_str().unwrap(), "--param-dir", params.to_str().unwrap()])
            .args(["--c1-reference-json", tmp.path().join("c1-reference.json").to_str().unwrap()])
            .output()
            .unwrap()
    };
    let committed = json_of(&out);
    assert_eq!(committed["verified"], true);
    assert_eq!(committed["challenges"], reference["c1_challenges_formula"]);
    let reference_json = std::fs::read(tmp.path().join("c1-reference.json")).unwrap();
    assert_eq!(sha256_hex(&reference_json), reference["c1_output_json_sha256"].as_str().unwrap());

    // Unseal before and after finalize.
    let unsealed = tmp.path().join("range");
    let unseal = |offset: &str, len: &str| {
        let out = kiln(tmp.path())
            .args(["unseal", "--dir", sector.to_str().unwrap(), "--offset", offset, "--len", len, "--out"])
            .arg(&unsealed)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read(&unsealed).unwrap()
    };
    assert_eq!(unseal("100", "300"), data[100..400]);
    let out =
        kiln(tmp.path()).args(["seal", "finalize", "--dir", sector.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(unseal("0", "2032"), data);
    // Output into the sector directory is refused, by any path to it: the
    // replica (and every file beside it) stays as it was.
    let replica = std::fs::read(sector.join("sealed")).unwrap();
    let link = tmp.path().join("sector-link");
    std::os::unix::fs::symlink(&sector, &link).unwrap();
    for out_path in
        [sector.join("sealed"), link.join("sealed"), sector.join("cache/../sealed"), sector.join("new-file")]
    {
        let out = kiln(tmp.path())
            .args(["unseal", "--dir", sector.to_str().unwrap(), "--out"])
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{} was accepted", out_path.display());
        assert!(stderr(&out).contains("inside the sector directory"), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read(sector.join("sealed")).unwrap(), replica, "the replica is untouched");
    assert!(!sector.join("new-file").exists());

    // C2 elsewhere: only the C1 file travels; the sector is gone.
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("job.c1");
    std::fs::rename(&c1_file, &moved).unwrap();
    std::fs::remove_dir_all(&sector).unwrap();
    let out = {
        let _one = PROVING.lock().unwrap_or_else(|e| e.into_inner());
        kiln(elsewhere.path())
            .current_dir(elsewhere.path())
            .args(["seal", "c2", "--c1", "job.c1", "--json", "--param-dir", params.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let remote = json_of(&out);
    assert_eq!(remote["verified"], true);
    assert_eq!(remote["comm_r"], reference["comm_r"]);
    assert_ne!(remote["proof"], committed["proof"], "Groth16 proofs are randomised");

    // Malformed and truncated C1 files: a clear error, no panic, no proving.
    let bytes = std::fs::read(&moved).unwrap();
    for (name, content) in [
        ("truncated.c1", bytes[..bytes.len() / 3].to_vec()),
        ("garbage.c1", b"{\"version\": 1, \"identity\": 42}".to_vec()),
        ("empty.c1", Vec::new()),
    ] {
        let path = elsewhere.path().join(name);
        std::fs::write(&path, content).unwrap();
        let out = kiln(elsewhere.path()).args(["seal", "c2", "--c1"]).arg(&path).output().unwrap();
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("malformed C1 output") && err.contains(name), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_corrupt_parameter_file_is_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = GrothParams::porep(param_dir(), SectorSize::KiB2);
    let dir = tmp.path().join("params");
    std::fs::create_dir(&dir).unwrap();
    let copy = GrothParams::porep(&dir, SectorSize::KiB2);
    std::fs::copy(shared.vk_path(), copy.vk_path()).unwrap();
    std::fs::copy(param_dir().join("kiln-local-manifest.json"), dir.join("kiln-local-manifest.json"))
        .unwrap();

    let check = |extra: &[&str]| {
        kiln(tmp.path()).args(["params", "verify", "--param-dir"]).arg(&dir).args(extra).output().unwrap()
    };
    let out = check(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The proving parameters were not copied: reported missing.
    let out = check(&["--sector-size", "2KiB"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing"));

    let mut vk = std::fs::read(copy.vk_path()).unwrap();
    vk[200] ^= 0x10;
    std::fs::write(copy.vk_path(), vk).unwrap();
    let out = check(&[]);
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    let name = copy.vk_path().file_name().unwrap().to_str().unwrap().to_string();
    assert!(report.contains("corrupt") && report.contains(&name), "{report}");

    // Loading it for verification fails the same way, naming the file.
    let err = copy.seal_verifying_key().err().expect("corrupt key refused").to_string();
    assert!(err.contains(&name) && err.contains("digest"), "{err}");
}
