//! Peak resident memory per phase, from Linux's `/proc/self` (absent elsewhere).
//!
//! Writing `5` to `clear_refs` resets the high-water mark `VmHWM`, so a phase's
//! peak is read right after it ends, having reset the mark right before.

/// Resets the process's peak-RSS mark (no-op where unsupported).
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set since the last reset, in bytes.
pub fn peak_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
