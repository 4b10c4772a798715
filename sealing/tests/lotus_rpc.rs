//! Kiln's Lotus client against Lotus's published contract: every request it
//! makes has the method name, positional parameter count and JSON shapes of
//! Lotus's OpenRPC document, every answer of those shapes decodes, and a
//! node that fails (refuses the token, answers an error or garbage, cannot
//! be reached) gets the error that names it.

mod lotus_openrpc;

use lotus_openrpc::{check_request, conforms, node, sample, shapes, Reply, KILN_METHODS};
use sealing::chain::lotus::json::{
    AddressJson, AttoFil, Base64, BitFieldJson, CidJson, MessageJson, MessageSendSpec,
    SectorPreCommitInfoJson, SignatureJson, SignedMessageJson, TipSetKey,
};
use sealing::chain::lotus::rpc::{LotusClient, RpcConfig, RpcError};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn shapes_are_what_lotus_document_gives() {
    let Some(path) = lotus_openrpc::lotus_document() else {
        eprintln!("Lotus's OpenRPC document is not on this machine: checked the committed shapes only");
        return;
    };
    let document: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let extracted = lotus_openrpc::extract(&document);
    if std::env::var_os("KILN_UPDATE_SHAPES").is_some() {
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lotus_openrpc/shapes.json");
        std::fs::write(out, serde_json::to_string_pretty(&extracted).unwrap() + "\n").unwrap();
    }
    assert_eq!(extracted, shapes(), "shapes.json is stale: rerun with KILN_UPDATE_SHAPES=1");
    // Where the schemas and the examples disagree (listed in docs/chain.md).
    for line in lotus_openrpc::schema_disagreements(&document) {
        println!("{line}");
    }
}

#[test]
fn the_checker_refuses_what_lotus_would_not_read() {
    let shapes = shapes();
    let request = |method: &str, params: Value| json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let tsk = json!([{ "/": "bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4" }]);
    check_request(&shapes, &request("Filecoin.StateMinerInfo", json!(["f01000", tsk]))).unwrap();
    for (method, params, why) in [
        ("Filecoin.StateMinerInfo", json!(["f01000"]), "1 parameters, Lotus takes 2"),
        ("Filecoin.StateMinerInfo", json!([1000, tsk]), "expected address"),
        ("Filecoin.StateMinerInfo", json!(["f01000", [{ "/": "nope" }]]), "expected a CID"),
        ("Filecoin.StateMinerInfo", json!(["f01000", { "Cids": [] }]), "expected an array"),
        ("Filecoin.StateMinerFoo", json!([]), "not a method kiln may call"),
        ("StateMinerInfo", json!(["f01000", tsk]), "not a method kiln may call"),
    ] {
        let err = check_request(&shapes, &request(method, params)).unwrap_err();
        assert!(err.contains(why), "{err} (wanted {why})");
    }
    let message = &shapes["Filecoin.MpoolPush"]["params"][0]["Message"];
    let mut m = sample(message);
    conforms(&m, message, "m").unwrap();
    m["Value"] = json!(5);
    assert!(conforms(&m, message, "m").unwrap_err().contains("expected bigint"));
    m["Value"] = json!("5");
    m["Extra"] = json!(1);
    assert!(conforms(&m, message, "m").unwrap_err().contains("field Extra"));
}

fn client(url: &str, token: &str) -> LotusClient {
    LotusClient::new(RpcConfig {
        url: url.to_string(),
        token: Some(token.to_string()),
        timeout: Duration::from_secs(5),
        read_attempts: 2,
        retry_backoff: Duration::from_millis(10),
    })
}

fn message(miner: AddressJson) -> MessageJson {
    MessageJson {
        version: 0,
        to: miner,
        from: AddressJson::parse("f01001").unwrap(),
        nonce: 0,
        value: AttoFil(0),
        gas_limit: 0,
        gas_fee_cap: AttoFil(0),
        gas_premium: AttoFil(0),
        method: 28,
        params: Base64(vec![0x81, 0x80]),
        cid: None,
    }
}

#[test]
fn every_call_kiln_makes_conforms_and_every_answer_of_lotus_shape_decodes() {
    let shapes = shapes();
    let answers = shapes.clone();
    let node = node("secret", move |method, _| Reply::Json(sample(&answers[method]["result"])));
    let lotus = client(&node.url, "secret");
    let miner = AddressJson::parse("f01000").unwrap();
    let head = lotus.chain_head().unwrap();
    let tsk = head.key();
    assert_eq!(tsk.0.len(), 1);
    lotus.chain_get_tipset_by_height(10, &tsk).unwrap();
    assert_eq!(lotus.state_network_version(&tsk).unwrap(), 42);
    let info = lotus.state_miner_info(&miner, &tsk).unwrap();
    assert_eq!(info.worker.id(), Some(1234));
    lotus.state_lookup_id(&miner, &tsk).unwrap();
    assert!(lotus.state_miner_sector_allocated(&miner, 9, &tsk).unwrap());
    lotus.state_miner_allocated(&miner, &tsk).unwrap();
    assert_eq!(
        lotus.state_get_randomness_from_tickets(5, 100, &[0x43, 0, 0xe8, 7], &tsk).unwrap(),
        b"byte array"
    );
    lotus.state_get_randomness_from_beacon(6, 100, &[0x43, 0, 0xe8, 7], &tsk).unwrap();
    let cid = CidJson("bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4".parse().unwrap());
    let precommit = SectorPreCommitInfoJson {
        seal_proof: 5,
        sector_number: 1,
        sealed_cid: cid,
        seal_rand_epoch: 10,
        deal_ids: None,
        expiration: 600_000,
        unsealed_cid: None,
    };
    assert_eq!(
        lotus.state_miner_pre_commit_deposit_for_power(&miner, &precommit, &tsk).unwrap(),
        AttoFil(1000)
    );
    lotus.state_miner_initial_pledge_for_sector(540_000, 2048, 0, &tsk).unwrap();
    let on_chain = lotus.state_sector_pre_commit_info(&miner, 1, &tsk).unwrap().unwrap();
    assert_eq!(on_chain.info.sector_number, 42);
    let deadline = lotus.state_miner_proving_deadline(&miner, &tsk).unwrap();
    assert_eq!(deadline.index, 42);
    lotus.state_miner_partitions(&miner, 3, &tsk).unwrap();
    lotus.state_miner_sectors(&miner, None, &tsk).unwrap();
    lotus.state_miner_sectors(&miner, Some(&BitFieldJson(vec![1, 2, 7])), &tsk).unwrap();
    lotus.state_miner_available_balance(&miner, &tsk).unwrap();
    lotus.wallet_balance(&miner).unwrap();
    let estimated = lotus
        .gas_estimate_message_gas(&message(miner), &MessageSendSpec { max_fee: AttoFil(10) }, &tsk)
        .unwrap();
    assert_eq!(estimated.gas_limit, 42);
    lotus.mpool_get_nonce(&miner).unwrap();
    let signed = lotus.wallet_sign_message(&miner, &message(miner)).unwrap();
    let pushed =
        SignedMessageJson { signature: SignatureJson { kind: 1, data: Base64(vec![1; 65]) }, ..signed };
    lotus.mpool_push(&pushed).unwrap();
    lotus.state_search_msg(&TipSetKey::default(), &cid, 900).unwrap().unwrap();

    assert!(node.refused.lock().unwrap().is_empty(), "{:?}", node.refused.lock().unwrap());
    let called = node.calls.lock().unwrap().clone();
    for method in KILN_METHODS {
        assert!(called.contains(&format!("Filecoin.{method}")), "{method} was not exercised");
    }
}

#[test]
fn a_failing_node_gets_the_error_that_names_it() {
    let node = node("secret", |method, _| match method {
        "Filecoin.StateNetworkVersion" => Reply::Http(503, "overloaded"),
        "Filecoin.MpoolGetNonce" => Reply::Malformed(json!("forty-two")),
        "Filecoin.StateSectorPreCommitInfo" => Reply::Json(Value::Null),
        _ => Reply::Http(500, "boom"),
    });
    let tsk = TipSetKey::default();
    let miner = AddressJson::parse("f01000").unwrap();
    let err = client(&node.url, "wrong").state_miner_info(&miner, &tsk).unwrap_err();
    assert!(matches!(err, RpcError::Unauthorized { status: 401, .. }), "{err}");
    assert!(err.to_string().contains("token_file"));
    let lotus = client(&node.url, "secret");
    let err = lotus.state_network_version(&tsk).unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("HTTP 503"), "{err}");
    let err = lotus.mpool_get_nonce(&miner).unwrap_err();
    assert!(
        matches!(err, RpcError::Malformed { method: "MpoolGetNonce", .. }) && !err.is_transient(),
        "{err}"
    );
    // Absent is an answer, not an error.
    assert!(lotus.state_sector_pre_commit_info(&miner, 5, &tsk).unwrap().is_none());
    // A node that answers JSON-RPC errors: an invalid request (here, one kiln
    // would never send) is refused by the test node with its reason.
    let err = lotus.call::<Value>("StateMinerFoo", vec![]).unwrap_err();
    assert!(
        matches!(&err, RpcError::Node { code: 1, message, .. } if message.contains("not a method")),
        "{err}"
    );
    // Nobody listening: transient, with the URL.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/rpc/v1", gone.local_addr().unwrap());
    drop(gone);
    let err = client(&url, "secret").chain_head().unwrap_err();
    assert!(err.is_transient() && err.to_string().contains(&url), "{err}");
}

#[test]
fn the_head_and_randomness_come_from_the_node_with_the_actors_tags_and_entropy() {
    use sealing::chain::lotus::head::LotusHead;
    use sealing::chain::{ChainError, ChainHead, RandomnessKind};
    /// A randomness request: the method and its parameters.
    type Asked = (String, Vec<Value>);
    let asked: Arc<Mutex<Vec<Asked>>> = Arc::default();
    let (log, shapes) = (asked.clone(), shapes());
    let node = node("secret", move |method, params| match method {
        "Filecoin.ChainHead" => {
            let mut head = sample(&shapes["Filecoin.ChainHead"]["result"]);
            head["Height"] = json!(1000);
            head["Blocks"][0]["Height"] = json!(1000);
            head["Blocks"][0]["Timestamp"] = json!(1_700_030_000u64);
            Reply::Json(head)
        }
        "Filecoin.StateGetRandomnessFromTickets" | "Filecoin.StateGetRandomnessFromBeacon" => {
            log.lock().unwrap().push((method.to_string(), params.to_vec()));
            let len = if params[1] == json!(7) { 10 } else { 32 };
            let tag = params[0].as_u64().unwrap() as u8;
            Reply::Json(serde_json::to_value(Base64(vec![tag; len])).unwrap())
        }
        _ => Reply::Error(1, "unexpected"),
    });
    let head = LotusHead::connect(Arc::new(client(&node.url, "secret")), 1000).unwrap();
    assert_eq!(head.head(0).unwrap(), 1000);
    assert_eq!(head.epoch_start_ms(1000), 1_700_030_000_000);
    assert_eq!(head.epoch_start_ms(0), (1_700_030_000 - 30_000) * 1000);
    assert_eq!((head.ticket_lookback(), head.max_ticket_age()), (900, 3780));
    let miner = serde_json::to_value(Base64(vec![0x43, 0x00, 0xe8, 0x07])).unwrap();
    let cases = [
        (RandomnessKind::Ticket, "Tickets", 5, miner.clone()),
        (RandomnessKind::Seed, "Beacon", 6, miner.clone()),
        (RandomnessKind::WindowPost, "Beacon", 4, miner.clone()),
        (RandomnessKind::WinningPost, "Beacon", 3, miner),
        (RandomnessKind::ChainCommit, "Tickets", 9, json!("")),
    ];
    for (kind, source, tag, entropy) in cases {
        let r = head.randomness(kind, 100, 0).unwrap();
        assert_eq!(r.0, [tag as u8; 32], "{kind:?}");
        let (method, params) = asked.lock().unwrap().pop().unwrap();
        assert_eq!(method, format!("Filecoin.StateGetRandomnessFrom{source}"), "{kind:?}");
        assert_eq!(params[..3], [json!(tag), json!(100), entropy], "{kind:?}");
        let tsk: TipSetKey = serde_json::from_value(params[3].clone()).unwrap();
        assert_eq!(tsk.0.len(), 1, "drawn on the head's tipset");
    }
    assert!(matches!(head.randomness(RandomnessKind::Seed, 1001, 0), Err(ChainError::FutureEpoch { .. })));
    let short = head.randomness(RandomnessKind::Ticket, 7, 0).unwrap_err();
    assert!(short.to_string().contains("10 bytes"), "{short}");
}
