//! The API answers while the chain verifies a proof: the verifier double
//! blocks until the test releases it, and every API call made meanwhile
//! (sectors, one sector, chain head, chain messages, status) answers. Before
//! the store and the chain were locked apart, each of them waited for the
//! verification to end.

use proofs::snark::SealStatement;
use proofs::{Commitment, SectorSize};
use sealing::api::client::Client;
use sealing::api::server::{router, ApiContext};
use sealing::chain::{
    EmbeddedChain, EmbeddedChainConfig, Message, PreCommitSector, ProveCommitSector, SealVerifier,
};
use sealing::clock::{Clock, ManualClock};
use sealing::config::Config;
use sealing::ledger::Ledger;
use sealing::lifecycle::RetryPolicy;
use sealing::pipeline::PipelineConfig;
use sealing::store::SqliteStore;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Signals when a verification starts, then blocks until released; accepts every proof.
struct BlockingVerifier {
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl SealVerifier for BlockingVerifier {
    fn verify(&self, _: &SealStatement, _: &[u8]) -> Result<bool, proofs::Error> {
        let _ = self.entered.lock().unwrap().send(());
        let _ = self.release.lock().unwrap().recv();
        Ok(true)
    }
}

const BLOCK: i64 = 1_000;

#[test]
fn api_calls_answer_while_the_chain_verifies_a_proof() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("kiln.db");
    let clock = Arc::new(ManualClock::new(0));
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let verifier = BlockingVerifier { entered: Mutex::new(entered_tx), release: Mutex::new(release_rx) };
    let chain_config =
        EmbeddedChainConfig { block_time_ms: BLOCK as u64, seed_delay: 1, ..Default::default() };
    let chain = EmbeddedChain::open(&db, chain_config, Box::new(verifier), clock.as_ref()).unwrap();
    let store = SqliteStore::open(&db, RetryPolicy::default()).unwrap();
    let ledger = Ledger::new(Box::new(store), Box::new(chain), clock.clone());
    ledger.store().create_sector(SectorSize::KiB2, true, clock.now_ms()).unwrap();

    // A PreCommit lands; a ProveCommit is sent once the seed is out.
    clock.set(10 * BLOCK);
    let precommit = Message::PreCommitSectors {
        sectors: vec![PreCommitSector {
            sector: 1,
            sector_size: SectorSize::KiB2,
            comm_r: Commitment([1; 32]),
            comm_d: Commitment([2; 32]),
            ticket_epoch: 9,
            expiration: 1_000_000,
        }],
    };
    ledger.chain().send(&precommit, clock.now_ms()).unwrap();
    clock.set(13 * BLOCK);
    let prove = ledger
        .chain()
        .send(
            &Message::ProveCommitSectors {
                sectors: vec![ProveCommitSector { sector: 1, pieces: vec![], proof: vec![7; 192] }],
            },
            clock.now_ms(),
        )
        .unwrap();
    clock.set(14 * BLOCK);

    // Whoever reads the chain next executes the ProveCommit: here a thread
    // standing in for the driver, which blocks inside the verification.
    let executor = {
        let ledger = ledger.clone();
        std::thread::spawn(move || ledger.chain().receipt(&prove, ledger.now_ms()).unwrap())
    };
    entered.recv_timeout(Duration::from_secs(30)).expect("the verification started");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let token = "t".repeat(64);
    let ctx = Arc::new(ApiContext {
        ledger: ledger.clone(),
        config: PipelineConfig::from_config(&Config::new(tmp.path().to_path_buf(), SectorSize::KiB2, 1000)),
        progress: Default::default(),
        paused: Default::default(),
        token: token.clone(),
        instance: "test".into(),
        history: Arc::new(sealing::api::metrics::History::new(1_000, 10)),
        sessions: Default::default(),
        tls: false,
        descriptors: wire::descriptors::Budget { limit: 1024, work: 512, caps: vec![500] },
        port: 0,
        worker_calls: Default::default(),
    });
    runtime.spawn(async move { axum::serve(listener, router(ctx)).await });

    // Each call runs on its own thread; it must answer while the verifier is still blocked.
    let answered = |name: &str, call: Box<dyn FnOnce(&Client) -> String + Send>| {
        let (tx, rx) = channel();
        let client = Client::new(&url, &token);
        std::thread::spawn(move || {
            let _ = tx.send(call(&client));
        });
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{name} waited for the verification"))
    };
    let sectors = answered("GET /v0/sectors", Box::new(|c| format!("{:?}", c.sectors().unwrap().len())));
    assert_eq!(sectors, "1");
    let status = answered("GET /v0/sectors/1", Box::new(|c| format!("{:?}", c.sector(1).unwrap().on_chain)));
    assert!(status.contains("proven: false"), "{status}");
    let head = answered("GET /v0/chain/head", Box::new(|c| format!("{:?}", c.chain_head().unwrap())));
    assert!(head.contains("epoch: 14") && head.contains("messages: 2"), "{head}");
    let pending = answered(
        "GET /v0/chain/messages",
        Box::new(|c| format!("{:?}", c.chain_messages().unwrap().last().unwrap().receipt)),
    );
    assert_eq!(pending, "None", "the ProveCommit is still being executed");
    answered("GET /v0/status", Box::new(|c| format!("{:?}", c.status().unwrap())));
    assert!(!executor.is_finished(), "the verification was still running throughout");

    release.send(()).unwrap();
    let receipt = executor.join().unwrap().expect("executed once released");
    assert_eq!(receipt.exit_code, 0);
    assert!(ledger.chain().precommit(1, clock.now_ms()).unwrap().unwrap().proven);
}
