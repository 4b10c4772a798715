//! `kiln seal`: the seal phases by hand (pre-commit, commit, C2 alone, verify,
//! finalize, all of them), and `kiln unseal`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use proofs::sdr::label_par::LabelingConfig;
use proofs::seal::c1::C1Output;
use proofs::seal::{c1, finalize, pc1, pc2, unseal, SectorDir, SectorIdentity};
use proofs::snark::params::GrothParams;
use proofs::snark::{self, SealStatement};
use proofs::{Commitment, ProverId, Randomness, SectorSize};
use sealing::memory;
use sealing::progress::Reporter;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(Subcommand)]
pub enum SealCommand {
    /// PC1 and PC2: stage pieces, label layers, build trees, encode the replica.
    PreCommit(PreCommitArgs),
    /// PC1 for several sectors of one size labeled together (throughput), then PC2 for each.
    Batch(BatchArgs),
    /// C1 and C2 for a pre-committed sector, then verify the proof.
    Commit(CommitArgs),
    /// C2 alone, from a C1 file (no sector files needed).
    C2(C2Args),
    /// Verify a seal proof from public values.
    Verify(VerifyArgs),
    /// Remove what only sealing needed (layers, tree_c, tree_d), keep what PoSt and unseal need.
    Finalize {
        /// Sector directory.
        #[arg(long)]
        dir: PathBuf,
        /// Also remove the staged unsealed copy of the data.
        #[arg(long)]
        drop_unsealed: bool,
    },
    /// Every phase: pre-commit, C1, C2, verify; prints seconds and peak memory per phase.
    All(AllArgs),
}

/// Which sector, and the ticket it is sealed with.
#[derive(Args)]
pub struct SectorArgs {
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
}

impl SectorArgs {
    /// The sector's identity and ticket.
    fn parse(&self) -> Result<(SectorIdentity, Randomness)> {
        let identity = SectorIdentity {
            sector_size: SectorSize::parse(&self.sector_size)?,
            prover_id: prover_id(&self.prover_id, self.miner_id)?,
            sector_id: self.sector_id,
        };
        Ok((identity, Randomness::from_hex(&self.ticket).context("--ticket")?))
    }
}

#[derive(Args)]
pub struct PreCommitArgs {
    #[command(flatten)]
    sector: SectorArgs,
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

#[derive(Args)]
pub struct BatchArgs {
    /// Sector size, shared by every sector of the batch.
    #[arg(long)]
    sector_size: String,
    /// Prover id as 64 hex characters.
    #[arg(long, conflicts_with = "miner_id", required_unless_present = "miner_id")]
    prover_id: Option<String>,
    /// Miner actor id (f0N); the prover id is derived from it.
    #[arg(long)]
    miner_id: Option<u64>,
    /// Sector numbers, comma-separated; sector N is sealed in DIR/N.
    #[arg(long, value_delimiter = ',', required = true)]
    sectors: Vec<u64>,
    /// Seal ticket of every sector, as 64 hex characters.
    #[arg(long)]
    ticket: String,
    /// A piece of one sector as N:FILE (repeat, in order); sectors without pieces are
    /// committed capacity.
    #[arg(long = "piece")]
    pieces: Vec<String>,
    /// Directory holding one directory per sector.
    #[arg(long)]
    dir: PathBuf,
    /// Directory of SDR parent caches [default: $XDG_CACHE_HOME/kiln/parents].
    #[arg(long)]
    parent_cache: Option<PathBuf>,
    /// Hashing threads for the batch [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CommitArgs {
    /// Sector directory (after pre-commit).
    #[arg(long)]
    dir: PathBuf,
    /// Interactive seed as 64 hex characters.
    #[arg(long)]
    seed: String,
    /// Also write the C1 output here (JSON; `.bin` for the compact binary form).
    #[arg(long)]
    c1_out: Option<PathBuf>,
    /// Also write the C1 output in the reference's JSON form (lotus / filecoin-ffi's
    /// `SealCommitPhase1Output`).
    #[arg(long)]
    c1_reference_json: Option<PathBuf>,
    /// Write the proof bytes here.
    #[arg(long)]
    proof_out: Option<PathBuf>,
    /// Parameter directory [default: $XDG_CACHE_HOME/kiln/params].
    #[arg(long)]
    param_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct C2Args {
    /// The C1 output (JSON or binary).
    #[arg(long)]
    c1: PathBuf,
    /// Write the proof bytes here.
    #[arg(long)]
    proof_out: Option<PathBuf>,
    /// Parameter directory [default: $XDG_CACHE_HOME/kiln/params].
    #[arg(long)]
    param_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    sector: SectorArgs,
    /// Interactive seed (hex).
    #[arg(long)]
    seed: String,
    /// comm_d (hex).
    #[arg(long)]
    comm_d: String,
    /// comm_r (hex).
    #[arg(long)]
    comm_r: String,
    /// The proof as hex.
    #[arg(long, conflicts_with = "proof_file", required_unless_present = "proof_file")]
    proof: Option<String>,
    /// The proof bytes in a file.
    #[arg(long)]
    proof_file: Option<PathBuf>,
    /// Parameter directory [default: $XDG_CACHE_HOME/kiln/params].
    #[arg(long)]
    param_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct AllArgs {
    #[command(flatten)]
    pre_commit: PreCommitArgs,
    /// Interactive seed as 64 hex characters.
    #[arg(long)]
    seed: String,
    /// Parameter directory [default: $XDG_CACHE_HOME/kiln/params].
    #[arg(long)]
    param_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct UnsealArgs {
    /// Sector directory.
    #[arg(long)]
    dir: PathBuf,
    /// First unpadded byte.
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// Unpadded bytes [default: to the end of the sector].
    #[arg(long)]
    len: Option<u64>,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
    /// Directory of SDR parent caches [default: $XDG_CACHE_HOME/kiln/parents].
    #[arg(long)]
    parent_cache: Option<PathBuf>,
}

pub fn run(cmd: SealCommand) -> Result<()> {
    match cmd {
        SealCommand::PreCommit(args) => {
            let mut phases = Phases::default();
            let out = pre_commit(&args, &mut phases)?;
            print_pre_commit(&out, args.json)
        }
        SealCommand::Batch(args) => batch(args),
        SealCommand::Commit(args) => commit(args),
        SealCommand::C2(args) => c2(args),
        SealCommand::Verify(args) => verify(args),
        SealCommand::Finalize { dir, drop_unsealed } => {
            let removed = finalize::finalize(&SectorDir::new(&dir), !drop_unsealed)?;
            for path in &removed {
                outln!("removed {}", path.display());
            }
            outln!("{} file(s) removed; the replica, tree_r_last, p_aux and t_aux are kept", removed.len());
            Ok(())
        }
        SealCommand::All(args) => all(args),
    }
}

/// Seconds and peak memory of each phase run, in order.
#[derive(Default)]
struct Phases(Vec<(&'static str, f64, Option<u64>)>);

impl Phases {
    fn time<T>(&mut self, name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        memory::reset_peak();
        let t = Instant::now();
        let out = f()?;
        self.0.push((name, t.elapsed().as_secs_f64(), memory::peak_bytes()));
        Ok(out)
    }
    fn json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|(name, s, peak)| json!({"phase": name, "seconds": s, "peak_rss_bytes": peak}))
                .collect(),
        )
    }
    fn print_table(&self) {
        outln!("{:<10} {:>10} {:>12}", "phase", "seconds", "peak MiB");
        for (name, s, peak) in &self.0 {
            let mib = peak.map_or("-".to_string(), |b| format!("{:.1}", b as f64 / (1 << 20) as f64));
            outln!("{name:<10} {s:>10.3} {mib:>12}");
        }
    }
}

fn prover_id(hex: &Option<String>, miner: Option<u64>) -> Result<ProverId> {
    match (hex, miner) {
        (Some(hex), _) => Ok(ProverId::from_hex(hex)?),
        (None, Some(id)) => Ok(ProverId::from_actor_id(id)),
        (None, None) => bail!("give --prover-id or --miner-id"),
    }
}

fn param_store(dir: &Option<PathBuf>, size: SectorSize) -> GrothParams {
    GrothParams::porep(dir.clone().unwrap_or_else(sealing::dirs::param_dir), size)
}

fn pre_commit(args: &PreCommitArgs, phases: &mut Phases) -> Result<Value> {
    let (identity, ticket) = args.sector.parse()?;
    let SectorIdentity { sector_size, prover_id, .. } = identity;
    let mut labeling = LabelingConfig::default();
    if let Some(p) = args.producers {
        labeling.producers = p;
    }
    let req = pc1::Pc1Request {
        identity,
        ticket,
        pieces: args.pieces.clone(),
        parent_cache_dir: args.parent_cache.clone().unwrap_or_else(sealing::dirs::parent_cache_dir),
        labeling,
        expected_comm_p: Vec::new(),
    };
    let dir = SectorDir::new(&args.dir);
    let cancel = AtomicBool::new(false);
    let mut reporter = Reporter::new();
    let span = tracing::info_span!("sector", sector_id = identity.sector_id);
    let _guard = span.enter();
    let r1 = phases.time("pc1", || Ok(pc1::run(&dir, &req, &cancel, &mut |p| reporter.report(p))?))?;
    let r2 = phases.time("pc2", || Ok(pc2::run(&dir, &cancel, &mut |p| reporter.report(p))?))?;
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
        "pc1": phases.0[phases.0.len() - 2].1,
        "tree_c": r2.tree_c.as_secs_f64(),
        "encode": r2.encode.as_secs_f64(),
        "tree_r_last": r2.tree_r_last.as_secs_f64(),
        "pc2": phases.0[phases.0.len() - 1].1,
    });
    Ok(json!({
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
    }))
}

/// The PC1 requests of a batch, one per sector, in `--sectors` order.
fn batch_requests(args: &BatchArgs) -> Result<Vec<(SectorDir, pc1::Pc1Request)>> {
    let sector_size = SectorSize::parse(&args.sector_size)?;
    let prover_id = prover_id(&args.prover_id, args.miner_id)?;
    let ticket = Randomness::from_hex(&args.ticket).context("--ticket")?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = args.sectors.iter().find(|id| !seen.insert(**id)) {
        bail!("sector {dup} is given twice in --sectors");
    }
    let mut pieces: std::collections::HashMap<u64, Vec<PathBuf>> = Default::default();
    for spec in &args.pieces {
        let (id, file) = spec.split_once(':').with_context(|| format!("--piece {spec}: expected N:FILE"))?;
        let id: u64 = id.parse().with_context(|| format!("--piece {spec}: {id} is not a sector number"))?;
        if !args.sectors.contains(&id) {
            bail!("--piece {spec}: sector {id} is not in --sectors");
        }
        pieces.entry(id).or_default().push(PathBuf::from(file));
    }
    let mut labeling = LabelingConfig::default();
    if let Some(t) = args.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        labeling.batch_threads = t;
    }
    let parent_cache_dir = args.parent_cache.clone().unwrap_or_else(sealing::dirs::parent_cache_dir);
    Ok(args
        .sectors
        .iter()
        .map(|&sector_id| {
            let req = pc1::Pc1Request {
                identity: SectorIdentity { sector_size, prover_id, sector_id },
                ticket,
                pieces: pieces.remove(&sector_id).unwrap_or_default(),
                parent_cache_dir: parent_cache_dir.clone(),
                labeling,
                expected_comm_p: Vec::new(),
            };
            (SectorDir::new(args.dir.join(sector_id.to_string())), req)
        })
        .collect())
}

fn batch(args: BatchArgs) -> Result<()> {
    let sectors = batch_requests(&args)?;
    let cancel = AtomicBool::new(false);
    let mut reporter = Reporter::new();
    let mut phases = Phases::default();
    let pc1 = phases.time("pc1", || Ok(pc1::run_batch(&sectors, &cancel, &mut |p| reporter.report(p))?))?;
    let mut results = Vec::new();
    let mut failed = 0;
    for ((dir, req), r1) in sectors.iter().zip(pc1) {
        let id = req.identity.sector_id;
        let span = tracing::info_span!("sector", sector_id = id);
        let _guard = span.enter();
        let r2 = r1.map_err(anyhow::Error::from).and_then(|r1| {
            let r2 = phases.time("pc2", || Ok(pc2::run(dir, &cancel, &mut |p| reporter.report(p))?))?;
            Ok((r1, r2))
        });
        results.push(match r2 {
            Ok((r1, r2)) => json!({
                "sector_id": id,
                "dir": dir.root(),
                "comm_d": r1.output.comm_d,
                "replica_id": r1.output.replica_id,
                "comm_r": r2.output.comm_r,
                "layers_reused": r1.labeling.reused,
                "layers_labeled": r1.labeling.labeled,
            }),
            Err(e) => {
                failed += 1;
                json!({ "sector_id": id, "dir": dir.root(), "error": format!("{e:#}") })
            }
        });
    }
    reporter.finish();
    let out = json!({ "sector_size": args.sector_size, "sectors": results, "phases": phases.json() });
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for r in &results {
            match r.get("error") {
                Some(e) => outln!("sector {:<6} FAILED: {}", r["sector_id"], e.as_str().unwrap_or("")),
                None => outln!(
                    "sector {:<6} comm_d {} comm_r {}",
                    r["sector_id"],
                    r["comm_d"].as_str().unwrap_or(""),
                    r["comm_r"].as_str().unwrap_or("")
                ),
            }
        }
        phases.print_table();
    }
    if failed > 0 {
        bail!("{failed} of {} sectors failed", results.len());
    }
    Ok(())
}

fn print_pre_commit(out: &Value, json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(out)?);
        return Ok(());
    }
    outln!("sector        {} ({})", out["sector_id"], out["sector_size"].as_str().unwrap_or(""));
    for p in out["pieces"].as_array().into_iter().flatten() {
        outln!(
            "piece         {} {} ({} bytes padded)",
            p["comm_p"].as_str().unwrap_or(""),
            p["file"],
            p["padded_size"]
        );
    }
    for key in ["comm_d", "replica_id", "comm_c", "comm_r_last", "comm_r"] {
        outln!("{key:<13} {}", out[key].as_str().unwrap_or(""));
    }
    if out["layers_reused"].as_array().is_some_and(|a| !a.is_empty()) {
        outln!("layers kept   {} (labeled earlier)", out["layers_reused"]);
    }
    outln!("seconds:");
    for (phase, s) in out["seconds"].as_object().into_iter().flatten() {
        outln!("  {phase:<12} {:.3}", s.as_f64().unwrap_or(0.0));
    }
    Ok(())
}

fn write_c1(c1: &C1Output, path: &Path) -> Result<()> {
    let bytes = if path.extension().is_some_and(|e| e == "bin") { c1.to_binary() } else { c1.to_json() };
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

/// C1, C2 and self-verification of a pre-committed sector.
fn commit_phases(
    dir: &Path,
    seed: &Randomness,
    param_dir: &Option<PathBuf>,
    c1_out: Option<&Path>,
    reference_json: Option<&Path>,
    phases: &mut Phases,
) -> Result<(C1Output, Vec<u8>, bool)> {
    let c1 = phases.time("c1", || Ok(c1::run(&SectorDir::new(dir), seed)?))?;
    if let Some(path) = c1_out {
        write_c1(&c1, path)?;
    }
    if let Some(path) = reference_json {
        let json = proofs::seal::reference_json::reference_c1_json(&c1);
        std::fs::write(path, json).with_context(|| format!("write {}", path.display()))?;
    }
    let (proof, verified) = prove_and_verify(&c1, param_dir, phases)?;
    Ok((c1, proof, verified))
}

fn prove_and_verify(
    c1: &C1Output,
    param_dir: &Option<PathBuf>,
    phases: &mut Phases,
) -> Result<(Vec<u8>, bool)> {
    let params = param_store(param_dir, c1.identity.sector_size);
    let mapped = phases.time("params", || Ok(params.load_proving()?))?;
    let proof = phases.time("c2", || Ok(snark::prove(c1, &mapped)?))?;
    drop(mapped);
    let verified = phases.time("verify", || {
        Ok(snark::verify_seal(&SealStatement::of(c1), &proof, &params.seal_verifying_key()?)?)
    })?;
    Ok((proof, verified))
}

fn proof_json(c1: &C1Output, proof: &[u8], verified: bool, phases: &Phases) -> Value {
    json!({
        "sector_id": c1.identity.sector_id,
        "sector_size": c1.identity.sector_size,
        "prover_id": c1.identity.prover_id,
        "ticket": c1.ticket,
        "seed": c1.seed,
        "comm_d": c1.comm_d,
        "comm_r": c1.comm_r,
        "replica_id": c1.replica_id,
        "challenges": c1.partitions.iter().map(|p| p.iter().map(|c| c.challenge).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "proof": hex::encode(proof),
        "verified": verified,
        "phases": phases.json(),
    })
}

fn finish_proof(
    c1: &C1Output,
    proof: &[u8],
    verified: bool,
    phases: &Phases,
    json: bool,
    out: Option<&Path>,
) -> Result<()> {
    if let Some(path) = out {
        std::fs::write(path, proof).with_context(|| format!("write {}", path.display()))?;
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&proof_json(c1, proof, verified, phases))?);
    } else {
        outln!("comm_r    {}", c1.comm_r);
        outln!("proof     {}", hex::encode(proof));
        outln!("verified  {verified}");
        phases.print_table();
    }
    if !verified {
        bail!("the proof does not verify");
    }
    Ok(())
}

fn commit(args: CommitArgs) -> Result<()> {
    let seed = Randomness::from_hex(&args.seed).context("--seed")?;
    let mut phases = Phases::default();
    let (c1, proof, verified) = commit_phases(
        &args.dir,
        &seed,
        &args.param_dir,
        args.c1_out.as_deref(),
        args.c1_reference_json.as_deref(),
        &mut phases,
    )?;
    finish_proof(&c1, &proof, verified, &phases, args.json, args.proof_out.as_deref())
}

fn c2(args: C2Args) -> Result<()> {
    let mut phases = Phases::default();
    let c1 = phases.time("read_c1", || Ok(C1Output::read(&args.c1)?))?;
    let (proof, verified) = prove_and_verify(&c1, &args.param_dir, &mut phases)?;
    finish_proof(&c1, &proof, verified, &phases, args.json, args.proof_out.as_deref())
}

fn verify(args: VerifyArgs) -> Result<()> {
    let (identity, ticket) = args.sector.parse()?;
    let sector_size = identity.sector_size;
    let statement = SealStatement {
        sector_size,
        prover_id: identity.prover_id,
        sector_id: identity.sector_id,
        ticket,
        seed: Randomness::from_hex(&args.seed).context("--seed")?,
        comm_d: Commitment::from_hex(&args.comm_d).context("--comm-d")?,
        comm_r: Commitment::from_hex(&args.comm_r).context("--comm-r")?,
    };
    let proof = match (&args.proof, &args.proof_file) {
        (Some(hex), _) => hex::decode(hex.trim()).context("--proof is not hex")?,
        (None, Some(path)) => std::fs::read(path).with_context(|| format!("read {}", path.display()))?,
        (None, None) => bail!("give --proof or --proof-file"),
    };
    let vk = param_store(&args.param_dir, sector_size).seal_verifying_key()?;
    let verified = snark::verify_seal(&statement, &proof, &vk)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&json!({ "verified": verified }))?);
    } else {
        outln!("verified  {verified}");
    }
    if !verified {
        bail!("the proof does not verify");
    }
    Ok(())
}

fn all(args: AllArgs) -> Result<()> {
    let seed = Randomness::from_hex(&args.seed).context("--seed")?;
    let mut phases = Phases::default();
    let pre = pre_commit(&args.pre_commit, &mut phases)?;
    let (c1, proof, verified) =
        commit_phases(&args.pre_commit.dir, &seed, &args.param_dir, None, None, &mut phases)?;
    if args.pre_commit.json {
        let mut out = proof_json(&c1, &proof, verified, &phases);
        for key in ["comm_c", "comm_r_last", "pieces"] {
            out[key] = pre[key].clone();
        }
        outln!("{}", serde_json::to_string_pretty(&out)?);
        if !verified {
            bail!("the proof does not verify");
        }
        return Ok(());
    }
    print_pre_commit(&pre, false)?;
    finish_proof(&c1, &proof, verified, &phases, false, None)
}

pub fn unseal(args: UnsealArgs) -> Result<()> {
    let dir = SectorDir::new(&args.dir);
    let meta = dir.open()?;
    let capacity = meta.identity.sector_size.shape().unpadded_bytes();
    let len = args.len.unwrap_or(capacity.saturating_sub(args.offset));
    let cancel = AtomicBool::new(false);
    let mut reporter = Reporter::new();
    let parent_cache = args.parent_cache.clone().unwrap_or_else(sealing::dirs::parent_cache_dir);
    let t = Instant::now();
    let report = unseal::unseal_range(&dir, args.offset, len, &args.out, &parent_cache, &cancel, &mut |p| {
        reporter.report(p)
    })?;
    reporter.finish();
    outln!(
        "unsealed {} bytes at offset {} into {} in {:.3} s (comm_d checked{})",
        report.bytes,
        args.offset,
        args.out.display(),
        t.elapsed().as_secs_f64(),
        if report.regenerated_layers { ", layers regenerated" } else { "" }
    );
    Ok(())
}
