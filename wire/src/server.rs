//! Serving an API (the daemon's or a worker's) with limits a port open to a
//! network needs: a connection cap, a deadline for each request's headers
//! (which also closes idle and silent connections), a deadline for the whole
//! request, and a TLS handshake deadline.
//!
//! A plain `axum::serve` has none of these: anyone who can reach the port
//! could hold thousands of half-sent requests open until the process runs out
//! of file descriptors.

use crate::error::ErrorKind;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Limits of one API server (`[api]` in the daemon's config; the worker's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Longest wait for a request's headers, from the connection's start or the
    /// previous answer (ms): a silent, slow or idle connection is closed.
    pub header_read_timeout_ms: u64,
    /// Longest a request may take once its headers are in, body included (ms);
    /// past it the answer is 408.
    pub request_timeout_ms: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        // Each connection holds a descriptor: run the daemon with a descriptor
        // limit above the cap (systemd `LimitNOFILE=65536`).
        Self { max_connections: 8192, header_read_timeout_ms: 10_000, request_timeout_ms: 300_000 }
    }
}

impl ServerLimits {
    /// Why these limits cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        const DAY_MS: u64 = 86_400_000;
        let most = crate::descriptors::MAX_CONNECTIONS;
        if self.max_connections == 0 || self.max_connections > most {
            return Err(format!("max_connections must be between 1 and {most}"));
        }
        for (name, ms) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if ms == 0 || ms > DAY_MS {
                return Err(format!("{name} must be between 1 and 86400000 (a day)"));
            }
        }
        Ok(())
    }

    fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
}

tokio::task_local! {
    /// The address of the peer whose connection the current task serves.
    static PEER: std::net::SocketAddr;
}

/// The peer address of the connection the calling handler serves (`None`
/// outside a connection served by [`serve`]); IPv4-mapped addresses as IPv4.
pub fn peer() -> Option<std::net::SocketAddr> {
    PEER.try_with(|p| std::net::SocketAddr::new(p.ip().to_canonical(), p.port())).ok()
}

/// Pending connections the kernel queues for a listener (capped by
/// `net.core.somaxconn`): a burst of clients is accepted, not dropped.
pub const LISTEN_BACKLOG: u32 = 4096;

/// The credential of `Authorization: Bearer <credential>`, if the request has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// An error answer of either API: `status` with the [`ApiErrorBody`] JSON.
///
/// [`ApiErrorBody`]: crate::error::ApiErrorBody
pub fn error_answer(status: StatusCode, kind: ErrorKind, message: String) -> Response {
    (status, axum::Json(crate::error::ApiErrorBody { kind, message })).into_response()
}

/// The error kind of a body extractor's rejection: too large, or malformed.
pub fn rejection_kind(status: StatusCode) -> ErrorKind {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorKind::TooLarge
    } else {
        ErrorKind::InvalidArgument
    }
}

/// Middleware: refuses (413) a request whose Content-Length announces more
/// than `limit` bytes of `what`, before its body is read, so the client learns
/// why instead of meeting a closed connection (a body limit still guards
/// bodies sent without a length).
pub async fn refuse_announced_oversize(
    limit: u64,
    what: &'static str,
    request: Request,
    next: Next,
) -> Response {
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(n) if n > limit => error_answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::TooLarge,
            format!("{what} is at most {limit} bytes; {n} announced"),
        ),
        _ => next.run(request).await,
    }
}

/// Completes on SIGINT or SIGTERM (either server's cue to stop).
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// A listener on `addr` (`host:port`; port 0 picks one) with [`LISTEN_BACKLOG`].
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket =
            if a.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{addr} resolves to no address"))))
}

/// Serves `app` on `listener` — over TLS when `tls` is given — within
/// `limits`, until `shutdown` completes; then lets open requests finish for a
/// few seconds.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<ServerConfig>>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let request_timeout = Duration::from_millis(limits.request_timeout_ms);
    let app = app.layer(axum::middleware::from_fn(move |request, next: axum::middleware::Next| async move {
        match tokio::time::timeout(request_timeout, next.run(request)).await {
            Ok(answer) => answer,
            Err(_) => request_timed_out(request_timeout),
        }
    }));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of descriptors or a reset before accept: keep serving the others.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = limits.max_connections, "connection refused: at the connection cap");
            drop(stream);
            continue;
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        let stop = stop_rx.clone();
        tokio::spawn(PEER.scope(peer, async move {
            let _slot = slot;
            match acceptor {
                None => serve_connection(stream, app, limits, stop).await,
                Some(acceptor) => {
                    // The handshake gets the same deadline as a request's headers.
                    match tokio::time::timeout(limits.header_read_timeout(), acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(tls, app, limits, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        }));
    }
    let _ = stop_tx.send(true);
    // Let open requests finish (each connection closes after its answer).
    let drained = slots.acquire_many(limits.max_connections.min(u32::MAX as usize) as u32);
    let _ = tokio::time::timeout(Duration::from_secs(3), drained).await;
    Ok(())
}

fn request_timed_out(limit: Duration) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = crate::error::ApiErrorBody {
        kind: crate::error::ErrorKind::InvalidArgument,
        message: format!("the request took longer than {} ms", limit.as_millis()),
    };
    (axum::http::StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response()
}

/// One connection: HTTP/1.1 with keep-alive, the header deadline from
/// hyper's timer, until the client closes, a deadline passes or the server stops.
async fn serve_connection<S>(stream: S, app: Router, limits: ServerLimits, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout()).keep_alive(true);
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection closed");
            }
        }
        () = async { drop(stop.wait_for(|stopping| *stopping).await) } => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(3), connection).await;
        }
    }
}
