//! `kiln`: the storage provider's command.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use proofs::pieces::commit_piece;
use serde_json::json;
use std::path::PathBuf;

/// `println!` for command output: a reader that went away (`kiln proving
/// deadlines | head`) ends the command quietly with success, where
/// `println!` would panic on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::output_failed(e);
        }
    }};
}

/// What a failed write of command output does: a closed pipe ends the
/// command (status 0, as `head` asked for no more); anything else is reported.
fn output_failed(e: std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write the output: {e}");
    std::process::exit(1);
}

mod cli;

#[derive(Parser)]
#[command(name = "kiln", version, about = "Filecoin-compatible PoRep sealing")]
struct Cli {
    /// Prove on the CPU even where a `gpu` build finds a GPU.
    #[arg(long, global = true, env = "KILN_NO_GPU")]
    no_gpu: bool,
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
    Seal(cli::seal::SealCommand),
    /// Recover original data from a sealed replica.
    Unseal(cli::seal::UnsealArgs),
    /// Seal in a scratch directory and report seconds, peak memory and CPU use per
    /// phase, and PC1 against this machine's SHA-256 bound.
    Bench(cli::bench::BenchArgs),
    /// Groth16 parameters.
    #[command(subcommand)]
    Params(cli::params::ParamsCommand),
    /// Run the sealing daemon (API, driver, embedded chain) from a TOML config.
    Daemon(cli::daemon::DaemonArgs),
    /// The main job in one command: a daemon in a fresh directory, pledged sectors
    /// sealed to Proving on the embedded chain, with progress.
    Run(cli::daemon::RunArgs),
    /// Sectors of a running daemon.
    #[command(subcommand)]
    Sectors(cli::sectors::SectorsCommand),
    /// The daemon's chain.
    #[command(subcommand)]
    Chain(cli::sectors::ChainCommand),
    /// Remote workers (kiln-worker) registered with the daemon.
    #[command(subcommand)]
    Workers(cli::workers::WorkersCommand),
    /// The daemon's task record (local and remote).
    #[command(subcommand)]
    Tasks(cli::workers::TasksCommand),
    /// Worker tokens.
    #[command(subcommand)]
    Auth(cli::workers::AuthCommand),
    /// The daemon's proving: deadlines, faults, checks, PoSts.
    #[command(subcommand)]
    Proving(cli::proving::ProvingCommand),
    /// A Winning or Window PoSt by hand over sealed sector directories.
    Post(cli::proving::PostArgs),
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

fn main() {
    let mut cli = Cli::parse();
    // `kiln run` keeps the log in its data directory, out of its live view.
    let log_file = match &mut cli.command {
        Command::Run(args) => match args.prepare() {
            Ok(file) => file,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
        },
        _ => None,
    };
    init_tracing(log_file.as_deref());
    // Test builds only: points armed by the `FAILPOINTS` variable of a test harness.
    #[cfg(feature = "failpoints")]
    let _failpoints = sealing::failpoints::from_env();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Log lines to stderr, or appended to `file`.
fn init_tracing(file: Option<&std::path::Path>) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let opened = file.map(|f| std::fs::OpenOptions::new().create(true).append(true).open(f));
    match opened {
        Some(Ok(f)) => builder.with_writer(std::sync::Mutex::new(f)).with_ansi(false).init(),
        Some(Err(e)) => {
            eprintln!("warning: cannot write the log file ({e}); logging to stderr");
            builder.with_writer(std::io::stderr).init()
        }
        None => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn run(cli: Cli) -> Result<()> {
    if cli.no_gpu {
        proofs::gpu::disable();
    }
    match cli.command {
        Command::Piece(PieceCommand::Commp { file, json }) => piece_commp(file, json),
        Command::Seal(cmd) => cli::seal::run(cmd),
        Command::Unseal(args) => cli::seal::unseal(args),
        Command::Bench(args) => cli::bench::bench(args),
        Command::Params(cmd) => cli::params::run(cmd),
        Command::Daemon(args) => cli::daemon::daemon(args),
        Command::Run(args) => cli::daemon::run(args),
        Command::Sectors(cmd) => cli::sectors::run(cmd),
        Command::Chain(cmd) => cli::sectors::chain(cmd),
        Command::Workers(cmd) => cli::workers::workers(cmd),
        Command::Tasks(cmd) => cli::workers::tasks(cmd),
        Command::Auth(cmd) => cli::workers::auth(cmd),
        Command::Proving(cmd) => cli::proving::run(cmd),
        Command::Post(args) => cli::proving::post(args),
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
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("comm_p        {}", info.comm_p);
        outln!("padded size   {}", info.padded_size);
        outln!("unpadded size {} ({} from the file, the rest zero)", info.unpadded_size(), raw_len);
    }
    Ok(())
}
