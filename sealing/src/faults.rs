//! Crash points, for crash-safety tests of the daemon.
//!
//! A crash point is a named place in the pipeline where a crash is most
//! likely to lose or duplicate work (between a side effect and the event that
//! records it). When `KILN_CRASH_AT` names a point, the process kills itself
//! with SIGKILL on reaching it: no destructor runs, nothing is flushed, as in
//! a power cut or an OOM kill. Unset, a crash point does nothing.

use std::sync::OnceLock;

/// The environment variable that arms a crash point.
pub const CRASH_AT_ENV: &str = "KILN_CRASH_AT";

/// Every crash point, in pipeline order.
pub const CRASH_POINTS: &[&str] = &[
    "packing:before-start",
    "pc1:mid-labeling",
    "precommit:sent-unrecorded",
    "precommitted:waiting-seed",
    "commit:proof-written-unrecorded",
    "provecommit:sent-unrecorded",
    "finalize:done-unrecorded",
];

/// Whether `point` is the armed crash point.
pub fn armed(point: &str) -> bool {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var(CRASH_AT_ENV).ok().filter(|v| !v.is_empty()));
    armed.as_deref() == Some(point)
}

/// Kills the process with SIGKILL if `point` is armed.
pub fn crash_point(point: &str) {
    if !armed(point) {
        return;
    }
    tracing::warn!(point, "crash point reached: sending SIGKILL to this process");
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
    // `kill` missing or refused: still crash without cleanup.
    std::process::abort();
}
