//! `kiln daemon` and `kiln run` (the daemon, a pledge and a progress view in one command).

use super::sectors::{print_status, progress_text};
use anyhow::{bail, Context, Result};
use clap::Args;
use proofs::SectorSize;
use sealing::api::client::Client;
use sealing::config::Config;
use sealing::daemon::Daemon;
use sealing::lifecycle::SectorState;
use std::collections::HashMap;
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
}

pub fn daemon(args: DaemonArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let mut daemon = Daemon::start(&config)?;
    println!("kiln daemon: API at {} (data directory {})", daemon.url(), config.data_dir.display());
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
    let dir = match args.dir {
        Some(d) => d,
        None => tempfile::Builder::new().prefix("kiln-run-").tempdir()?.keep(),
    };
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
    println!("kiln run: data directory {} (kept), API at {}", dir.display(), daemon.url());
    let client = Client::from_repo(&dir)?;
    let pledged = client.pledge(args.pledge)?.sectors;
    println!("pledged sector(s) {pledged:?}");

    let started = Instant::now();
    let mut seen: HashMap<u64, (SectorState, Option<String>)> = HashMap::new();
    let mut last_beat = Instant::now();
    loop {
        if let Some(reason) = daemon.driver_stopped() {
            bail!("the daemon's driver stopped: {reason} (data directory {} kept)", dir.display());
        }
        let sectors = client.sectors()?;
        let mine: Vec<_> = sectors.iter().filter(|e| pledged.contains(&e.sector.number)).collect();
        for e in &mine {
            let now = (e.sector.lifecycle.state, e.progress.as_ref().map(progress_text));
            if seen.get(&e.sector.number) != Some(&now) {
                let t = started.elapsed().as_secs_f64();
                match &now.1 {
                    Some(p) => println!("[{t:7.1}s] sector {}: {} ({p})", e.sector.number, now.0),
                    None => println!("[{t:7.1}s] sector {}: {}", e.sector.number, now.0),
                }
                if let (
                    SectorState::SealPreCommitFailed
                    | SectorState::PreCommitFailed
                    | SectorState::ComputeProofFailed
                    | SectorState::CommitFailed
                    | SectorState::FinalizeFailed,
                    Some(err),
                ) = (now.0, &e.sector.last_error)
                {
                    println!("           error: {err} (will retry)");
                }
                seen.insert(e.sector.number, now);
                last_beat = Instant::now();
            }
        }
        if last_beat.elapsed() > Duration::from_secs(15) {
            let states: Vec<String> =
                mine.iter().map(|e| format!("{} {}", e.sector.number, e.sector.lifecycle.state)).collect();
            println!("[{:7.1}s] still working: {}", started.elapsed().as_secs_f64(), states.join(", "));
            last_beat = Instant::now();
        }
        if mine.iter().any(|e| e.sector.lifecycle.state.is_terminal()) {
            for e in mine.iter().filter(|e| e.sector.lifecycle.state.is_terminal()) {
                print_status(&client.sector(e.sector.number)?, true);
            }
            bail!("a sector did not reach Proving");
        }
        if mine.iter().all(|e| e.sector.lifecycle.state == SectorState::Proving) {
            break;
        }
        if started.elapsed() > Duration::from_secs(args.timeout_secs) {
            bail!("timed out after {} s", args.timeout_secs);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for n in &pledged {
        let status = client.sector(*n)?;
        let accepted = status.commit_receipt.as_ref().is_some_and(|r| r.exit_code == 0)
            && status.on_chain.as_ref().is_some_and(|pc| pc.proven);
        println!();
        print_status(&status, false);
        if !accepted {
            bail!("sector {n} is Proving but the chain does not show its proof accepted");
        }
    }
    println!(
        "\n{} sector(s) Proving, proofs accepted by the chain, in {:.1} s",
        pledged.len(),
        started.elapsed().as_secs_f64()
    );
    daemon.stop();
    Ok(())
}
