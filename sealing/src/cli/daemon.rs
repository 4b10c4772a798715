//! `kiln daemon` and `kiln run` (the daemon, a pledge and a progress view in
//! one command; on a terminal a live line per sector, with the log in the
//! data directory).

use super::sectors::{print_status, progress_text};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use proofs::SectorSize;
use sealing::api::client::Client;
use sealing::api::SectorListEntry;
use sealing::config::Config;
use sealing::daemon::Daemon;
use sealing::lifecycle::SectorState;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DaemonArgs {
    /// The TOML config file.
    #[arg(long)]
    config: PathBuf,
}

#[derive(Args)]
pub struct RunArgs {
    /// Sector size.
    #[arg(long, default_value = "2KiB")]
    sector_size: String,
    /// Committed-capacity sectors to pledge.
    #[arg(long, default_value_t = 1)]
    pledge: u32,
    /// Data directory [default: a new temporary directory, kept afterwards].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Miner actor id.
    #[arg(long, default_value_t = 1000)]
    miner_id: u64,
    /// Parameter directory [default: $XDG_CACHE_HOME/kiln/params].
    #[arg(long)]
    param_dir: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout_secs: u64,
    /// Log to stderr instead of `DIR/kiln.log`.
    #[arg(short, long)]
    verbose: bool,
}

/// The log file of `kiln run` in its data directory.
pub const RUN_LOG: &str = "kiln.log";

impl RunArgs {
    /// Fixes the data directory (a new temporary one unless given) and
    /// returns the log file to write, unless `--verbose`.
    pub fn prepare(&mut self) -> Result<Option<PathBuf>> {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => tempfile::Builder::new().prefix("kiln-run-").tempdir()?.keep(),
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        self.dir = Some(dir.clone());
        Ok((!self.verbose).then(|| dir.join(RUN_LOG)))
    }
}

pub fn daemon(args: DaemonArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let mut daemon = Daemon::start(&config)?;
    outln!("kiln daemon: API at {} (data directory {})", daemon.url(), config.data_dir.display());
    let outcome = daemon.wait();
    daemon.stop();
    // A stopped driver exits non-zero, so a supervisor (systemd) restarts the daemon.
    outcome.context("kiln daemon stopped")?;
    Ok(())
}

pub fn run(args: RunArgs) -> Result<()> {
    let size = SectorSize::parse(&args.sector_size)?;
    if args.pledge == 0 {
        bail!("--pledge must be at least 1");
    }
    let mut args = args;
    let log = args.prepare()?;
    let dir = args.dir.clone().expect("prepared");
    let mut config = Config::new(dir.clone(), size, args.miner_id);
    config.param_dir = args.param_dir;
    config.api.listen = "127.0.0.1:0".into();
    // A fresh devnet needs no long seed wait: a few blocks are enough.
    config.chain.seed_delay = 3;
    // Check the parameters (PoRep, Winning and Window PoSt) now rather than after PC1 and PC2.
    for params in proofs::snark::params::GrothParams::all(&config.param_dir(), size) {
        params.load_verifying_key().with_context(|| {
            format!(
                "{} Groth16 parameters for {} (run `kiln params generate --sector-size {}`)",
                params.kind().name(),
                args.sector_size,
                args.sector_size
            )
        })?;
    }

    let mut daemon = Daemon::start(&config)?;
    outln!("kiln run: data directory {} (kept), API at {}", dir.display(), daemon.url());
    if let Some(log) = &log {
        outln!("log: {} (-v to log here instead)", log.display());
    }
    let client = Client::from_repo(&dir)?;
    let pledged = client.pledge(args.pledge)?.sectors;
    outln!("pledged sector(s) {pledged:?}");

    let started = Instant::now();
    let mut view = if std::io::stdout().is_terminal() { View::live() } else { View::plain() };
    let outcome = loop {
        if let Some(reason) = daemon.driver_stopped() {
            break Err(anyhow!(
                "the daemon's driver stopped: {reason} (data directory {} kept)",
                dir.display()
            ));
        }
        let sectors = client.sectors()?;
        let mine: Vec<_> = sectors.into_iter().filter(|e| pledged.contains(&e.sector.number)).collect();
        view.show(&mine, started.elapsed());
        if mine.iter().any(|e| e.sector.lifecycle.state.is_terminal()) {
            view.finish();
            for e in mine.iter().filter(|e| e.sector.lifecycle.state.is_terminal()) {
                print_status(&client.sector(e.sector.number)?, true);
            }
            break Err(anyhow!("a sector did not reach Proving"));
        }
        if mine.iter().all(|e| e.sector.lifecycle.state == SectorState::Proving) {
            break Ok(());
        }
        if started.elapsed() > Duration::from_secs(args.timeout_secs) {
            break Err(anyhow!("timed out after {} s", args.timeout_secs));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    view.finish();
    if let Err(e) = outcome {
        return Err(match &log {
            Some(log) => e.context(format!("the log is in {}", log.display())),
            None => e,
        });
    }
    for n in &pledged {
        let status = client.sector(*n)?;
        let accepted = status.commit_receipt.as_ref().is_some_and(|r| r.exit_code == 0)
            && status.on_chain.as_ref().is_some_and(|pc| pc.proven);
        outln!();
        print_status(&status, false);
        if !accepted {
            bail!("sector {n} is Proving but the chain does not show its proof accepted");
        }
    }
    outln!(
        "\n{} sector(s) Proving, proofs accepted by the chain, in {:.1} s",
        pledged.len(),
        started.elapsed().as_secs_f64()
    );
    daemon.stop();
    Ok(())
}

/// What `kiln run` shows while it waits: on a terminal, one live line per
/// sector (state, the running task's phase and progress bar, elapsed time);
/// elsewhere, a plain line per change and a heartbeat every 15 s.
enum View {
    Live { bars: MultiProgress, sectors: HashMap<u64, ProgressBar>, errors: HashMap<u64, String> },
    Plain { seen: HashMap<u64, (SectorState, Option<String>)>, last_line: Instant },
}

impl View {
    fn live() -> Self {
        Self::Live { bars: MultiProgress::new(), sectors: HashMap::new(), errors: HashMap::new() }
    }

    fn plain() -> Self {
        Self::Plain { seen: HashMap::new(), last_line: Instant::now() }
    }

    fn show(&mut self, sectors: &[SectorListEntry], since_start: Duration) {
        match self {
            Self::Live { bars, sectors: lines, errors } => {
                for e in sectors {
                    let n = e.sector.number;
                    let (text, done, total) = live_line(e);
                    let bar = lines.entry(n).or_insert_with(|| {
                        let bar =
                            ProgressBar::new(total).with_prefix(n.to_string()).with_message(text.clone());
                        bar.set_style(
                            ProgressStyle::with_template(
                                "sector {prefix:>4}  {wide_msg} [{bar:20}] {elapsed_precise}",
                            )
                            .expect("valid template")
                            .progress_chars("=> "),
                        );
                        let bar = bars.add(bar);
                        bar.enable_steady_tick(Duration::from_millis(500));
                        bar
                    });
                    bar.set_length(total);
                    bar.set_position(done);
                    bar.set_message(text);
                    // A failure is printed once above the live lines, and stays.
                    if let (true, Some(err)) = (retrying(e.sector.lifecycle.state), &e.sector.last_error) {
                        if errors.get(&n) != Some(err) {
                            let _ = bars.println(format!("sector {n}: {} (will retry)", err));
                            errors.insert(n, err.clone());
                        }
                    }
                }
            }
            Self::Plain { seen, last_line } => {
                let t = since_start.as_secs_f64();
                for e in sectors {
                    let now = (e.sector.lifecycle.state, e.progress.as_ref().map(progress_text));
                    if seen.get(&e.sector.number) == Some(&now) {
                        continue;
                    }
                    match &now.1 {
                        Some(p) => outln!("[{t:7.1}s] sector {}: {} ({p})", e.sector.number, now.0),
                        None => outln!("[{t:7.1}s] sector {}: {}", e.sector.number, now.0),
                    }
                    if let (true, Some(err)) = (retrying(now.0), &e.sector.last_error) {
                        outln!("           error: {err} (will retry)");
                    }
                    seen.insert(e.sector.number, now);
                    *last_line = Instant::now();
                }
                if last_line.elapsed() > Duration::from_secs(15) {
                    let states: Vec<String> = sectors
                        .iter()
                        .map(|e| format!("{} {}", e.sector.number, e.sector.lifecycle.state))
                        .collect();
                    outln!("[{t:7.1}s] still working: {}", states.join(", "));
                    *last_line = Instant::now();
                }
            }
        }
    }

    /// Clears the live lines (what follows prints below them).
    fn finish(&mut self) {
        if let Self::Live { sectors, .. } = self {
            for bar in sectors.values() {
                bar.finish_and_clear();
            }
            sectors.clear();
        }
    }
}

fn retrying(state: SectorState) -> bool {
    matches!(
        state,
        SectorState::SealPreCommitFailed
            | SectorState::PreCommitFailed
            | SectorState::ComputeProofFailed
            | SectorState::CommitFailed
            | SectorState::FinalizeFailed
    )
}

/// A sector's live line: its state and running task, and the bar's position
/// (the task's phase progress; full once Proving).
fn live_line(e: &SectorListEntry) -> (String, u64, u64) {
    let state = e.sector.lifecycle.state;
    let text = match &e.progress {
        Some(p) => format!("{:<19} {}", state.name(), progress_text(p)),
        None => state.name().to_string(),
    };
    match &e.progress {
        Some(p) if p.total > 0 => (text, p.done, p.total),
        _ => (text, u64::from(state == SectorState::Proving), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealing::api::{LifecycleView, SectorView, TaskProgress};
    use wire::api::TaskKind;

    fn entry(state: SectorState, progress: Option<TaskProgress>) -> SectorListEntry {
        let sector = SectorView {
            number: 7,
            sector_size: SectorSize::KiB2,
            pledged: true,
            lifecycle: LifecycleView { state, attempts: 0 },
            ticket: None,
            ticket_epoch: None,
            comm_d: None,
            comm_r: None,
            seed: None,
            seed_epoch: None,
            precommit_message: None,
            commit_message: None,
            last_error: None,
            created_ms: 0,
            updated_ms: 0,
        };
        SectorListEntry { sector, progress, failed_step: None, removed_from: None }
    }

    #[test]
    fn a_live_line_shows_state_task_progress_and_a_bar() {
        let labeling = TaskProgress {
            task: TaskKind::Pc1,
            phase: Some(proofs::sdr::layers::ProgressPhase::Labeling),
            layer: Some(2),
            done: 16,
            total: 64,
            started_ms: 0,
        };
        let (text, done, total) = live_line(&entry(SectorState::Unsealed, Some(labeling)));
        assert_eq!((text.as_str(), done, total), ("Unsealed            pc1: labeling 2 25%", 16, 64));
        assert_eq!(live_line(&entry(SectorState::Proving, None)), ("Proving".to_string(), 1, 1));
        assert_eq!(live_line(&entry(SectorState::PreCommitted, None)), ("PreCommitted".to_string(), 0, 1));
    }
}
