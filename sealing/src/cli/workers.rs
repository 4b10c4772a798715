//! `kiln workers …`, `kiln tasks …` and `kiln auth …`: remote workers, the
//! task record and worker tokens, as clients of a running daemon.

use super::sectors::{elapsed, now_ms, time, RepoArgs};
use anyhow::Result;
use clap::Subcommand;
use sealing::api::client::Client;
use sealing::api::TaskView;
use sealing::api::WorkerView;

#[derive(Subcommand)]
pub enum WorkersCommand {
    /// Every registered worker: state, open tasks, last heartbeat, capabilities.
    List {
        #[command(flatten)]
        repo: RepoArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Clear a worker's unhealthy mark, bench and failure count (after checking it): it gets tasks again.
    Reset {
        /// The worker's name.
        name: String,
        #[command(flatten)]
        repo: RepoArgs,
    },
}

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Every task the daemon ran or handed out (or one sector's), oldest first.
    List {
        /// Only this sector's.
        #[arg(long)]
        sector: Option<u64>,
        #[command(flatten)]
        repo: RepoArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Make a token for a worker (printed once; give it to `kiln-worker run --token`).
    CreateWorkerToken {
        /// The worker's name (A-Z a-z 0-9 - _ ., up to 64).
        name: String,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Revoke a worker's token: its requests are refused and its tasks run elsewhere.
    RevokeWorkerToken {
        /// The worker's name.
        name: String,
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Worker tokens by name (the secrets are never shown again).
    ListWorkerTokens {
        #[command(flatten)]
        repo: RepoArgs,
    },
}

pub fn workers(cmd: WorkersCommand) -> Result<()> {
    match cmd {
        WorkersCommand::List { repo, json } => {
            let workers = Client::from_repo(&repo.repo)?.workers()?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&workers)?);
            } else {
                print_workers(&workers);
            }
        }
        WorkersCommand::Reset { name, repo } => {
            let r = Client::from_repo(&repo.repo)?.reset_worker(&name)?;
            outln!("worker {}: unhealthy mark cleared", r.name);
        }
    }
    Ok(())
}

pub fn tasks(cmd: TasksCommand) -> Result<()> {
    match cmd {
        TasksCommand::List { sector, repo, json } => {
            let tasks = Client::from_repo(&repo.repo)?.tasks(sector)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&tasks)?);
            } else {
                print_tasks(&tasks);
            }
        }
    }
    Ok(())
}

pub fn auth(cmd: AuthCommand) -> Result<()> {
    match cmd {
        AuthCommand::CreateWorkerToken { name, repo } => {
            let t = Client::from_repo(&repo.repo)?.create_worker_token(&name)?;
            eprintln!("token for worker {} (shown once; the daemon keeps only its hash):", t.name);
            outln!("{}", t.token);
        }
        AuthCommand::RevokeWorkerToken { name, repo } => {
            let r = Client::from_repo(&repo.repo)?.revoke_worker_token(&name)?;
            outln!("revoked the token of worker {}; tasks re-run elsewhere: {:?}", r.name, r.expired_tasks);
        }
        AuthCommand::ListWorkerTokens { repo } => {
            outln!("{:<24} {:<23}  revoked", "worker", "created");
            for t in Client::from_repo(&repo.repo)?.worker_tokens()? {
                outln!("{:<24} {}  {}", t.name, time(t.created_ms), t.revoked_ms.map_or("-".into(), time));
            }
        }
    }
    Ok(())
}

fn print_workers(workers: &[WorkerView]) {
    outln!(
        "{:<16} {:<10} {:<12} {:<23}  {:<26} url",
        "worker",
        "state",
        "tasks",
        "last heartbeat",
        "capabilities"
    );
    for v in workers {
        let w = v;
        let c = &w.capabilities;
        let sizes: Vec<String> = c.params.iter().map(|p| p.sector_size.to_string()).collect();
        let caps = format!(
            "{} slot(s), {} cores, {} GiB, {}{}, params {}",
            c.slots,
            c.cores,
            c.memory_bytes >> 30,
            if c.gpus.is_empty() {
                "no GPU".to_string()
            } else {
                let gpus: Vec<String> =
                    c.gpus.iter().map(|g| format!("{} {} GiB", g.name, g.memory_bytes >> 30)).collect();
                format!("GPU: {}", gpus.join(", "))
            },
            if c.gpu_build { " [gpu build]" } else { "" },
            if sizes.is_empty() { "none".into() } else { sizes.join(",") }
        );
        let tasks = if v.tasks.is_empty() {
            "-".to_string()
        } else {
            v.tasks.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        };
        outln!(
            "{:<16} {:<10} {:<12} {}  {:<26} {}",
            w.name,
            serde_json::to_value(v.state).ok().and_then(|s| s.as_str().map(String::from)).unwrap_or_default(),
            tasks,
            time(w.last_seen_ms),
            caps,
            w.url
        );
        if let Some(why) = &w.unhealthy {
            outln!("{:<16} unhealthy: {why}", "");
        }
        if let (wire::api::WorkerState::Benched, Some(until)) = (v.state, w.benched_until_ms) {
            outln!(
                "{:<16} benched until {}: {}",
                "",
                time(until),
                w.bench_reason.as_deref().unwrap_or_default()
            );
        } else if w.failures > 0 {
            outln!("{:<16} {} failed task(s) in a row", "", w.failures);
        }
    }
}

/// Prints task rows, one per line: where each ran, when it started, how long
/// its sector waited for it and how long it took (or has run).
pub fn print_tasks(tasks: &[TaskView]) {
    outln!(
        "{:>6} {:>6}  {:<10} {:<12} {:<11} {:<23} {:>10} {:>10}  error",
        "task",
        "sector",
        "kind",
        "where",
        "state",
        "started",
        "queued",
        "took"
    );
    let now = now_ms();
    for t in tasks {
        let end = if t.state.is_open() { now } else { t.updated_ms };
        outln!(
            "{:>6} {:>6}  {:<10} {:<12} {:<11} {} {:>10} {:>10}  {}",
            t.id,
            t.sector.map_or_else(|| "-".to_string(), |n| n.to_string()),
            t.kind.name(),
            t.worker.as_deref().unwrap_or("local"),
            t.state.name(),
            time(t.created_ms),
            t.queued_ms.map_or("-".into(), elapsed),
            elapsed(end - t.created_ms),
            t.error.as_deref().unwrap_or("")
        );
    }
}
