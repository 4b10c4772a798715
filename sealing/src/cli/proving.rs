//! `kiln proving`: a running daemon's deadlines, faults and PoSts (lotus's
//! names); `kiln post`: Winning and Window PoSt by hand over sector
//! directories, like `kiln seal`.

use super::sectors::{time, RepoArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use proofs::post::challenges::{check_randomness, mask_randomness, sector_challenges, winning_sector_index};
use proofs::post::vanilla::{self, ProvingSector, ReadLimits};
use proofs::post::{PostKind, PostProof};
use proofs::seal::SectorDir;
use proofs::snark::params::GrothParams;
use proofs::snark::post as snark;
use proofs::{Commitment, Randomness};
use sealing::api::client::Client;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum ProvingCommand {
    /// The current deadline, sector health, recent PoSts and elections.
    Info {
        #[command(flatten)]
        repo: RepoArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every deadline: its next window, partitions, sectors, faults.
    Deadlines {
        #[command(flatten)]
        repo: RepoArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One deadline: its sectors by partition and its recent Window PoSts.
    Deadline {
        /// The deadline index.
        n: u64,
        #[command(flatten)]
        repo: RepoArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Faulty and recovering sectors, and recent health changes.
    Faults {
        #[command(flatten)]
        repo: RepoArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read every sector of deadline N now, as its Window PoSt would.
    Check {
        /// The deadline index.
        n: u64,
        #[command(flatten)]
        repo: RepoArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ProvingCommand) -> Result<()> {
    let print = |v: serde_json::Value| outln!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
    match cmd {
        ProvingCommand::Info { repo, json } => {
            let info = Client::from_repo(&repo.repo)?.proving()?;
            if json {
                print(serde_json::to_value(&info)?);
                return Ok(());
            }
            let (s, w) = (info.schedule, info.current);
            outln!("head            {}", info.head);
            outln!("proving period  {} epochs: {} deadlines of {} epochs", s.period(), s.deadlines, s.window);
            outln!(
                "current         deadline {} (period {}), epochs {}..{}, challenge {}",
                w.deadline,
                w.period,
                w.open,
                w.close,
                w.challenge
            );
            outln!(
                "sectors         {} active, {} faulty, {} recovering",
                info.active,
                info.faulty,
                info.recovering
            );
            let answered = info.elections.iter().filter(|e| e.sector.is_some()).count();
            outln!("elections       {} won in the last period, {answered} answered", info.elections.len());
            outln!("recent PoSts:");
            for r in &info.recent_runs {
                let what = match (r.kind.as_str(), r.deadline, r.partition, r.election) {
                    ("window", Some(d), Some(p), _) => format!("window deadline {d} partition {p}"),
                    (_, _, _, Some(e)) => format!("winning epoch {e}"),
                    (k, ..) => k.to_string(),
                };
                let outcome = match (&r.error, &r.message, r.exit_code) {
                    (Some(e), ..) => format!("FAILED: {e}"),
                    (None, Some(m), None) => format!("message {m} sent, not executed yet"),
                    (None, Some(m), Some(0)) => format!("message {m} accepted"),
                    (None, Some(m), Some(code)) => format!(
                        "REFUSED: message {m} exit code {code}: {}",
                        r.receipt_error.as_deref().unwrap_or("no reason given")
                    ),
                    (None, None, _) => "not sent".into(),
                };
                outln!(
                    "  {}  {what:<32} vanilla {:>6} ms  snark {:>7} ms  proven {:?}  faulty {:?}  {outcome}",
                    time(r.started_ms),
                    r.vanilla_ms,
                    r.snark_ms,
                    r.proven,
                    r.faults.iter().map(|f| f.sector).collect::<Vec<_>>()
                );
            }
        }
        ProvingCommand::Deadlines { repo, json } => {
            let deadlines = Client::from_repo(&repo.repo)?.deadlines()?;
            if json {
                print(serde_json::to_value(&deadlines)?);
                return Ok(());
            }
            outln!(
                "{:>8}  {:>13}  {:>10}  {:>7}  {:>6}  proven last window",
                "deadline",
                "next window",
                "partitions",
                "sectors",
                "faulty"
            );
            for d in &deadlines {
                outln!(
                    "{:>8}  {:>13}  {:>10}  {:>7}  {:>6}  {}",
                    d.window.deadline,
                    format!("{}..{}", d.window.open, d.window.close),
                    d.partitions,
                    d.sectors,
                    d.faulty,
                    d.proven_last_window
                );
            }
        }
        ProvingCommand::Deadline { n, repo, json } => {
            let d = Client::from_repo(&repo.repo)?.deadline(n)?;
            if json {
                print(serde_json::to_value(&d)?);
                return Ok(());
            }
            outln!(
                "deadline {n}: next window epochs {}..{} (challenge {})",
                d.window.open,
                d.window.close,
                d.window.challenge
            );
            outln!("{:>9}  {:>6}  {:<10}  {:>10}  comm_r", "partition", "sector", "health", "activation");
            for s in &d.sectors {
                outln!(
                    "{:>9}  {:>6}  {:<10}  {:>10}  {}",
                    s.partition,
                    s.sector,
                    s.health.name(),
                    s.activation,
                    s.comm_r
                );
            }
            outln!("Window PoSts:");
            for p in &d.posts {
                outln!(
                    "  window {} partition {}: message {} landed in {}, proven {:?}, skipped {:?}",
                    p.open_epoch,
                    p.partition,
                    p.message,
                    p.epoch,
                    p.proven,
                    p.skipped
                );
            }
        }
        ProvingCommand::Faults { repo, json } => {
            let f = Client::from_repo(&repo.repo)?.faults()?;
            if json {
                print(serde_json::to_value(&f)?);
                return Ok(());
            }
            if f.sectors.is_empty() {
                outln!("no faulty or recovering sector");
            }
            for s in &f.sectors {
                outln!(
                    "sector {:>6}  {:<10}  deadline {} partition {}",
                    s.sector,
                    s.health.name(),
                    s.deadline,
                    s.partition
                );
            }
            outln!("health changes:");
            for e in &f.events {
                outln!("  epoch {:>8}  sector {:>6}  {:<10}  {}", e.epoch, e.sector, e.health.name(), e.why);
            }
        }
        ProvingCommand::Check { n, repo, json } => {
            let checks = Client::from_repo(&repo.repo)?.check_deadline(n)?;
            if json {
                print(serde_json::to_value(&checks)?);
            } else {
                for c in &checks {
                    let verdict = c.fault.as_deref().map_or("ok".to_string(), |f| format!("FAULTY: {f}"));
                    outln!("sector {:>6}  {:<10}  {:>6} ms  {verdict}", c.sector, c.health.name(), c.ms);
                }
            }
            let bad = checks.iter().filter(|c| c.fault.is_some()).count();
            if bad > 0 {
                bail!("{bad} of {} sector(s) of deadline {n} cannot be proven", checks.len());
            }
        }
    }
    Ok(())
}

/// `kiln post winning|window`.
#[derive(Args)]
pub struct PostArgs {
    /// `winning` or `window`.
    kind: String,
    /// A sealed sector's directory (repeat; Winning picks one of them).
    #[arg(long = "dir", required = true)]
    dirs: Vec<PathBuf>,
    /// Chain randomness as 64 hex characters (byte 31 is masked with 0x3f)
    /// [default: random].
    #[arg(long)]
    randomness: Option<String>,
    /// Groth16 parameters [default: $XDG_CACHE_HOME/kiln/params].
    #[arg(long)]
    param_dir: Option<PathBuf>,
    /// Longest a sector's reads may take before it counts as faulty (s).
    #[arg(long, default_value_t = 60)]
    sector_timeout: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn post(args: PostArgs) -> Result<()> {
    let kind = match args.kind.as_str() {
        "winning" => PostKind::Winning,
        "window" => PostKind::Window,
        other => bail!("unknown PoSt kind {other:?}: winning or window"),
    };
    let mut sectors = Vec::new();
    let mut identity = None;
    for dir in &args.dirs {
        let sector = SectorDir::new(dir);
        let meta = sector.open().with_context(|| format!("sector directory {}", dir.display()))?;
        let pc2 =
            meta.pc2.with_context(|| format!("{}: the sector is not sealed (no PC2)", dir.display()))?;
        let id = (meta.identity.sector_size, meta.identity.prover_id);
        if identity.is_some_and(|i| i != id) {
            bail!("{}: every sector must have the same size and prover", dir.display());
        }
        identity = Some(id);
        sectors.push(ProvingSector::in_dir(meta.identity.sector_id, pc2.comm_r, &sector));
    }
    let (size, prover_id) = identity.expect("clap requires one --dir");
    sectors.sort_by_key(|s| s.sector_id);
    let randomness = match &args.randomness {
        Some(hex) => mask_randomness(&Randomness::from_hex(hex)?),
        None => mask_randomness(&Randomness(rand::random())),
    };
    check_randomness(&randomness)?;
    let proof = PostProof::of(kind, size);
    let chosen = match kind {
        PostKind::Winning => {
            let i = winning_sector_index(&prover_id, &randomness, sectors.len() as u64)?;
            vec![sectors[i as usize].clone()]
        }
        PostKind::Window => sectors,
    };
    let limits = ReadLimits { timeout: Duration::from_secs(args.sector_timeout), ..ReadLimits::default() };
    let t = Instant::now();
    let van = vanilla::generate(&proof, &randomness, &chosen, limits)?;
    let vanilla_s = t.elapsed().as_secs_f64();
    let challenges: Vec<serde_json::Value> = chosen
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"sector": s.sector_id, "leaves": sector_challenges(&proof, &randomness, s.sector_id, i)}))
        .collect();
    let params = GrothParams::post(args.param_dir.clone().unwrap_or_else(sealing::dirs::param_dir), proof);
    let (bytes, snark_s, verified) = if van.proofs.is_empty() {
        (Vec::new(), 0.0, None)
    } else {
        let key = params.load_proving().context("load the PoSt parameters")?;
        let t = Instant::now();
        let out = snark::prove(&proof, &van.proofs, &key)?;
        let snark_s = t.elapsed().as_secs_f64();
        let public: Vec<(u64, Commitment)> = van.proofs.iter().map(|p| (p.sector_id, p.comm_r)).collect();
        let vk = params.load_verifying_key()?;
        (out.bytes.clone(), snark_s, Some(snark::verify(&proof, &randomness, &public, &out.bytes, &vk)?))
    };
    let report = json!({
        "proof_type": proof.name(),
        "randomness": randomness.to_hex(),
        "challenges": challenges,
        "proven": van.proofs.iter().map(|p| p.sector_id).collect::<Vec<_>>(),
        "faults": van.faults.iter().map(|f| json!({"sector": f.sector_id, "reason": f.reason})).collect::<Vec<_>>(),
        "partitions": if van.proofs.is_empty() { 0 } else { proof.partitions(van.proofs.len()) },
        "vanilla_seconds": vanilla_s,
        "snark_seconds": snark_s,
        "proof_hex": hex::encode(&bytes),
        "verified": verified,
    });
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!("proof type   {}", proof.name());
        outln!("randomness   {}", randomness);
        for c in &challenges {
            outln!("sector {:>6} leaves {}", c["sector"], c["leaves"]);
        }
        for f in &van.faults {
            outln!("FAULTY sector {}: {}", f.sector_id, f.reason);
        }
        outln!("vanilla      {vanilla_s:.3} s");
        outln!("snark        {snark_s:.3} s ({} partition(s))", report["partitions"]);
        outln!("proof        {}", hex::encode(&bytes));
        outln!(
            "verified     {}",
            verified.map_or("no proof (every sector faulty)".into(), |v| v.to_string())
        );
    }
    if verified == Some(false) {
        bail!("the proof does not verify");
    }
    if !van.faults.is_empty() {
        bail!("{} faulty sector(s)", van.faults.len());
    }
    Ok(())
}
