//! `kiln-worker`: runs tasks (C2 today) for a kiln daemon on another machine,
//! typically a GPU box. See `docs/protocol.md`. The worker itself is the
//! library ([`worker::serve`]); this file parses flags, installs the log
//! subscriber, binds the listener and prints.

#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use wire::worker::{Capabilities, RemoteTask, MAX_TASK_BYTES};
use worker::{machine, TlsFiles, WorkerConfig};

#[derive(Parser)]
#[command(name = "kiln-worker", version, about = "Kiln's remote proving worker")]
struct Cli {
    /// Prove on the CPU and advertise no GPU, even where a `gpu` build finds one.
    #[arg(long, global = true, env = "KILN_NO_GPU")]
    no_gpu: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register with a daemon and serve tasks until SIGINT/SIGTERM.
    Run(RunArgs),
    /// What this machine offers (cores, memory, GPUs, parameters), or with
    /// `--url` what a running worker holds.
    Info(InfoArgs),
}

#[derive(Args)]
struct Offer {
    /// Task types to take (comma-separated): c2 (C2 of a sector), wdpost
    /// (Window PoSt SNARKs from vanilla proofs).
    #[arg(long, default_value = "c2,wdpost", value_delimiter = ',')]
    tasks: Vec<String>,
    /// Tasks to run at once (C2 at 32GiB needs ~190 GiB of RAM, or a GPU, each).
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// Groth16 parameters [default: `$XDG_CACHE_HOME/kiln/params`].
    #[arg(long)]
    param_dir: Option<PathBuf>,
}

impl Offer {
    fn tasks(&self) -> Result<Vec<RemoteTask>> {
        let mut out = Vec::new();
        for t in &self.tasks {
            let t = RemoteTask::parse(t).map_err(anyhow::Error::msg)?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        if !(1..=wire::worker::MAX_SLOTS).contains(&self.slots) {
            bail!("--slots must be between 1 and {}", wire::worker::MAX_SLOTS);
        }
        Ok(out)
    }
    fn param_dir(&self) -> PathBuf {
        self.param_dir.clone().unwrap_or_else(worker::default_param_dir)
    }
}

#[derive(Args)]
struct RunArgs {
    /// The daemon's API URL (`http://host:port` or `https://host:port`, as in its `api` file).
    #[arg(long, env = "KILN_MINER")]
    miner: String,
    /// PEM certificates to trust for an `https://` daemon besides the public
    /// web roots (its CA, or its self-signed certificate: the daemon's `api.crt`).
    #[arg(long)]
    miner_ca: Option<PathBuf>,
    /// This worker's token (`kiln auth create-worker-token NAME`).
    #[arg(long, env = "KILN_WORKER_TOKEN", hide_env_values = true)]
    token: String,
    /// Address the task API listens on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3456")]
    listen: String,
    /// URL the daemon reaches this worker at [default: http(s)://<listen address>].
    #[arg(long)]
    advertise: Option<String>,
    /// Serve the task API over HTTPS with this PEM certificate chain (leaf
    /// first); the daemon must trust it (`[workers] ca_cert`).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Also serve Prometheus metrics at `/metrics` without a key on this
    /// loopback address (e.g. 127.0.0.1:9465); the task API's `/metrics` takes
    /// the dispatch key.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Largest task body accepted (bytes); a 64GiB sector's C1 output is about 30 MB.
    #[arg(long, default_value_t = MAX_TASK_BYTES)]
    max_task_bytes: usize,
    #[command(flatten)]
    offer: Offer,
}

#[derive(Args)]
struct InfoArgs {
    /// A running worker's URL: show what it holds instead.
    #[arg(long, requires = "token")]
    url: Option<String>,
    /// That worker's token.
    #[arg(long, env = "KILN_WORKER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM certificates to trust for an `https://` worker besides the public web roots.
    #[arg(long, requires = "url")]
    ca: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    offer: Offer,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Test builds only: points armed by the `FAILPOINTS` variable of a test harness.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    if cli.no_gpu {
        proofs::gpu::disable();
    }
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Info(args) => info(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln-worker: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> Result<()> {
    let config = WorkerConfig {
        tasks: args.offer.tasks()?,
        slots: args.offer.slots,
        param_dir: args.offer.param_dir(),
        miner_ca: args.miner_ca,
        advertise: args.advertise,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        max_task_bytes: args.max_task_bytes,
        metrics_listen: args.metrics_listen,
        ..WorkerConfig::new(args.miner, args.token)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("kiln-worker-api")
        .build()?;
    runtime.block_on(async {
        let listener =
            wire::server::bind(&args.listen).await.with_context(|| format!("listen on {}", args.listen))?;
        worker::serve(listener, config, wire::server::stop_signal()).await?;
        Ok(())
    })
}

fn info(args: InfoArgs) -> Result<()> {
    let info = match (&args.url, &args.token) {
        (Some(url), Some(token)) => worker::fetch_info(url, token, args.ca.as_deref())?,
        _ => {
            let tasks = args.offer.tasks()?;
            let caps = machine::capabilities(&tasks, args.offer.slots, &args.offer.param_dir());
            if args.json {
                println!("{}", serde_json::to_string_pretty(&caps)?);
            } else {
                print_capabilities(&caps);
                println!("parameters   {}", args.offer.param_dir().display());
            }
            return Ok(());
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("worker       {} (protocol {}, version {})", info.instance, info.protocol, info.version);
        println!(
            "daemon       {} ({})",
            info.miner,
            if info.registered { "registered" } else { "not registered" }
        );
        print_capabilities(&info.capabilities);
        for t in &info.tasks {
            let sector = t.sector.map_or_else(|| "-".to_string(), |s| s.to_string());
            println!("task {:<7} {:<6} sector {sector:<7} {}", t.id, t.kind.name(), t.state);
        }
    }
    Ok(())
}

fn print_capabilities(c: &Capabilities) {
    let tasks: Vec<String> = c.tasks.iter().map(|t| format!("{t:?}").to_lowercase()).collect();
    println!("tasks        {} ({} slot(s))", tasks.join(","), c.slots);
    println!("cores        {}", c.cores);
    println!("memory       {} GiB", c.memory_bytes >> 30);
    println!(
        "gpus         {}{}",
        if c.gpus.is_empty() {
            "none".to_string()
        } else {
            c.gpus
                .iter()
                .map(|g| format!("{} ({} GiB)", g.name, g.memory_bytes >> 30))
                .collect::<Vec<_>>()
                .join("; ")
        },
        if c.gpu_build { " (gpu build)" } else { " (CPU build: proving on the CPU)" }
    );
    let params: Vec<String> = c.params.iter().map(|p| p.sector_size.to_string()).collect();
    println!("params for   {}", if params.is_empty() { "none".into() } else { params.join(", ") });
}
