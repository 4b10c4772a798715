//! What the daemon's and the worker's `/metrics` share: the exposition
//! format, duration buckets, the process's own gauges and the rule that an
//! unauthenticated scrape address listens on loopback only.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::net::ToSocketAddrs;
use std::sync::atomic::AtomicU64;

/// The exposition format `prometheus-client` writes (OpenMetrics text 1.0,
/// which Prometheus 2.5 and later scrape).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Buckets for task and proof durations in seconds: 10 ms (a 2KiB task) to
/// about 4.4 hours (a 32GiB PC1 on a slow machine), a factor of 3 apart.
pub fn duration_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.01, 3.0, 14)
}

/// The process's resident memory and open file descriptors, read from
/// `/proc/self` at each scrape (the standard `process_*` names, so existing
/// dashboards and alerts apply).
#[derive(Default)]
pub struct ProcessMetrics {
    resident: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge<f64, AtomicU64>,
}

impl ProcessMetrics {
    /// Registers the gauges in `registry` (at its root: no `kiln_` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory of this process",
            Unit::Bytes,
            m.resident.clone(),
        );
        registry.register("process_open_fds", "Open file descriptors of this process", m.open_fds.clone());
        registry.register(
            "process_max_fds",
            "File descriptors this process may open (its soft limit)",
            m.max_fds.clone(),
        );
        registry.register_with_unit(
            "process_start_time",
            "When this process started, in seconds since the Unix epoch",
            Unit::Seconds,
            m.start_time.clone(),
        );
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        m.start_time.set(now.as_secs_f64());
        m
    }

    /// Reads the current values (left as they were where `/proc` is unreadable).
    pub fn update(&self) {
        if let Some(bytes) = resident_bytes() {
            self.resident.set(bytes as i64);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
        if let Ok(limit) = crate::descriptors::limit() {
            self.max_fds.set(i64::try_from(limit).unwrap_or(i64::MAX));
        }
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `registry` in the exposition format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail; a metric that fails to encode is a bug.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    text
}

/// The answer to a scrape.
pub fn response(text: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Checks that `addr` (`host:port`) resolves to loopback addresses only: a
/// scrape address answers without a token, so it must not be reachable from
/// other machines.
pub fn check_loopback(addr: &str) -> Result<(), String> {
    let resolved: Vec<_> =
        addr.to_socket_addrs().map_err(|e| format!("metrics address {addr:?}: {e}"))?.collect();
    if resolved.is_empty() {
        return Err(format!("metrics address {addr:?} resolves to nothing"));
    }
    match resolved.iter().find(|a| !a.ip().is_loopback()) {
        Some(a) => Err(format!(
            "metrics address {addr:?} is reachable from other machines ({a}); the unauthenticated scrape \
             address must be loopback (127.0.0.1 or [::1]); scrape the API's /metrics with the token instead"
        )),
        None => Ok(()),
    }
}

/// Whether a `Host` header names this machine by a loopback address or
/// `localhost` (with any port). An unauthenticated scrape address answers
/// only such requests: a web page whose name was rebound to 127.0.0.1 (DNS
/// rebinding) sends its own name and is refused.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:port
        Some(rest) => match rest.split_once(']') {
            Some((ip, tail)) if tail.is_empty() || tail.starts_with(':') => ip,
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Middleware of an unauthenticated loopback scrape address: refuses (403) a
/// request whose `Host` is not a loopback name ([`is_loopback_host`]).
pub async fn loopback_host_only(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let host = request.headers().get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    if host.is_some_and(is_loopback_host) {
        return next.run(request).await;
    }
    let body = crate::error::ApiErrorBody {
        kind: crate::error::ErrorKind::Forbidden,
        message: "this scrape address answers requests for a loopback host only (Host: 127.0.0.1, [::1] \
                  or localhost)"
            .into(),
    };
    (axum::http::StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_address_must_be_loopback() {
        assert!(check_loopback("127.0.0.1:9464").is_ok());
        assert!(check_loopback("[::1]:0").is_ok());
        let e = check_loopback("0.0.0.0:9464").unwrap_err();
        assert!(e.contains("must be loopback"), "{e}");
        assert!(check_loopback("not an address").is_err());
    }

    #[test]
    fn only_loopback_hosts_pass() {
        for host in [
            "127.0.0.1:9464",
            "127.0.0.1",
            "localhost:9464",
            "LOCALHOST",
            "[::1]:9464",
            "[::1]",
            "127.1.2.3:1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:9464",
            "evil.example",
            "10.0.0.1:9464",
            "[::2]:9464",
            "[::1]x",
            "localhost.evil:1",
            "",
            "127.0.0.1.nip.io:9464",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn process_gauges_read_this_process() {
        let mut registry = Registry::default();
        let p = ProcessMetrics::register(&mut registry);
        p.update();
        let text = encode(&registry);
        let value = |name: &str| -> f64 {
            let line =
                text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert!(value("process_resident_memory_bytes ") > 1e6, "{text}");
        assert!(value("process_open_fds ") >= 3.0, "{text}");
        assert!(value("process_max_fds ") >= value("process_open_fds "), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
