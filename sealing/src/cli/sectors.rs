//! `kiln sectors …` and `kiln chain …`: clients of a running daemon's API.

use anyhow::Result;
use clap::{Args, Subcommand};
use sealing::api::client::Client;
use sealing::api::TaskProgress;
use sealing::api::{SectorListEntry, SectorStatus};
use std::path::PathBuf;

/// Which daemon to talk to.
#[derive(Args, Clone)]
pub struct RepoArgs {
    /// The daemon's data directory (holds its API address and token).
    #[arg(long, env = "KILN_REPO", default_value_os_t = default_repo())]
    pub repo: PathBuf,
}

/// `~/.kiln`, the data directory when none is given.
pub fn default_repo() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from(".kiln"), |h| PathBuf::from(h).join(".kiln"))
}

#[derive(Subcommand)]
pub enum SectorsCommand {
    /// Every sector with its state.
    List {
        #[command(flatten)]
        repo: RepoArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One sector: state, commitments, messages; `--log` adds the event history.
    Status {
        /// The sector number.
        number: u64,
        #[command(flatten)]
        repo: RepoArgs,
        /// Show the event history with timestamps and errors.
        #[arg(long)]
        log: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pledge committed-capacity sectors.
    Pledge {
        #[command(flatten)]
        repo: RepoArgs,
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Add a data piece (the daemon copies the file and packs it into an open sector).
    AddPiece {
        /// The piece file.
        file: PathBuf,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Remove a sector and its files (its record is kept). A sector the chain
    /// still holds (a live PreCommit, or proven) is refused unless `--force`.
    Remove {
        /// The sector number.
        number: u64,
        /// Remove it even though the chain holds it: it then fails every Window
        /// PoSt and is declared faulty (on Filecoin: a fault fee every proving
        /// period until it is terminated).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Send a failed sector (Failed, or a failure state) back to the step that failed, attempts reset.
    Retry {
        /// The sector number.
        number: u64,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Stop work on a sector: it becomes Failed (its files stay until `remove`).
    Abort {
        /// The sector number.
        number: u64,
        /// Why (recorded in its event log).
        #[arg(long, default_value = "aborted from the CLI")]
        reason: String,
        #[command(flatten)]
        repo: RepoArgs,
    },
}

#[derive(Subcommand)]
pub enum ChainCommand {
    /// The current epoch and message counts.
    Head {
        #[command(flatten)]
        repo: RepoArgs,
    },
}

pub fn run(cmd: SectorsCommand) -> Result<()> {
    match cmd {
        SectorsCommand::List { repo, json } => {
            let client = Client::from_repo(&repo.repo)?;
            let sectors = client.sectors()?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&sectors)?);
            } else {
                print_list(&sectors);
                // A node fault stops a whole kind of task: say so above all else.
                for p in client.status()?.paused {
                    outln!(
                        "PAUSED: {} tasks since {} (next try {}): {}",
                        p.kind.name(),
                        time(p.since_ms),
                        time(p.next_probe_ms),
                        p.reason
                    );
                }
            }
        }
        SectorsCommand::Status { number, repo, log, json } => {
            let status = Client::from_repo(&repo.repo)?.sector(number)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status, log);
            }
        }
        SectorsCommand::Pledge { repo, count } => {
            let r = Client::from_repo(&repo.repo)?.pledge(count)?;
            for n in r.sectors {
                outln!("pledged sector {n}");
            }
        }
        SectorsCommand::AddPiece { file, repo } => {
            let file = std::path::absolute(&file)?;
            let p = Client::from_repo(&repo.repo)?.add_piece(&file)?;
            outln!(
                "piece {} ({} bytes, padded {}) added to sector {} as piece {}",
                p.comm_p,
                p.raw_len,
                p.padded_size,
                p.sector,
                p.index
            );
        }
        SectorsCommand::Remove { number, force, repo } => {
            let row = Client::from_repo(&repo.repo)?.remove_with(number, force)?;
            outln!("sector {number}: {} (files are removed by the daemon)", row.lifecycle.state);
        }
        SectorsCommand::Retry { number, repo } => {
            let row = Client::from_repo(&repo.repo)?.retry(number)?;
            outln!("sector {number}: {} (attempts reset)", row.lifecycle.state);
        }
        SectorsCommand::Abort { number, reason, repo } => {
            let row = Client::from_repo(&repo.repo)?.abort(number, &reason)?;
            outln!("sector {number}: {}", row.lifecycle.state);
        }
    }
    Ok(())
}

pub fn chain(cmd: ChainCommand) -> Result<()> {
    match cmd {
        ChainCommand::Head { repo } => {
            let head = Client::from_repo(&repo.repo)?.chain_head()?;
            outln!("epoch    {}", head.epoch);
            outln!("messages {} sent, {} executed", head.messages, head.executed);
        }
    }
    Ok(())
}

/// `pc1: labeling 3 40%, 12 s` style summary of a running task.
pub fn progress_text(p: &TaskProgress) -> String {
    progress_text_at(p, now_ms())
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// [`progress_text`] as of `now_ms`.
pub fn progress_text_at(p: &TaskProgress, now_ms: i64) -> String {
    let mut s = p.task.name().to_string();
    if let Some(phase) = &p.phase {
        s.push_str(&format!(": {phase}"));
        if let Some(l) = p.layer {
            s.push_str(&format!(" {l}"));
        }
        if let Some(percent) = (p.done * 100).checked_div(p.total) {
            s.push_str(&format!(" {percent}%"));
        }
    }
    if p.started_ms > 0 {
        s.push_str(&format!(", {}", elapsed(now_ms.saturating_sub(p.started_ms))));
    }
    s
}

/// `850 ms`, `12 s`, `3 m 05 s`, `1 h 02 m`.
pub fn elapsed(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        _ if ms < 1000 => format!("{} ms", ms.max(0)),
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} m {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} m", secs / 3600, secs % 3600 / 60),
    }
}

fn print_list(sectors: &[SectorListEntry]) {
    outln!("{:>6}  {:<8} {:<5} {:<20} {:>8}  activity", "sector", "size", "kind", "state", "attempts");
    for e in sectors {
        let s = &e.sector;
        let activity = match (&e.progress, &s.last_error) {
            (Some(p), _) => progress_text(p),
            (None, Some(err)) if s.lifecycle.state != sealing::lifecycle::SectorState::Proving => {
                format!("last error: {err}")
            }
            _ => String::new(),
        };
        outln!(
            "{:>6}  {:<8} {:<5} {:<20} {:>8}  {}",
            s.number,
            s.sector_size.name(),
            if s.pledged { "cc" } else { "data" },
            s.lifecycle.state.name(),
            s.lifecycle.attempts,
            activity
        );
    }
}

pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Prints a sector's status (and its log).
pub fn print_status(st: &SectorStatus, log: bool) {
    let s = &st.sector;
    fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
        v.as_ref().map_or_else(|| "-".into(), T::to_string)
    }
    outln!("sector        {}", s.number);
    outln!(
        "size          {} ({})",
        s.sector_size.name(),
        if s.pledged { "committed capacity" } else { "data" }
    );
    outln!("state         {} (attempts {})", s.lifecycle.state, s.lifecycle.attempts);
    if let Some(p) = &st.progress {
        outln!("running       {}", progress_text(p));
    }
    outln!(
        "ticket        {} (epoch {})",
        opt(&s.ticket),
        s.ticket_epoch.map_or("-".into(), |e| e.to_string())
    );
    outln!("comm_d        {}", opt(&s.comm_d));
    outln!("comm_r        {}", opt(&s.comm_r));
    outln!("seed          {} (epoch {})", opt(&s.seed), s.seed_epoch.map_or("-".into(), |e| e.to_string()));
    outln!("precommit msg {}", opt(&s.precommit_message));
    outln!("commit msg    {}", opt(&s.commit_message));
    if let Some(pc) = &st.on_chain {
        outln!(
            "on chain      precommitted at epoch {}, seed epoch {}, expiry {}, proven {}",
            pc.epoch,
            pc.seed_epoch,
            pc.expiry,
            pc.proven
        );
    }
    if let Some(r) = &st.commit_receipt {
        outln!(
            "commit receipt epoch {}, exit code {}{}",
            r.epoch,
            r.exit_code,
            r.error.as_ref().map_or(String::new(), |e| format!(": {e}"))
        );
    }
    for p in &st.pieces {
        outln!("piece {:<7} {} {} bytes (padded {})", p.index, p.comm_p, p.raw_len, p.padded_size);
    }
    if let Some(e) = &s.last_error {
        outln!("last error    {e}");
    }
    if !st.tasks.is_empty() {
        outln!("tasks:");
        super::workers::print_tasks(&st.tasks);
    }
    if log {
        outln!("events:");
        for e in &st.events {
            let detail = match (e.field("error"), e.field("disposition"), e.field("reason")) {
                (Some(error), Some(disposition), _) => format!("  error ({disposition}): {error}"),
                (Some(error), None, _) => format!("  error: {error}"),
                (_, _, Some(reason)) => format!("  rejected: {reason}"),
                _ => String::new(),
            };
            outln!("  {:>3} {}  {:<16} -> {}{detail}", e.seq, time(e.at_ms), e.name(), e.state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::api::TaskKind;

    #[test]
    fn running_tasks_show_phase_progress_and_elapsed_time() {
        let p = TaskProgress {
            task: TaskKind::Pc1,
            phase: Some(proofs::sdr::layers::ProgressPhase::Labeling),
            layer: Some(3),
            done: 40,
            total: 100,
            started_ms: 1_000,
        };
        assert_eq!(progress_text_at(&p, 13_500), "pc1: labeling 3 40%, 12 s");
        let c = TaskProgress {
            task: TaskKind::Commit,
            phase: None,
            layer: None,
            done: 0,
            total: 0,
            started_ms: 0,
        };
        assert_eq!(progress_text_at(&c, 5_000), "commit", "no start time: none shown");
        assert_eq!(elapsed(185_000), "3 m 05 s");
        assert_eq!(elapsed(3_720_000), "1 h 02 m");
        assert_eq!(elapsed(850), "850 ms");
    }
}
