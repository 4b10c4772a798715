//! `kiln`: the storage provider's command.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use proofs::pieces::commit_piece;
use proofs::sdr::label_par::LabelingConfig;
use proofs::seal::{pc1, pc2, SectorDir, SectorIdentity};
use proofs::{ProverId, Randomness, SectorSize};
use sealing::progress::Reporter;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "kiln", version, about = "Filecoin-compatible PoRep sealing")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Piece tools.
    #[command(subcommand)]
    Piece(PieceCommand),
    /// Seal a sector phase by phase.
    #[command(subcommand)]
    Seal(SealCommand),
}

#[derive(Subcommand)]
enum PieceCommand {
    /// Compute a piece commitment (comm_p); the file is zero-padded to the next 127·2^k bytes.
    Commp {
        /// The piece file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SealCommand {
    /// PC1 and PC2: stage pieces, label layers, build trees, encode the replica.
    PreCommit(PreCommitArgs),
}

#[derive(Args)]
struct PreCommitArgs {
    /// Sector size: 2KiB, 8MiB, 512MiB, 32GiB or 64GiB.
    #[arg(long)]
    sector_size: String,
    /// Prover id as 64 hex characters.
    #[arg(long, conflicts_with = "miner_id", required_unless_present = "miner_id")]
    prover_id: Option<String>,
    /// Miner actor id (f0N); the prover id is derived from it.
    #[arg(long)]
    miner_id: Option<u64>,
    /// Sector number.
    #[arg(long)]
    sector_id: u64,
    /// Seal ticket as 64 hex characters.
    #[arg(long)]
    ticket: String,
    /// Piece files, in order; none seals a committed-capacity sector.
    #[arg(long = "piece")]
    pieces: Vec<PathBuf>,
    /// Sector directory (staged data, cache, sealed replica).
    #[arg(long)]
    dir: PathBuf,
    /// Directory of SDR parent caches [default: $XDG_CACHE_HOME/kiln/parents].
    #[arg(long)]
    parent_cache: Option<PathBuf>,
    /// Labeling threads prefetching parents; 0 uses the single-threaded reference labeler.
    #[arg(long)]
    producers: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn main() {
    init_tracing();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Piece(PieceCommand::Commp { file, json }) => piece_commp(file, json),
        Command::Seal(SealCommand::PreCommit(args)) => pre_commit(args),
    }
}

fn piece_commp(file: PathBuf, json: bool) -> Result<()> {
    let f = std::fs::File::open(&file).with_context(|| format!("open piece {}", file.display()))?;
    let (info, raw_len) = commit_piece(std::io::BufReader::new(f), None, None)
        .with_context(|| format!("read piece {}", file.display()))?;
    if json {
        let out = json!({
            "comm_p": info.comm_p,
            "padded_size": info.padded_size,
            "unpadded_size": info.unpadded_size(),
            "file_bytes": raw_len,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("comm_p        {}", info.comm_p);
        println!("padded size   {}", info.padded_size);
        println!("unpadded size {} ({} from the file, the rest zero)", info.unpadded_size(), raw_len);
    }
    Ok(())
}

fn pre_commit(args: PreCommitArgs) -> Result<()> {
    let sector_size = SectorSize::parse(&args.sector_size)?;
    let prover_id = match (&args.prover_id, args.miner_id) {
        (Some(hex), _) => ProverId::from_hex(hex)?,
        (None, Some(id)) => ProverId::from_actor_id(id),
        (None, None) => bail!("give --prover-id or --miner-id"),
    };
    let ticket = Randomness::from_hex(&args.ticket).context("--ticket")?;
    let mut labeling = LabelingConfig::default();
    if let Some(p) = args.producers {
        labeling.producers = p;
    }
    let identity = SectorIdentity { sector_size, prover_id, sector_id: args.sector_id };
    let req = pc1::Pc1Request {
        identity,
        ticket,
        pieces: args.pieces.clone(),
        parent_cache_dir: args.parent_cache.clone().unwrap_or_else(sealing::dirs::parent_cache_dir),
        labeling,
    };
    let dir = SectorDir::new(&args.dir);
    let cancel = AtomicBool::new(false);
    let mut reporter = Reporter::new();

    let span = tracing::info_span!("sector", sector_id = identity.sector_id);
    let _guard = span.enter();
    let started = Instant::now();
    let r1 = pc1::run(&dir, &req, &cancel, &mut |p| reporter.report(p))?;
    let pc1_seconds = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let r2 = pc2::run(&dir, &cancel, &mut |p| reporter.report(p))?;
    let pc2_seconds = t.elapsed().as_secs_f64();
    reporter.finish();

    let pieces: Vec<_> = r1
        .pieces
        .iter()
        .filter_map(|p| {
            p.source.as_ref().map(|src| {
                json!({
                    "file": src,
                    "comm_p": p.info.comm_p,
                    "padded_size": p.info.padded_size,
                    "unpadded_size": p.info.unpadded_size(),
                    "offset": p.offset,
                })
            })
        })
        .collect();
    let seconds = json!({
        "staging": r1.staging.as_secs_f64(),
        "tree_d": r1.tree_d.as_secs_f64(),
        "labeling": r1.labeling_time.as_secs_f64(),
        "pc1": pc1_seconds,
        "tree_c": r2.tree_c.as_secs_f64(),
        "encode": r2.encode.as_secs_f64(),
        "tree_r_last": r2.tree_r_last.as_secs_f64(),
        "pc2": pc2_seconds,
    });
    let out = json!({
        "sector_id": identity.sector_id,
        "sector_size": sector_size,
        "prover_id": prover_id,
        "ticket": ticket,
        "pieces": pieces,
        "comm_d": r1.output.comm_d,
        "replica_id": r1.output.replica_id,
        "comm_c": r2.output.comm_c,
        "comm_r_last": r2.output.comm_r_last,
        "comm_r": r2.output.comm_r,
        "layers_reused": r1.labeling.reused,
        "layers_labeled": r1.labeling.labeled,
        "seconds": seconds,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("sector        {} ({sector_size})", identity.sector_id);
    for p in &pieces {
        println!(
            "piece         {} {} ({} bytes padded)",
            p["comm_p"].as_str().unwrap_or(""),
            p["file"],
            p["padded_size"]
        );
    }
    println!("comm_d        {}", r1.output.comm_d);
    println!("replica_id    {}", r1.output.replica_id);
    println!("comm_c        {}", r2.output.comm_c);
    println!("comm_r_last   {}", r2.output.comm_r_last);
    println!("comm_r        {}", r2.output.comm_r);
    if !r1.labeling.reused.is_empty() {
        println!("layers kept   {:?} (labeled earlier)", r1.labeling.reused);
    }
    println!("seconds:");
    for (phase, s) in seconds.as_object().expect("object") {
        println!("  {phase:<12} {:.3}", s.as_f64().unwrap_or(0.0));
    }
    Ok(())
}
