//! Kiln's remote proving worker: takes C2 tasks from a kiln daemon and proves
//! them with the proof core. The protocol is in `docs/protocol.md`; its types
//! are in [`wire::worker`].
//!
//! [`serve`] is the worker: given a bound listener, a [`WorkerConfig`] and a
//! shutdown future, it registers with the daemon, heartbeats, and serves the
//! task API until the future completes. The `kiln-worker` binary only parses
//! flags, binds and calls it, so tests run workers in-process.
//!
//! - [`config`]: the settings [`serve`] takes.
//! - `node`: the tasks held and the threads that prove and report them.
//! - `server`: the task API (axum) the daemon calls.
//! - `link`: the calls to the daemon (register, heartbeat, report).
//! - [`machine`]: what this machine offers (cores, memory, GPUs, parameters).
//! - [`client`]: a client of a running worker's task API (`kiln-worker info --url`).
//! - `failpoints`: fault injection (`worker:corrupt-proof`), compiled only
//!   with the `failpoints` feature.
//!
//! Threads: the task API runs on the caller's tokio runtime; the link to the
//! daemon runs on its own thread (blocking HTTP), and each accepted task on
//! its own thread (a Groth16 proof takes minutes of CPU).
//!
//! This crate depends on `kiln-proofs` and `kiln-wire` only, never on the
//! daemon's crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config;
mod failpoints;
mod link;
pub mod machine;
pub mod metrics;
mod node;
mod server;

pub use client::fetch_info;
pub use config::{default_param_dir, TlsFiles, WorkerConfig};

use node::{Node, NodeConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, info_span, warn};
use wire::error::ErrorKind;
use wire::server::ServerLimits;

/// File descriptors a worker keeps for itself: stdio, the runtime, its
/// connection to the daemon, spare.
const WORK_DESCRIPTORS: u64 = 64;
/// And per slot: a task's parameter file, its answer in flight.
const DESCRIPTORS_PER_SLOT: u64 = 8;

/// Longest wait for an answer from the daemon or a worker.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a worker could not start or serve, or a worker could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate, key or CA file cannot be used.
    #[error(transparent)]
    Tls(#[from] wire::tls::TlsError),
    /// The configuration offers no slot, or more than the protocol allows.
    #[error("a worker offers 1 to {} slots", wire::worker::MAX_SLOTS)]
    NoSlots,
    /// The metrics address is not loopback.
    #[error("{0}")]
    Metrics(String),
    /// The file descriptor limit leaves too few for the listeners.
    #[error("{0}")]
    Descriptors(String),
    /// Listening on an unspecified address (`0.0.0.0`) without an advertised URL.
    #[error("listening on {0}: the URL the daemon should use must be given (--advertise)")]
    NoAdvertise(SocketAddr),
    /// An operating-system call failed.
    #[error("{action}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A worker could not be reached.
    #[error("{endpoint}: {reason}")]
    Unreachable {
        /// The endpoint called.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A worker answered with an error.
    #[error("{endpoint}: HTTP {status} {kind}: {message}")]
    Refused {
        /// The endpoint called.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The worker's error kind.
        kind: ErrorKind,
        /// The worker's message.
        message: String,
    },
    /// A worker's answer is not the protocol's.
    #[error("{endpoint}: unreadable answer: {reason}")]
    BadAnswer {
        /// The endpoint called.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { action, source }
    }
}

/// Runs a worker on `listener` until `shutdown` completes: registers with the
/// daemon `config.miner`, heartbeats (registering again when the daemon
/// forgets it or restarts), and serves the task API, over TLS when
/// `config.tls` is given.
///
/// Certificate files are read before anything is served; an unusable one is
/// [`Error::Tls`]. When `shutdown` completes, open requests get a few seconds
/// to finish, the heartbeats stop, and tasks still proving are abandoned:
/// their results are discarded (a Groth16 proof cannot be interrupted, so its
/// thread runs to the end), and the daemon runs them elsewhere when their
/// leases end, as for a worker that was killed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if !(1..=wire::worker::MAX_SLOTS).contains(&config.slots) {
        return Err(Error::NoSlots);
    }
    let tls = match &config.tls {
        Some(files) => Some(wire::tls::server_config(&files.cert, &files.key)?),
        None => None,
    };
    let agent = wire::tls::agent(LINK_TIMEOUT, config.miner_ca.as_deref())?;
    let addr = listener.local_addr().map_err(Error::io("read the listening address"))?;
    let url = match &config.advertise {
        Some(u) => u.clone(),
        None if addr.ip().is_unspecified() => return Err(Error::NoAdvertise(addr)),
        None => format!("{}://{addr}", wire::tls::scheme(tls.is_some())),
    };
    let capabilities = machine::capabilities(&config.tasks, config.slots, &config.param_dir);
    if capabilities.params.is_empty() {
        warn!(dir = %config.param_dir.display(), "no PoRep parameters here: the daemon will send no C2 tasks");
    }
    for p in &capabilities.params {
        let fit = capabilities.slots_for(p.sector_size);
        if fit < capabilities.slots {
            warn!(
                size = %p.sector_size,
                slots = capabilities.slots,
                fit,
                memory = capabilities.memory_bytes,
                "this machine's memory holds fewer C2s of this size than --slots: the daemon sends at most `fit`"
            );
        }
    }
    // The listeners get what the tasks' files (parameters, C1 outputs) leave of
    // the descriptor limit, so a flood of connections cannot stop a proof.
    let fd_limit = wire::descriptors::raise_limit().map_err(Error::io("read the file descriptor limit"))?;
    let mut listeners = vec![wire::descriptors::ListenerCap {
        setting: "the task API's connections",
        set: None,
        default: config.limits.max_connections,
        least: 8,
    }];
    if config.metrics_listen.is_some() {
        listeners.push(wire::descriptors::ListenerCap {
            setting: "--metrics-listen's connections",
            set: None,
            default: 16,
            least: 2,
        });
    }
    let work = WORK_DESCRIPTORS + u64::from(config.slots) * DESCRIPTORS_PER_SLOT;
    let budget = wire::descriptors::plan(fd_limit, work, &listeners).map_err(Error::Descriptors)?;
    let api_limits = ServerLimits { max_connections: budget.caps[0], ..config.limits };
    info!(limit = budget.limit, work, connections = budget.caps[0], "file descriptor budget");
    let span = info_span!("worker", %url);
    let node = Arc::new(Node::new(
        NodeConfig {
            miner: config.miner,
            token: config.token,
            url: url.clone(),
            param_dir: config.param_dir,
            capabilities,
        },
        agent,
        span.clone(),
    ));
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let link = {
        let node = node.clone();
        std::thread::Builder::new()
            .name("kiln-worker-link".into())
            .spawn(move || span.in_scope(|| node.run_link(&stopped)))
            .map_err(Error::io("start the link thread"))?
    };
    info!(%url, "worker listening");
    let (scrape_stop, scrape_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = &config.metrics_listen {
        wire::metrics::check_loopback(addr).map_err(Error::Metrics)?;
        let listener = wire::server::bind(addr).await.map_err(Error::io("listen on the metrics address"))?;
        let app = server::scrape_router(node.clone());
        let limits = ServerLimits { max_connections: budget.caps[1], ..config.limits };
        tokio::spawn(async move {
            let stopped = async {
                let _ = scrape_stopped.await;
            };
            if let Err(e) = wire::server::serve(listener, app, None, limits, stopped).await {
                warn!(error = %e, "metrics server stopped");
            }
        });
    }
    let app = server::router(node.clone(), config.max_task_bytes);
    let served = wire::server::serve(listener, app, tls, api_limits, shutdown).await;
    drop(scrape_stop);
    drop(stop);
    node.abandon_all();
    // The link thread notices within one wait, or after its call in flight.
    if tokio::task::spawn_blocking(move || link.join()).await.map_or(true, |joined| joined.is_err()) {
        warn!("the link thread panicked");
    }
    info!("stopped; tasks still proving are abandoned (the daemon re-runs them when their lease ends)");
    served.map_err(Error::io("serve the task API"))
}
