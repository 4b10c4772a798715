//! File descriptors as one budget that the listeners and the work share.
//!
//! Every connection a server holds is a descriptor, and so is every file a
//! task or a PoSt read opens. If the connections may use them all, anyone who
//! can connect makes the work fail with "Too many open files". So a process
//! raises its soft limit to the hard one at start, sets aside what its work
//! needs, and gives each listener a connection cap out of the rest
//! ([`plan`]); a cap set by hand that cannot fit is refused at start.

/// Descriptors a listener needs besides its connections: the listening
/// socket, and one connection accepted at the cap before it is closed.
pub const PER_LISTENER: u64 = 2;

/// Most connections any listener may be given (a bound on configuration
/// mistakes such as `max_connections = 3000000000000000000`).
pub const MAX_CONNECTIONS: usize = 1 << 20;

/// Raises this process's soft descriptor limit to its hard limit (best
/// effort) and returns the soft limit now in force.
pub fn raise_limit() -> std::io::Result<u64> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if soft < hard {
        match rlimit::Resource::NOFILE.set(hard, hard) {
            Ok(()) => {
                tracing::info!(from = soft, to = hard, "raised the file descriptor limit to the hard limit");
                return Ok(hard);
            }
            Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise the file descriptor limit"),
        }
    }
    Ok(soft)
}

/// The descriptor limit in force (the soft limit).
pub fn limit() -> std::io::Result<u64> {
    Ok(rlimit::Resource::NOFILE.get()?.0)
}

/// One listener's connection cap, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerCap {
    /// How the operator knows it (`[api] max_connections`).
    pub setting: &'static str,
    /// A cap set by hand: it must fit, or the process refuses to start.
    pub set: Option<usize>,
    /// The cap when none is set, lowered to what the budget leaves.
    pub default: usize,
    /// Fewer connections than this and the listener is not worth serving.
    pub least: usize,
}

/// The budget: the limit, what the work keeps, each listener's cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The descriptor limit in force.
    pub limit: u64,
    /// Descriptors kept for the work (files, databases, outgoing connections).
    pub work: u64,
    /// Each listener's connection cap, in the order given.
    pub caps: Vec<usize>,
}

/// Splits `limit` descriptors: `work` for the work, [`PER_LISTENER`] for each
/// listener, and the rest among the listeners' connections. Caps set by hand
/// are taken as they are and must fit; the others get their default, lowered
/// to what is left (smaller defaults served first). `Err` names the settings
/// and the limit when they cannot fit.
pub fn plan(limit: u64, work: u64, listeners: &[ListenerCap]) -> Result<Budget, String> {
    for l in listeners {
        if let Some(n) = l.set {
            if n == 0 || n > MAX_CONNECTIONS {
                return Err(format!("{} = {n} must be between 1 and {MAX_CONNECTIONS}", l.setting));
            }
        }
    }
    let overhead = work.saturating_add(PER_LISTENER * listeners.len() as u64);
    let mut left = limit.saturating_sub(overhead);
    let fixed: u64 = listeners.iter().filter_map(|l| l.set).map(|n| n as u64).sum();
    if fixed > left {
        let named: Vec<String> =
            listeners.iter().filter_map(|l| l.set.map(|n| format!("{} = {n}", l.setting))).collect();
        return Err(format!(
            "{} need {fixed} file descriptors for connections, but the limit is {limit} (ulimit -n) and the \
             daemon's own work keeps {overhead}, which leaves {left}: lower the setting, or raise the limit \
             (systemd LimitNOFILE=)",
            named.join(" and ")
        ));
    }
    left -= fixed;
    let mut caps: Vec<usize> = listeners.iter().map(|l| l.set.unwrap_or(0)).collect();
    let mut open: Vec<usize> = (0..listeners.len()).filter(|&i| listeners[i].set.is_none()).collect();
    open.sort_by_key(|&i| listeners[i].default);
    for (k, &i) in open.iter().enumerate() {
        // The listeners after this one keep at least their least.
        let later: u64 = open[k + 1..].iter().map(|&j| listeners[j].least as u64).sum();
        let room = left.saturating_sub(later);
        let cap = (listeners[i].default as u64).min(room) as usize;
        if cap < listeners[i].least {
            return Err(format!(
                "the file descriptor limit is {limit} (ulimit -n): after {overhead} kept for the daemon's own \
                 work, {} gets {cap} connections, fewer than the {} it needs; raise the limit (systemd \
                 LimitNOFILE=) or lower the work's limits",
                listeners[i].setting, listeners[i].least
            ));
        }
        caps[i] = cap;
        left -= cap as u64;
    }
    Ok(Budget { limit, work, caps })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(setting: &'static str, set: Option<usize>, default: usize) -> ListenerCap {
        ListenerCap { setting, set, default, least: 8 }
    }

    #[test]
    fn defaults_shrink_to_the_limit_and_caps_set_by_hand_must_fit() {
        let api = cap("[api] max_connections", None, 8192);
        let metrics = cap("[metrics] max_connections", None, 16);
        // Plenty: defaults as they are.
        let b = plan(65_536, 500, &[api.clone(), metrics.clone()]).unwrap();
        assert_eq!(b.caps, [8192, 16]);
        // ulimit -n 1024: the API gets what the work and the metrics leave.
        let b = plan(1024, 500, &[api.clone(), metrics.clone()]).unwrap();
        assert_eq!(b.caps, [1024 - 500 - 4 - 16, 16]);
        assert!(b.caps.iter().sum::<usize>() as u64 + b.work + 4 <= 1024);
        // Set by hand and too many for the limit: refused, naming it.
        let set = ListenerCap { set: Some(8192), ..api.clone() };
        let e = plan(1024, 500, &[set, metrics.clone()]).unwrap_err();
        assert!(e.contains("[api] max_connections = 8192") && e.contains("1024"), "{e}");
        // Set by hand and fitting: kept; the default one gets the rest.
        let set = ListenerCap { set: Some(300), ..api.clone() };
        assert_eq!(plan(1024, 500, &[set, metrics.clone()]).unwrap().caps, [300, 16]);
        // The work leaves too little: refused.
        let e = plan(256, 250, &[api.clone(), metrics]).unwrap_err();
        assert!(e.contains("fewer than"), "{e}");
        // Absurd settings are refused before anything else.
        let absurd = ListenerCap { set: Some(3_000_000_000_000_000_000), ..api };
        assert!(plan(u64::MAX, 0, &[absurd]).unwrap_err().contains("between 1 and"));
    }

    #[test]
    fn the_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!(raise_limit().unwrap(), hard);
        assert_eq!(limit().unwrap(), hard);
    }
}
