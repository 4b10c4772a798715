//! A worker's settings, as [`crate::serve`] takes them (the binary builds them
//! from its flags).

use std::path::PathBuf;
use wire::server::ServerLimits;
use wire::worker::{RemoteTask, MAX_TASK_BYTES};

/// The certificate chain and key the task API serves HTTPS with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Settings of one worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The daemon's API URL (`http://host:port` or `https://host:port`).
    pub miner: String,
    /// PEM certificates trusted for an `https://` daemon besides the public web roots.
    pub miner_ca: Option<PathBuf>,
    /// This worker's token (`kiln auth create-worker-token NAME`).
    pub token: String,
    /// The URL the daemon reaches this worker at; by default `http(s)://` and
    /// the listening address (which must then not be unspecified).
    pub advertise: Option<String>,
    /// Serve the task API over HTTPS with these files; plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// Largest task body accepted (bytes).
    pub max_task_bytes: usize,
    /// Task types taken.
    pub tasks: Vec<RemoteTask>,
    /// Tasks run at once (at least 1).
    pub slots: u32,
    /// Groth16 parameters.
    pub param_dir: PathBuf,
    /// The task API's connection cap and deadlines.
    pub limits: ServerLimits,
    /// Also serve `/metrics` without a key on this loopback address.
    pub metrics_listen: Option<String>,
}

impl WorkerConfig {
    /// A worker for the daemon at `miner` with `token`: plain HTTP, C2 in one
    /// slot, the default parameter directory and task size limit.
    pub fn new(miner: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            miner: miner.into(),
            miner_ca: None,
            token: token.into(),
            advertise: None,
            tls: None,
            max_task_bytes: MAX_TASK_BYTES,
            tasks: vec![RemoteTask::C2],
            slots: 1,
            param_dir: default_param_dir(),
            // A C1 output of a 64GiB sector is ~30 MB: its upload gets ten minutes.
            limits: ServerLimits { request_timeout_ms: 600_000, ..ServerLimits::default() },
            metrics_listen: None,
        }
    }
}

/// The default directory of Groth16 parameters, the daemon's default too:
/// `$XDG_CACHE_HOME/kiln/params`, else `$HOME/.cache/kiln/params`, else
/// `kiln-cache/params` in the system temp dir.
pub fn default_param_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let root = if let Some(xdg) = var("XDG_CACHE_HOME") {
        xdg.join("kiln")
    } else if let Some(home) = var("HOME") {
        home.join(".cache").join("kiln")
    } else {
        std::env::temp_dir().join("kiln-cache")
    };
    root.join("params")
}
