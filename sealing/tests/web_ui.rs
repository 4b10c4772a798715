//! The web view in a real browser: headless Chromium, driven over WebDriver
//! by chromedriver (Debian's `chromium` and `chromium-driver`, installed by
//! `scripts/test-deps.sh`), loads `/ui` from a daemon whose sectors stand in
//! several states (a fast double of the proof engine) with a registered
//! worker. The test signs in with the token, reads the rendered DOM of every
//! page, retries a failed sector with the page's button (and checks that a
//! retry the sector's state refuses leaves its proof file), and saves a
//! screenshot of each page at 1280×800 (into `docs/ui/` when
//! `KILN_UPDATE_SCREENSHOTS=1`, else into the build's temporary directory).

mod worker_common;

use proofs::sdr::layers::Progress;
use proofs::seal::SectorDir;
use proofs::{Commitment, Randomness};
use sealing::chain::SealVerifier;
use sealing::daemon::{Daemon, Parts};
use sealing::lifecycle::Disposition;
use sealing::pipeline::engine::{EngineError, PreCommitOutput, PreCommitTask, ProofEngine};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wire::api::SectorState;
use worker_common::*;

const PROOF: &[u8] = b"a fake proof";
const PC_ERROR: &str = "replica disk /srv/replicas is read-only";
const C1_ERROR: &str = "sector cache unreadable: tree-c.dat checksum mismatch";

/// Seals at once, except: sectors in `pc_fails` fail PC1 permanently once,
/// sector `held` reports labeling progress and waits while `hold` is set,
/// sector `c1_fails` fails C1 every time (temporarily) while it is set.
struct Engine {
    pc_fails: Mutex<HashSet<u64>>,
    held: u64,
    hold: AtomicBool,
    c1_fails: AtomicU64,
}

fn sector_of(dir: &SectorDir) -> u64 {
    dir.root().file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

impl ProofEngine for Engine {
    fn pc1(
        &self,
        dir: &SectorDir,
        task: &PreCommitTask,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), EngineError> {
        let n = task.identity.sector_id;
        if self.pc_fails.lock().unwrap().remove(&n) {
            return Err(EngineError::failed(PC_ERROR, Disposition::Permanent));
        }
        if n == self.held {
            progress(Progress {
                phase: proofs::sdr::layers::ProgressPhase::Labeling,
                layer: Some(2),
                done: 40,
                total: 64,
            });
            while self.hold.load(Ordering::Relaxed) && !cancel.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::fs::create_dir_all(dir.root()).unwrap();
        Ok(())
    }
    fn pc2(
        &self,
        _: &SectorDir,
        task: &PreCommitTask,
        _: &AtomicBool,
        _: &mut dyn FnMut(Progress),
    ) -> Result<PreCommitOutput, EngineError> {
        let n = task.identity.sector_id;
        Ok(PreCommitOutput { comm_d: Commitment([n as u8; 32]), comm_r: Commitment([n as u8 + 100; 32]) })
    }
    fn c1(&self, dir: &SectorDir, seed: &Randomness) -> Result<Vec<u8>, EngineError> {
        if sector_of(dir) == self.c1_fails.load(Ordering::Relaxed) {
            return Err(EngineError::failed(C1_ERROR, Disposition::Temporary));
        }
        Ok(seed.0.to_vec())
    }
    fn c2(&self, _: &[u8]) -> Result<Vec<u8>, EngineError> {
        Ok(PROOF.to_vec())
    }
    fn finalize(&self, _: &SectorDir, _: bool) -> Result<(), EngineError> {
        Ok(())
    }
}

struct Verifier;

impl SealVerifier for Verifier {
    fn verify(&self, _: &proofs::snark::SealStatement, proof: &[u8]) -> Result<bool, proofs::Error> {
        Ok(proof == PROOF)
    }
    fn verify_post(
        &self,
        _: &proofs::post::PostProof,
        _: &Randomness,
        _: &[(u64, Commitment)],
        _: &[u8],
    ) -> Result<bool, proofs::Error> {
        Ok(false)
    }
}

/// The few WebDriver commands the test needs (W3C protocol over HTTP).
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    fn start() -> Self {
        let chromium = Path::new("/usr/bin/chromium");
        assert!(
            chromium.exists() && which("chromedriver").is_some(),
            "this test needs Debian's chromium and chromium-driver: run scripts/test-deps.sh"
        );
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        wait_for(Duration::from_secs(30), "chromedriver", || {
            let status: Value = ureq::get(&format!("{base}/status")).call().ok()?.into_json().ok()?;
            status["value"]["ready"].as_bool().filter(|r| *r)
        });
        let profile = std::env::temp_dir().join(format!("kiln-ui-test-{}", std::process::id()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1280,800", "--hide-scrollbars",
                         format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let answer: Value =
            ureq::post(&format!("{base}/session")).send_json(caps).unwrap().into_json().unwrap();
        let session = answer["value"]["sessionId"].as_str().expect("a WebDriver session").to_string();
        Self { driver, base, session }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = ureq::request(method, &url);
        let answer = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match answer {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].take(),
            Err(ureq::Error::Status(code, r)) => {
                panic!("WebDriver {path}: {code} {}", r.into_string().unwrap())
            }
            Err(e) => panic!("WebDriver {path}: {e}"),
        }
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page.
    fn eval(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": [] })))
    }

    /// Polls `script` until it returns something other than null or false.
    fn wait(&self, what: &str, script: &str) -> Value {
        wait_for(Duration::from_secs(30), what, || {
            let v = self.eval(script);
            (!v.is_null() && v != Value::Bool(false)).then_some(v)
        })
    }

    fn element(&self, css: &str) -> String {
        let v = self.call("POST", "/element", Some(json!({ "using": "css selector", "value": css })));
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("an element").to_string()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/value"), Some(json!({ "text": text })));
    }

    fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let png = self.call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

fn screenshot_dir() -> PathBuf {
    if std::env::var("KILN_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ui")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui")
    }
}

fn state_of(config: &sealing::config::Config, n: u64) -> SectorState {
    client(config).sector(n).unwrap().sector.lifecycle.state
}

#[test]
fn the_web_view_shows_the_pipeline_and_retries_a_failed_sector_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(tmp.path(), false, 1);
    config.limits.pre_commit = 4;
    config.limits.pc1_batch = 1;
    config.proving.enabled = false;
    // A failed step waits an hour before it is retried on its own.
    config.retry.base_backoff_ms = 3_600_000;
    config.retry.max_backoff_ms = 3_600_000;
    config.metrics.history_interval_ms = 500;
    let engine = Arc::new(Engine {
        pc_fails: Mutex::new(HashSet::from([2])),
        held: 3,
        hold: AtomicBool::new(true),
        c1_fails: AtomicU64::new(4),
    });
    let parts = Parts {
        engine: engine.clone(),
        verifier: Arc::new(Verifier),
        clock: sealing::clock::system(),
        store: None,
        chain: None,
    };
    let daemon = Daemon::start_with(&config, parts).unwrap();
    let url = daemon.url();
    let token = std::fs::read_to_string(config.data_dir.join("token")).unwrap();

    // Unauthenticated: the page and the metrics are refused.
    for path in ["/ui", "/ui/app.js", "/metrics", "/v0/history"] {
        match ureq::get(&format!("{url}{path}")).call() {
            Err(ureq::Error::Status(401, _)) => {}
            other => panic!("{path} without a token: expected 401, got {other:?}"),
        }
    }

    // Signing in sets a session cookie; signing out ends it.
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let signed_in = agent.post(&format!("{url}/ui/login")).send_form(&[("token", token.trim())]).unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    assert!(!cookie.contains(token.trim()), "the cookie does not carry the token");
    let port = daemon.addr().port();
    assert!(cookie.starts_with(&format!("kiln_session_{port}=")), "named after the port: {cookie}");
    // The page key comes in the redirect's fragment only (never sent to a server).
    let location = signed_in.header("location").unwrap().to_string();
    let key = location.strip_prefix("/ui#key=").unwrap_or_else(|| panic!("{location}")).to_string();
    assert!(!cookie.contains(&key));
    // The status of a request carrying the cookie and `header` as the page's key.
    let with = |path: &str, header: &str| match agent
        .get(&format!("{url}{path}"))
        .set("Cookie", &cookie)
        .set("X-Kiln-UI", header)
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{path}: {e}"),
    };
    let with_cookie = |path: &str| with(path, &key);
    assert_eq!(with_cookie("/ui"), 200);
    assert_eq!(with_cookie("/v0/sectors"), 200);
    // The cookie alone (which any service on this host may receive, and any
    // site make a browser send) opens no API call, with any header but the key.
    let cookie_only = agent.get(&format!("{url}/v0/sectors")).set("Cookie", &cookie).call();
    assert!(matches!(cookie_only, Err(ureq::Error::Status(401, _))), "the API without the page's key");
    for guess in ["1", "", &"0".repeat(64)] {
        assert_eq!(with("/v0/sectors", guess), 401, "X-Kiln-UI: {guess:?}");
    }
    agent.post(&format!("{url}/ui/logout")).set("Cookie", &cookie).call().unwrap();
    for path in ["/ui", "/v0/sectors"] {
        assert_eq!(with_cookie(path), 401, "{path} after signing out");
    }
    match agent.post(&format!("{url}/ui/login")).send_form(&[("token", "wrong")]) {
        Err(ureq::Error::Status(401, r)) => {
            assert!(r.into_string().unwrap().contains("not this daemon's token"))
        }
        other => panic!("a wrong token: {other:?}"),
    }

    let worker_token = worker_token(&config, "gpu-box-1");
    let worker = Worker::start(worker_config(&url, &worker_token, &tmp.path().join("no-params")));
    wait_online(&config, "gpu-box-1");

    assert_eq!(client(&config).pledge(4).unwrap().sectors, vec![1, 2, 3, 4]);
    let want = [
        (1, SectorState::Proving),
        (2, SectorState::Failed),
        (3, SectorState::Unsealed),
        (4, SectorState::ComputeProofFailed),
    ];
    wait_for(Duration::from_secs(60), "sectors in their states", || {
        want.iter().all(|&(n, s)| state_of(&config, n) == s).then_some(())
    });

    let browser = Browser::start();
    let shots = screenshot_dir();
    browser.go(&format!("{url}/ui"));
    browser.wait("the sign-in form", "return document.getElementById('token') !== null");
    browser.type_into("#token", token.trim());
    browser.click("#sign-in");

    // Pipeline: every sector with its state, the failed ones first with their errors.
    browser.wait(
        "the pipeline rows",
        "return document.querySelectorAll('#pipeline tr[data-sector]').length === 4",
    );
    let rows = browser.eval(
        "return [...document.querySelectorAll('#pipeline tr[data-sector]')].map(r => ({
            n: Number(r.dataset.sector), state: r.querySelector('td.state').textContent.trim(),
            error: (r.querySelector('.error') || {}).textContent || '',
            running: r.querySelectorAll('td.stage.running').length,
            failed: r.querySelectorAll('td.stage.failed').length }))",
    );
    let rows = rows.as_array().unwrap();
    for &(n, state) in &want {
        let row = rows.iter().find(|r| r["n"] == n).unwrap_or_else(|| panic!("sector {n} listed: {rows:?}"));
        assert_eq!(row["state"], state.name(), "sector {n}: {row}");
    }
    let row = |n: u64| rows.iter().find(|r| r["n"] == n).unwrap();
    assert!(row(2)["error"].as_str().unwrap().contains(PC_ERROR), "{}", row(2));
    assert!(row(4)["error"].as_str().unwrap().contains(C1_ERROR), "{}", row(4));
    assert!(row(2)["failed"].as_u64().unwrap() >= 1 && row(4)["failed"].as_u64().unwrap() >= 1);
    assert_eq!(row(3)["running"], 1, "PC1 of sector 3 runs: {}", row(3));
    let order: Vec<u64> = rows.iter().map(|r| r["n"].as_u64().unwrap()).collect();
    assert!(
        order.iter().position(|&n| n == 2) < order.iter().position(|&n| n == 1),
        "failed sectors first: {order:?}"
    );
    browser.wait("the history chart", "return document.querySelector('#history-chart svg') !== null");
    browser.screenshot(&shots.join("pipeline.png"));

    // Workers: the registered one.
    browser.go(&format!("{url}/ui#/workers"));
    let state = browser.wait(
        "the worker listed",
        "const r = document.querySelector('#workers tr[data-worker=\"gpu-box-1\"]'); return r && r.dataset.state",
    );
    assert_eq!(state, "online");
    browser.screenshot(&shots.join("workers.png"));

    // Tasks (every task the API lists), proving and chain pages.
    let tasks = client(&config).tasks(None).unwrap().len();
    for (page, rows, least) in [
        ("tasks", "#tasks tr[data-task]", tasks),
        ("proving", "#deadlines tr", 1),
        ("chain", "#messages tr[data-message]", 2),
    ] {
        browser.go(&format!("{url}/ui#/{page}"));
        browser.wait(
            &format!("the {page} page"),
            &format!("return document.querySelectorAll('{rows}').length >= {least}"),
        );
        browser.screenshot(&shots.join(format!("{page}.png")));
    }

    // The failed sector's page: its error, then retry (confirmed) changes its state.
    browser.go(&format!("{url}/ui#/sector/2"));
    browser.wait("the sector's events", "return document.querySelector('#events tr.ev-error') !== null");
    let text = browser.eval("return document.getElementById('page').innerText");
    assert!(text.as_str().unwrap().contains(PC_ERROR), "{text}");
    browser.screenshot(&shots.join("sector.png"));
    browser.click("button[data-action=\"retry\"]");
    browser.wait("the confirmation", "return document.getElementById('confirm-yes') !== null");
    assert_eq!(state_of(&config, 2), SectorState::Failed, "nothing happens before the confirmation");
    browser.click("#confirm-yes");
    wait_for(Duration::from_secs(30), "sector 2 retried", || {
        (state_of(&config, 2) != SectorState::Failed).then_some(())
    });
    let shown = browser.wait(
        "the new state on the page",
        "const s = document.getElementById('sector-state'); return s && s.textContent.trim() !== 'Failed' && s.textContent.trim()",
    );
    assert_ne!(shown, "Failed");

    // Nothing the page loaded came from anywhere but the daemon.
    let loaded = browser.eval("return performance.getEntriesByType('resource').map(e => e.name)");
    let loaded = loaded.as_array().unwrap();
    assert!(!loaded.is_empty());
    for name in loaded {
        assert!(name.as_str().unwrap().starts_with(&url), "a request left the daemon: {name}");
    }

    // A retry the sector's state refuses touches nothing: sector 4, retried
    // once its C1 works and then proven, keeps the file at its proof path
    // (a refused retry deleted it before answering 409).
    engine.c1_fails.store(0, Ordering::Relaxed);
    client(&config).retry(4).unwrap();
    wait_for(Duration::from_secs(60), "sector 4 proven", || {
        (state_of(&config, 4) == SectorState::Proving).then_some(())
    });
    let proof = sealing::pipeline::PipelineConfig::from_config(&config).proof_path(4);
    std::fs::create_dir_all(proof.parent().unwrap()).unwrap();
    std::fs::write(&proof, b"kept").unwrap();
    match client(&config).retry(4) {
        Err(sealing::api::client::ClientError::Api { status: 409, .. }) => {}
        other => panic!("a retry of a proven sector: {other:?}"),
    }
    assert_eq!(std::fs::read(&proof).unwrap(), b"kept", "a refused retry removed the proof file");

    engine.hold.store(false, Ordering::Relaxed);
    drop(browser);
    worker.stop().unwrap();
    daemon.stop();
}
