//! Exactly-once sends through a Lotus node: the outbox records every signed
//! message before it pushes it, so a crash before or after the push neither
//! loses nor duplicates a message. The node here is Lotus-shaped (every
//! request checked against Lotus's published shapes) with a mempool that
//! refuses a second message under a nonce, as Lotus's does.

mod lotus_openrpc;

use lotus_openrpc::{node, Reply};
use sealing::chain::lotus::json::{AddressJson, AttoFil, Base64, MessageJson, SignedMessageJson};
use sealing::chain::lotus::message::signed_message_cid;
use sealing::chain::lotus::outbox::{Outbox, OutboxError};
use sealing::chain::lotus::rpc::{LotusClient, RpcConfig};
use sealing::chain::{Message, ProveCommitSector, SealingMethod};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The node's mempool: accepted messages by nonce, and every push seen.
#[derive(Default)]
struct Mempool {
    by_nonce: BTreeMap<u64, String>,
    pushes: Vec<String>,
    /// Sign with this nonce instead of the one asked (a misbehaving node).
    sign_nonce: Option<u64>,
}

fn mempool_node() -> (String, Arc<Mutex<Mempool>>) {
    let pool = Arc::new(Mutex::new(Mempool::default()));
    let p = pool.clone();
    let node = node("secret", move |method, params| {
        let mut pool = p.lock().unwrap();
        match method {
            "Filecoin.MpoolGetNonce" => Reply::Json(json!(pool.by_nonce.len())),
            "Filecoin.WalletSignMessage" => {
                let mut message = params[1].clone();
                if let Some(n) = pool.sign_nonce {
                    message["Nonce"] = json!(n);
                }
                let data = format!("sig-{}", message["Nonce"]);
                Reply::Json(json!({
                    "Message": message,
                    "Signature": { "Type": 1, "Data": Base64(data.into_bytes()) },
                }))
            }
            "Filecoin.MpoolPush" => {
                let signed: SignedMessageJson = serde_json::from_value(params[0].clone()).unwrap();
                let cid = signed_message_cid(&signed).unwrap().to_string();
                pool.pushes.push(cid.clone());
                let nonce = signed.message.nonce;
                if pool.by_nonce.contains_key(&nonce) {
                    return Reply::Error(1, "message with nonce already exists");
                }
                pool.by_nonce.insert(nonce, cid.clone());
                Reply::Json(json!({ "/": cid }))
            }
            other => panic!("unexpected {other}"),
        }
    });
    (node.url, pool)
}

fn lotus(url: &str) -> LotusClient {
    LotusClient::new(RpcConfig {
        url: url.to_string(),
        token: Some("secret".into()),
        timeout: Duration::from_secs(5),
        read_attempts: 2,
        retry_backoff: Duration::from_millis(10),
    })
}

fn unsigned(method: u64) -> MessageJson {
    MessageJson {
        version: 0,
        to: AddressJson::parse("f01000").unwrap(),
        from: AddressJson::parse("f01001").unwrap(),
        nonce: 0,
        value: AttoFil(0),
        gas_limit: 1_000_000,
        gas_fee_cap: AttoFil(100),
        gas_premium: AttoFil(10),
        method,
        params: Base64(vec![0x81, 0x80]),
        cid: None,
    }
}

fn prove(sectors: &[u64]) -> Message {
    Message::ProveCommitSectors {
        sectors: sectors
            .iter()
            .map(|&sector| ProveCommitSector { sector, pieces: vec![], proof: vec![1; 4] })
            .collect(),
    }
}

#[test]
fn each_message_gets_its_own_nonce_and_is_found_by_sector() {
    // Fail points are per process: a scenario holds them for one test at a time.
    let _scenario = fail::FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let (url, pool) = mempool_node();
    let (lotus, outbox) = (lotus(&url), Outbox::open(&tmp.path().join("kiln.db")).unwrap());
    let a = outbox.send(&lotus, &prove(&[1, 2]), unsigned(34), 1).unwrap();
    let b = outbox.send(&lotus, &prove(&[3]), unsigned(34), 2).unwrap();
    let c = outbox.send(&lotus, &prove(&[2]), unsigned(34), 3).unwrap();
    let log = outbox.after(0, 10).unwrap();
    let got: Vec<(u64, bool)> = log.iter().map(|r| (r.nonce, r.pushed)).collect();
    assert_eq!(got, [(0, true), (1, true), (2, true)]);
    assert_eq!(log.iter().map(|r| r.cid).collect::<Vec<_>>(), [a, b, c]);
    let pool = pool.lock().unwrap();
    assert_eq!(pool.pushes.len(), 3, "each pushed once");
    assert_eq!(pool.by_nonce.values().cloned().collect::<Vec<_>>(), [a, b, c].map(|c| c.0.to_string()));
    assert_eq!(outbox.find_sent(SealingMethod::ProveCommit, 2).unwrap().unwrap().cid, c, "the newest");
    assert_eq!(outbox.find_sent(SealingMethod::ProveCommit, 1).unwrap().unwrap().cid, a);
    assert!(outbox.find_sent(SealingMethod::PreCommit, 1).unwrap().is_none());
    assert_eq!(outbox.by_cid(&b).unwrap().unwrap().message, prove(&[3]));
}

/// Killed after recording and before pushing: the next start pushes the
/// recorded bytes (same CID) once. Killed after pushing and before marking
/// it pushed: the push again is refused by the node (it has the nonce), which
/// the outbox takes as pushed. The node accepts every message exactly once.
#[test]
fn a_crash_around_the_push_neither_loses_nor_duplicates_a_message() {
    let scenario = fail::FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("kiln.db");
    let (url, pool) = mempool_node();
    let lotus = lotus(&url);
    for point in ["lotus:recorded-unpushed", "lotus:pushed-unmarked"] {
        fail::cfg(point, "panic").unwrap();
        let outbox = Outbox::open(&db).unwrap();
        let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            outbox.send(&lotus, &prove(&[7]), unsigned(34), 1)
        }));
        assert!(crashed.is_err(), "{point} did not fire");
        fail::remove(point);
        drop(outbox);
        let outbox = Outbox::open(&db).unwrap();
        let recorded = outbox.find_sent(SealingMethod::ProveCommit, 7).unwrap().unwrap();
        assert!(!recorded.pushed, "{point}: not known pushed before the restart");
        outbox.flush(&lotus).unwrap();
        assert!(outbox.at(recorded.seq).unwrap().unwrap().pushed, "{point}");
    }
    let outbox = Outbox::open(&db).unwrap();
    let next = outbox.send(&lotus, &prove(&[8]), unsigned(34), 9).unwrap();
    let log = outbox.after(0, 10).unwrap();
    assert_eq!(log.iter().map(|r| r.nonce).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(log.iter().all(|r| r.pushed));
    let pool = pool.lock().unwrap();
    let accepted: Vec<String> = pool.by_nonce.values().cloned().collect();
    assert_eq!(accepted, log.iter().map(|r| r.cid.0.to_string()).collect::<Vec<_>>());
    assert_eq!(accepted[2], next.0.to_string());
    // Pushes: the first crash pushed nothing (then one flush); the second
    // pushed, then the flush pushed again and was refused; then the last.
    assert_eq!(pool.pushes.len(), 4, "{:?}", pool.pushes);
    drop(scenario);
}

#[test]
fn a_node_that_signs_another_message_is_refused_and_nothing_is_recorded() {
    let _scenario = fail::FailScenario::setup();
    let tmp = tempfile::tempdir().unwrap();
    let (url, pool) = mempool_node();
    let (lotus, outbox) = (lotus(&url), Outbox::open(&tmp.path().join("kiln.db")).unwrap());
    pool.lock().unwrap().sign_nonce = Some(5);
    let err = outbox.send(&lotus, &prove(&[1]), unsigned(34), 1).unwrap_err();
    assert!(matches!(err, OutboxError::Mismatch(_)), "{err}");
    assert!(outbox.after(0, 10).unwrap().is_empty());
    assert!(pool.lock().unwrap().pushes.is_empty());
}
