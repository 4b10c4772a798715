//! Fault injection for tests: named points where a test can crash the
//! process, panic, or make an operation fail.
//!
//! Points exist only in builds with the `failpoints` feature (test builds get
//! it; release builds do not, so no point name is in the `kiln` binary). They
//! are armed with the `fail` crate: in-process with `fail::cfg(name, action)`,
//! or for a child `kiln daemon` with `FAILPOINTS="name=action;..."`. Actions:
//! `return` makes a crash point kill the process with SIGKILL (no destructor
//! runs, nothing is flushed: a power cut or an OOM kill) and makes other
//! points fail; `panic` panics; `N*action` limits it to N hits.
//!
//! A crash point is a place where a crash is most likely to lose or duplicate
//! work (between a side effect and the event that records it).

/// Every crash point, in pipeline order.
pub const CRASH_POINTS: &[&str] = &[
    "packing:before-start",
    "pc1:mid-labeling",
    "precommit:sent-unrecorded",
    "precommitted:waiting-seed",
    "commit:proof-written-unrecorded",
    "provecommit:sent-unrecorded",
    "chain:executed-unrecorded",
    "finalize:done-unrecorded",
    "wdpost:proved-unsent",
    "lotus:recorded-unpushed",
    "lotus:pushed-unmarked",
];

/// Other points: `task:run` (in every task thread, before its work: `panic`
/// there tests task supervision), `driver:tick` (in the driver loop: `panic`
/// tests driver supervision), `driver:spawn` (`return` makes starting a task
/// thread fail).
pub const POINTS: &[&str] = &["task:run", "driver:tick", "driver:spawn"];

/// Reads `FAILPOINTS` from the environment (for a child process under test).
/// The returned guard must live as long as the points should.
#[cfg(feature = "failpoints")]
pub fn from_env() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// Whether the point `name` is armed with `return` (consuming one hit).
#[cfg(feature = "failpoints")]
pub fn armed(name: &str) -> bool {
    fail::eval(name, |_| ()).is_some()
}

/// Kills this process with SIGKILL if crash point `name` is armed.
#[cfg(feature = "failpoints")]
pub fn crash_if_armed(name: &str) {
    if armed(name) {
        kill_self(name);
    }
}

/// Kills this process with SIGKILL, at crash point `name`.
#[cfg(feature = "failpoints")]
pub fn kill_self(name: &str) -> ! {
    tracing::warn!(point = name, "crash point reached: sending SIGKILL to this process");
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
    // `kill` missing or refused: still crash without cleanup.
    std::process::abort();
}

/// A crash point: kills the process there when armed (`failpoints` builds only).
macro_rules! crash_point {
    ($name:literal) => {{
        #[cfg(feature = "failpoints")]
        $crate::failpoints::crash_if_armed($name);
    }};
}

/// A point that panics when armed with `panic` (`failpoints` builds only).
macro_rules! panic_point {
    ($name:literal) => {{
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    }};
}

/// Whether a point armed with `return` should make its operation fail here
/// (always false without `failpoints`).
macro_rules! failing {
    ($name:literal) => {{
        #[cfg(feature = "failpoints")]
        let armed = $crate::failpoints::armed($name);
        #[cfg(not(feature = "failpoints"))]
        let armed = false;
        armed
    }};
}

pub(crate) use {crash_point, failing, panic_point};
