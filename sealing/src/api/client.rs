//! A blocking client of the daemon's API (what the `kiln` CLI uses).

use super::*;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wire::answers::OPERATOR_ANSWER_BYTES;
use wire::client::{call_bytes, call_json, Body, CallError};

/// Where a running daemon writes its API address, in its data directory.
pub const API_FILE: &str = "api";
/// With TLS on, the certificate chain the daemon serves, in its data directory.
pub const API_CERT_FILE: &str = "api.crt";
/// The file a running daemon holds locked, in its data directory.
pub const LOCK_FILE: &str = "lock";
/// Where the daemon keeps its API token, in its data directory.
pub const TOKEN_FILE: &str = "token";

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The data directory does not name a daemon.
    #[error("{path}: {reason} (is `kiln daemon` running with this data directory?)")]
    NoDaemon {
        /// The file that was read.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The daemon could not be reached.
    #[error("cannot reach the daemon at {url}: {reason}")]
    Unreachable {
        /// The API address.
        url: String,
        /// Why.
        reason: String,
    },
    /// A certificate to trust cannot be used.
    #[error(transparent)]
    Tls(#[from] wire::tls::TlsError),
    /// A request this client refuses to send.
    #[error("{0}")]
    InvalidArgument(String),
    /// The daemon answered with an error.
    #[error("{message} ({kind}, HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error kind.
        kind: ErrorKind,
        /// The daemon's message.
        message: String,
    },
}

const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to one daemon.
#[derive(Clone)]
pub struct Client {
    url: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the daemon at `url` (`http://host:port`, or `https://`
    /// with a certificate from a public CA).
    pub fn new(url: &str, token: &str) -> Self {
        Self::with_agent(url, token, ureq::AgentBuilder::new().timeout(CALL_TIMEOUT).build())
    }

    /// A client of the daemon at `url` that also trusts the PEM certificates in `ca`.
    pub fn with_ca(url: &str, token: &str, ca: &Path) -> Result<Self, ClientError> {
        Ok(Self::with_agent(url, token, wire::tls::agent(CALL_TIMEOUT, Some(ca))?))
    }

    fn with_agent(url: &str, token: &str, agent: ureq::Agent) -> Self {
        Self { url: url.trim_end_matches('/').to_string(), token: token.trim().to_string(), agent }
    }

    /// A client of the daemon whose data directory is `repo`.
    pub fn from_repo(repo: &Path) -> Result<Self, ClientError> {
        let read = |name: &str| {
            let path = repo.join(name);
            std::fs::read_to_string(&path)
                .map_err(|e| ClientError::NoDaemon { path: path.clone(), reason: e.to_string() })
                .and_then(|s| {
                    let s = s.trim().to_string();
                    if s.is_empty() {
                        Err(ClientError::NoDaemon { path, reason: "empty file".into() })
                    } else {
                        Ok(s)
                    }
                })
        };
        let (url, token) = (read(API_FILE)?, read(TOKEN_FILE)?);
        // The `api` file of a daemon that crashed names a port anything may
        // listen on now: the token goes only to a daemon that holds the data
        // directory's lock. (A lock we can take is held by no daemon.)
        let lock_path = repo.join(LOCK_FILE);
        if let Ok(lock) = std::fs::File::open(&lock_path) {
            if lock.try_lock_shared().is_ok() {
                return Err(ClientError::NoDaemon {
                    path: repo.join(API_FILE),
                    reason: "left by a daemon that is no longer running (no daemon holds the data directory's lock)"
                        .into(),
                });
            }
        }
        let cert = repo.join(API_CERT_FILE);
        if url.starts_with("https://") && cert.exists() {
            Self::with_ca(&url, &token, &cert)
        } else {
            Ok(Self::new(&url, &token))
        }
    }

    fn call<T: DeserializeOwned>(&self, request: ureq::Request, body: Body<'_>) -> Result<T, ClientError> {
        call_json(request, &self.token, body, OPERATOR_ANSWER_BYTES).map_err(|e| self.failed(e))
    }

    /// A failed call as the operator reads it: the daemon's refusal, or no usable answer.
    fn failed(&self, e: CallError) -> ClientError {
        match e {
            CallError::Refused { status, kind, message, .. } => ClientError::Api { status, kind, message },
            CallError::Unreachable { reason, .. } | CallError::BadAnswer { reason, .. } => {
                ClientError::Unreachable { url: self.url.clone(), reason }
            }
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(self.agent.get(&format!("{}{API_PREFIX}{path}", self.url)), Body::Empty)
    }

    fn post<T: DeserializeOwned>(&self, path: &str, body: serde_json::Value) -> Result<T, ClientError> {
        self.call(self.agent.post(&format!("{}{API_PREFIX}{path}", self.url)), Body::Json(body))
    }

    /// The daemon's Prometheus metrics (`GET /metrics`), as text.
    pub fn metrics(&self) -> Result<String, ClientError> {
        let request = self.agent.get(&format!("{}/metrics", self.url));
        call_bytes(request, &self.token, Body::Empty, OPERATOR_ANSWER_BYTES)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| self.failed(e))
    }

    /// The daemon's own state (paused task kinds).
    pub fn status(&self) -> Result<DaemonStatus, ClientError> {
        self.get("/status")
    }
    /// Every sector.
    pub fn sectors(&self) -> Result<Vec<SectorListEntry>, ClientError> {
        self.get("/sectors")
    }
    /// One sector with its pieces and event log.
    pub fn sector(&self, number: u64) -> Result<SectorStatus, ClientError> {
        self.get(&format!("/sectors/{number}"))
    }
    /// Pledges `count` committed-capacity sectors.
    pub fn pledge(&self, count: u32) -> Result<PledgeResponse, ClientError> {
        self.post("/sectors/pledge", serde_json::to_value(PledgeRequest { count }).expect("serialises"))
    }
    /// Adds a data piece the daemon reads from `path`.
    pub fn add_piece(&self, path: &Path) -> Result<AddedPiece, ClientError> {
        let req = AddPieceRequest { path: path.to_path_buf() };
        self.post("/sectors/add-piece", serde_json::to_value(req).expect("serialises"))
    }
    /// Asks for a sector's removal.
    pub fn remove(&self, number: u64) -> Result<SectorView, ClientError> {
        self.remove_with(number, false)
    }
    /// Removes a sector; with `force`, also one the chain still holds (it then
    /// fails its Window PoSts and is declared faulty).
    pub fn remove_with(&self, number: u64, force: bool) -> Result<SectorView, ClientError> {
        self.post(&format!("/sectors/{number}/remove"), serde_json::json!({ "force": force }))
    }
    /// Sends a failed sector back to the step that failed.
    pub fn retry(&self, number: u64) -> Result<SectorView, ClientError> {
        self.post(&format!("/sectors/{number}/retry"), serde_json::json!({}))
    }
    /// Stops work on a sector (it becomes Failed).
    pub fn abort(&self, number: u64, reason: &str) -> Result<SectorView, ClientError> {
        let req = AbortRequest { reason: reason.to_string() };
        self.post(&format!("/sectors/{number}/abort"), serde_json::to_value(req).expect("serialises"))
    }
    /// The chain's head.
    pub fn chain_head(&self) -> Result<ChainHead, ClientError> {
        self.get("/chain/head")
    }
    /// Every chain message (fetched a page at a time).
    pub fn chain_messages(&self) -> Result<Vec<ChainMessage>, ClientError> {
        self.all_pages(
            |after| format!("/chain/messages?after={after}&limit={MAX_PAGE}"),
            |m: &ChainMessage| m.seq,
        )
    }

    /// Where proving stands.
    pub fn proving(&self) -> Result<ProvingInfo, ClientError> {
        self.get("/proving")
    }
    /// Every deadline of the proving period.
    pub fn deadlines(&self) -> Result<Vec<DeadlineView>, ClientError> {
        self.get("/proving/deadlines")
    }
    /// Deadline `n` in full.
    pub fn deadline(&self, n: u64) -> Result<DeadlineDetail, ClientError> {
        self.get(&format!("/proving/deadlines/{n}"))
    }
    /// Reads the sectors of deadline `n` now, as its Window PoSt would.
    pub fn check_deadline(&self, n: u64) -> Result<Vec<SectorCheck>, ClientError> {
        self.post(&format!("/proving/deadlines/{n}/check"), serde_json::json!({}))
    }
    /// Faulty and recovering sectors, and recent health changes.
    pub fn faults(&self) -> Result<FaultsView, ClientError> {
        self.get("/proving/faults")
    }

    /// Every item of a paginated list, `path(after)` giving each page.
    fn all_pages<T: DeserializeOwned>(
        &self,
        path: impl Fn(u64) -> String,
        id: impl Fn(&T) -> u64,
    ) -> Result<Vec<T>, ClientError> {
        let mut out: Vec<T> = Vec::new();
        loop {
            let page: Vec<T> = self.get(&path(out.last().map_or(0, &id)))?;
            let last = page.len() < MAX_PAGE;
            out.extend(page);
            if last {
                return Ok(out);
            }
        }
    }
    /// Every registered worker with its state.
    pub fn workers(&self) -> Result<Vec<WorkerView>, ClientError> {
        self.get("/workers")
    }
    /// Clears worker `name`'s unhealthy mark.
    pub fn reset_worker(&self, name: &str) -> Result<WorkerReset, ClientError> {
        wire::worker::check_worker_name(name).map_err(ClientError::InvalidArgument)?;
        self.post(&format!("/workers/{name}/reset"), serde_json::json!({}))
    }
    /// Every task, or one sector's.
    pub fn tasks(&self, sector: Option<u64>) -> Result<Vec<TaskView>, ClientError> {
        let filter = sector.map(|n| format!("sector={n}&")).unwrap_or_default();
        self.all_pages(|after| format!("/tasks?{filter}after={after}&limit={MAX_PAGE}"), |t: &TaskView| t.id)
    }
    /// Makes a token for worker `name`.
    pub fn create_worker_token(&self, name: &str) -> Result<WorkerToken, ClientError> {
        let req = CreateWorkerToken { name: name.to_string() };
        self.post("/auth/worker-tokens", serde_json::to_value(req).expect("serialises"))
    }
    /// Revokes worker `name`'s token. The name is checked first: it becomes a
    /// path segment, and one like `../../sectors/3/remove?` must not reach a URL.
    pub fn revoke_worker_token(&self, name: &str) -> Result<Revoked, ClientError> {
        wire::worker::check_worker_name(name).map_err(ClientError::InvalidArgument)?;
        self.post(&format!("/auth/worker-tokens/{name}/revoke"), serde_json::json!({}))
    }
    /// Every worker token (names and dates; never the secrets).
    pub fn worker_tokens(&self) -> Result<Vec<TokenView>, ClientError> {
        self.get("/auth/worker-tokens")
    }
}
