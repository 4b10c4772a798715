//! `kiln bench`: seals in a scratch directory and reports, per phase, seconds,
//! peak resident memory and CPU use; for PC1 also how close labeling came to
//! the SHA-256 bound, measured on this machine at the start of the run.
//!
//! The bound: labeling a sector is `nodes × layers` labels of 20 compression
//! blocks each, and within a layer every label needs the previous one, so one
//! sector can never label faster than one core compresses a dependent chain of
//! blocks. That rate is measured here twice (the `sha2` crate over 20-block
//! messages, and kiln's own kernel) and the faster one is the bound.

use anyhow::{bail, Context, Result};
use clap::Args;
use proofs::post::challenges::mask_randomness;
use proofs::post::vanilla::{self, ProvingSector, ReadLimits};
use proofs::post::{PostKind, PostProof};
use proofs::sdr::graph::Graph;
use proofs::sdr::kernel::Kernel;
use proofs::sdr::label_par::LabelingConfig;
use proofs::sdr::parent_cache::ParentCache;
use proofs::seal::{c1, finalize, pc1, pc2, unseal, SectorDir, SectorIdentity};
use proofs::snark::params::GrothParams;
use proofs::snark::post as post_snark;
use proofs::snark::{self, SealStatement};
use proofs::{Commitment, ProverId, Randomness, SectorSize};
use sealing::memory;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The phases `kiln bench` knows, in the order they run.
const PHASES: [&str; 7] = ["pc1", "pc2", "c1", "c2", "wdpost", "wnpost", "unseal"];

#[derive(Args)]
pub struct BenchArgs {
    /// Sector size.
    #[arg(long, default_value = "8MiB")]
    sector_size: String,
    /// Phases to run and report, comma-separated (PC1 always runs; a phase another one
    /// needs runs anyway, unreported).
    #[arg(long, value_delimiter = ',', default_value = "pc1,pc2,c1,c2,wdpost,wnpost,unseal")]
    phases: Vec<String>,
    /// Sectors labeled together in PC1 (batch PC1); the later phases use the first.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Labeling threads (producers + the hashing thread for one sector; hashing threads
    /// for a batch) [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    /// Directory to seal in (a fresh temporary directory inside it) [default: the system's].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Parameter directory, for C2 [default: $XDG_CACHE_HOME/kiln/params].
    #[arg(long)]
    param_dir: Option<PathBuf>,
    /// Directory of SDR parent caches [default: $XDG_CACHE_HOME/kiln/parents].
    #[arg(long)]
    parent_cache: Option<PathBuf>,
    /// Where PC2 or C2 ran on a GPU, run it again on the CPU and require the
    /// same bytes: every tree file, and the proof (both drawn from one seed).
    #[arg(long)]
    compare_cpu: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// SHA-256 of each tree file (`sc-02-data-tree-*`) in `dir`, by name.
fn tree_digests(dir: &std::path::Path) -> Result<Vec<(String, String)>> {
    use sha2::Digest;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("sc-02-data-tree-") {
            let mut hasher = sha2::Sha256::new();
            let mut file = std::fs::File::open(dir.join(&name)).with_context(|| format!("open {name}"))?;
            std::io::copy(&mut file, &mut hasher).with_context(|| format!("read {name}"))?;
            out.push((name, hex::encode(hasher.finalize())));
        }
    }
    out.sort();
    Ok(out)
}

/// The same randomness for every C2 of a run, so GPU and CPU proofs compare.
fn proof_rng() -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(0x6b696c6e)
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer we give it, and
    // RUSAGE_SELF is always valid.
    #[allow(unsafe_code)]
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return 0.0;
        }
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// One measured phase.
struct Measured {
    name: &'static str,
    seconds: f64,
    cpu_seconds: f64,
    peak_rss: Option<u64>,
    extra: Value,
}

fn measure<T>(name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<(T, Measured)> {
    memory::reset_peak();
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let out = f().with_context(|| format!("phase {name}"))?;
    let m = Measured {
        name,
        seconds: t.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds() - cpu,
        peak_rss: memory::peak_bytes(),
        extra: json!({}),
    };
    Ok((out, m))
}

/// Blocks per second of one dependent chain of SHA-256 compressions: `sha2` over
/// 20-block messages (what a label is), and kiln's kernel labeling one stream.
fn sha_bound() -> (f64, f64) {
    let min = Duration::from_millis(400);
    // sha2 0.10's block type is generic-array 0.14's.
    #[allow(deprecated)]
    let blocks: [sha2::digest::generic_array::GenericArray<u8, sha2::digest::consts::U64>; 20] =
        Default::default();
    let mut state = proofs::sdr::kernel::IV;
    let (start, mut done) = (Instant::now(), 0u64);
    while start.elapsed() < min {
        for _ in 0..256 {
            sha2::compress256(&mut state, &blocks);
        }
        done += 256 * 20;
    }
    std::hint::black_box(state);
    let sha2_rate = done as f64 / start.elapsed().as_secs_f64();
    let kernel_rate = Kernel::detect().measure_label_blocks_per_second::<1>(min);
    (sha2_rate, kernel_rate)
}

/// A Window PoSt of one partition (as many of the sealed sectors as one
/// SNARK takes) or a Winning PoSt, timed as vanilla proofs then SNARK, and
/// verified.
fn post_phase(
    phase: &'static str,
    kind: PostKind,
    sectors: &[(SectorDir, pc1::Pc1Request)],
    args: &BenchArgs,
) -> Result<Measured> {
    let size = sectors[0].1.identity.sector_size;
    let proof = PostProof::of(kind, size);
    let params = GrothParams::post(args.param_dir.clone().unwrap_or_else(sealing::dirs::param_dir), proof);
    let key = params.load_proving().with_context(|| {
        format!("no usable {proof} parameters: run `kiln params generate --sector-size {size}`")
    })?;
    let randomness = mask_randomness(&Randomness([0x5a; 32]));
    let take = if kind == PostKind::Winning { 1 } else { proof.sectors_per_partition() };
    let proving = sectors
        .iter()
        .take(take)
        .map(|(dir, req)| {
            let comm_r = dir.open()?.pc2.context("the sector has no PC2")?.comm_r;
            Ok(ProvingSector::in_dir(req.identity.sector_id, comm_r, dir))
        })
        .collect::<Result<Vec<_>>>()?;
    let (out, mut m) = measure(phase, || {
        let t = Instant::now();
        let van = vanilla::generate(&proof, &randomness, &proving, ReadLimits::default())?;
        if !van.faults.is_empty() {
            bail!("faulty sectors: {:?}", van.faults);
        }
        let vanilla_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let snark = post_snark::prove(&proof, &van.proofs, &key)?;
        Ok((van, vanilla_seconds, t.elapsed().as_secs_f64(), snark))
    })?;
    let (van, vanilla_seconds, snark_seconds, snark) = out;
    let public: Vec<(u64, Commitment)> = van.proofs.iter().map(|p| (p.sector_id, p.comm_r)).collect();
    if !post_snark::verify(&proof, &randomness, &public, &snark.bytes, &params.load_verifying_key()?)? {
        bail!("the benchmark's {proof} does not verify");
    }
    m.extra = json!({
        "sectors": public.len(),
        "vanilla_seconds": vanilla_seconds,
        "snark_seconds": snark_seconds,
        "on": if snark.gpus.is_empty() { "CPU".to_string() } else { snark.gpus.join(", ") },
    });
    Ok(m)
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let size = SectorSize::parse(&args.sector_size)?;
    for p in &args.phases {
        if !PHASES.contains(&p.as_str()) {
            bail!("unknown phase {p:?}: expected some of {}", PHASES.join(","));
        }
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let want = |p: &str| args.phases.iter().any(|w| w == p);
    // A phase runs when it is wanted or a wanted phase needs its output.
    let runs = |p: &str| match p {
        "pc2" => ["pc2", "c1", "c2", "wdpost", "wnpost", "unseal"].iter().any(|q| want(q)),
        "c1" => want("c1") || want("c2"),
        _ => want(p),
    };
    let shape = size.shape();
    let kernel = Kernel::detect();

    let (sha2_rate, kernel_rate) = sha_bound();
    let bound_rate = sha2_rate.max(kernel_rate);
    let streams = [2usize, 4].map(|n| match n {
        2 => kernel.measure_label_blocks_per_second::<2>(Duration::from_millis(300)),
        _ => kernel.measure_label_blocks_per_second::<4>(Duration::from_millis(300)),
    });

    let scratch = match &args.dir {
        Some(d) => tempfile::Builder::new().prefix("kiln-bench-").tempdir_in(d),
        None => tempfile::Builder::new().prefix("kiln-bench-").tempdir(),
    }
    .context("create the scratch directory")?;
    let parent_cache_dir = args.parent_cache.clone().unwrap_or_else(sealing::dirs::parent_cache_dir);
    let t = Instant::now();
    ParentCache::open_or_build(&parent_cache_dir, &Graph::new(shape.num_nodes, shape.porep_id))?;
    let parent_cache_seconds = t.elapsed().as_secs_f64();

    let mut labeling = LabelingConfig::default();
    if let Some(t) = args.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        labeling.producers = t - 1;
        labeling.batch_threads = t;
    }
    let prover_id = ProverId::from_actor_id(1000);
    let ticket = Randomness([7; 32]);
    let sectors: Vec<(SectorDir, pc1::Pc1Request)> = (0..args.batch as u64)
        .map(|i| {
            let req = pc1::Pc1Request {
                identity: SectorIdentity { sector_size: size, prover_id, sector_id: i + 1 },
                ticket,
                pieces: vec![],
                parent_cache_dir: parent_cache_dir.clone(),
                labeling,
                expected_comm_p: Vec::new(),
            };
            (SectorDir::new(scratch.path().join((i + 1).to_string())), req)
        })
        .collect();
    let cancel = AtomicBool::new(false);
    let mut measured: Vec<Measured> = Vec::new();

    // PC1, one sector or the batch.
    let (pc1_reports, mut m) = measure("pc1", || Ok(pc1::run_batch(&sectors, &cancel, &mut |_| {})?))?;
    let pc1_reports = pc1_reports.into_iter().collect::<Result<Vec<_>, _>>()?;
    let bound_seconds = (shape.num_nodes * shape.layers as u64 * 20) as f64 / bound_rate;
    let labeling_seconds = pc1_reports[0].labeling_time.as_secs_f64();
    m.extra = json!({
        "sectors": args.batch,
        "staging_seconds": pc1_reports.iter().map(|r| r.staging.as_secs_f64()).sum::<f64>(),
        "tree_d_seconds": pc1_reports.iter().map(|r| r.tree_d.as_secs_f64()).sum::<f64>(),
        "labeling_seconds": labeling_seconds,
        "sha_bound_seconds_per_sector": bound_seconds,
        "percent_of_sha_bound": 100.0 * bound_seconds * args.batch as f64 / m.seconds,
        "labeling_percent_of_sha_bound": 100.0 * bound_seconds * args.batch as f64 / labeling_seconds,
        "sectors_per_hour": 3600.0 * args.batch as f64 / m.seconds,
        "peak_rss_per_sector": m.peak_rss.map(|b| b / args.batch as u64),
    });
    measured.push(m);

    let first = &sectors[0].0;
    if runs("pc2") {
        let (reports, mut m) = measure("pc2", || {
            sectors
                .iter()
                .map(|(dir, _)| Ok(pc2::run(dir, &cancel, &mut |_| {})?))
                .collect::<Result<Vec<_>>>()
        })?;
        let first_report = &reports[0];
        m.extra = json!({
            "sectors": args.batch,
            "on": first_report.gpu.clone().unwrap_or_else(|| "CPU".into()),
            "tree_c_seconds": first_report.tree_c.as_secs_f64(),
            "tree_r_last_seconds": first_report.tree_r_last.as_secs_f64(),
        });
        measured.push(m);
        if args.compare_cpu && first_report.gpu.is_some() {
            let on_gpu = tree_digests(&first.cache_dir())?;
            proofs::gpu::set_enabled(false);
            let cpu = measure("pc2_cpu", || Ok(pc2::run(first, &cancel, &mut |_| {})?));
            proofs::gpu::set_enabled(true);
            let (cpu_report, mut m) = cpu?;
            let on_cpu = tree_digests(&first.cache_dir())?;
            if on_cpu != on_gpu || cpu_report.output != first_report.output {
                bail!(
                    "PC2 on the GPU and on the CPU differ: GPU {on_gpu:?} {:?}, CPU {on_cpu:?} {:?}",
                    first_report.output,
                    cpu_report.output
                );
            }
            m.extra = json!({
                "on": "CPU",
                "tree_files_equal_to_gpu": on_cpu.len(),
                "tree_c_seconds": cpu_report.tree_c.as_secs_f64(),
                "tree_r_last_seconds": cpu_report.tree_r_last.as_secs_f64(),
            });
            measured.push(m);
        }
    }
    let seed = Randomness([9; 32]);
    let c1_out = if runs("c1") {
        let (c1, m) = measure("c1", || Ok(c1::run(first, &seed)?))?;
        measured.push(m);
        Some(c1)
    } else {
        None
    };
    if let (true, Some(c1)) = (runs("c2"), &c1_out) {
        let params =
            GrothParams::porep(args.param_dir.clone().unwrap_or_else(sealing::dirs::param_dir), size);
        let (mapped, m) = measure("params", || {
            params.load_proving().with_context(|| {
                format!("no usable Groth16 parameters for {size}: run `kiln params generate --sector-size {size}`")
            })
        })?;
        measured.push(m);
        let (proof, mut m) = measure("c2", || Ok(snark::prove_with_rng(c1, &mapped, &mut proof_rng())?))?;
        let on = |p: &snark::C2Proof| if p.gpus.is_empty() { "CPU".to_string() } else { p.gpus.join(", ") };
        m.extra = json!({ "on": on(&proof) });
        measured.push(m);
        let vk = params.seal_verifying_key()?;
        if !snark::verify_seal(&SealStatement::of(c1), &proof.bytes, &vk)? {
            bail!("the benchmark's proof does not verify");
        }
        if args.compare_cpu && !proof.gpus.is_empty() {
            proofs::gpu::set_enabled(false);
            let cpu = measure("c2_cpu", || Ok(snark::prove_with_rng(c1, &mapped, &mut proof_rng())?));
            proofs::gpu::set_enabled(true);
            let (cpu_proof, mut m) = cpu?;
            if cpu_proof.bytes != proof.bytes {
                bail!("C2 on the GPU and on the CPU give different proofs from the same randomness");
            }
            m.extra = json!({ "on": on(&cpu_proof), "proof_equal_to_gpu": true });
            measured.push(m);
        }
        drop(mapped);
    }
    for (phase, kind) in [("wdpost", PostKind::Window), ("wnpost", PostKind::Winning)] {
        if runs(phase) {
            measured.push(post_phase(phase, kind, &sectors, &args)?);
        }
    }
    if runs("unseal") {
        finalize::finalize(first, true)?;
        let out = scratch.path().join("unsealed-copy");
        let (report, mut m) = measure("unseal", || {
            Ok(unseal::unseal_range(
                first,
                0,
                shape.unpadded_bytes(),
                &out,
                &parent_cache_dir,
                &cancel,
                &mut |_| {},
            )?)
        })?;
        m.extra = json!({ "after_finalize": true, "scratch": format!("{:?}", report.scratch) });
        measured.push(m);
    }
    measured.retain(|m| want(m.name.trim_end_matches("_cpu")) || (m.name == "params" && want("c2")));

    let phases: Vec<Value> = measured
        .iter()
        .map(|m| {
            let mut v = json!({
                "phase": m.name,
                "seconds": m.seconds,
                "peak_rss_bytes": m.peak_rss,
                "cpu_seconds": m.cpu_seconds,
                "cores_busy": m.cpu_seconds / m.seconds,
            });
            if let (Some(v), Some(extra)) = (v.as_object_mut(), m.extra.as_object()) {
                v.extend(extra.clone());
            }
            v
        })
        .collect();
    let out = json!({
        "sector_size": size,
        "batch": args.batch,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "kernel": kernel.backend(),
        "sha_bound": {
            "blocks_per_second": bound_rate,
            "sha2_20_block_chain": sha2_rate,
            "kiln_kernel_one_stream": kernel_rate,
            "kiln_kernel_two_streams": streams[0],
            "kiln_kernel_four_streams": streams[1],
        },
        "parent_cache_seconds": parent_cache_seconds,
        "phases": phases,
    });
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    outln!(
        "{size}, batch {}, {} cores, {} kernel; SHA bound {:.1} M blocks/s one stream (sha2 {:.1}, kiln {:.1}; kiln 2 streams {:.1}, 4 streams {:.1})",
        args.batch,
        out["cores"],
        kernel.backend(),
        bound_rate / 1e6,
        sha2_rate / 1e6,
        kernel_rate / 1e6,
        streams[0] / 1e6,
        streams[1] / 1e6
    );
    outln!("{:<8} {:>10} {:>10} {:>6}  notes", "phase", "seconds", "peak MiB", "cores");
    for m in &measured {
        let mib = m.peak_rss.map_or("-".to_string(), |b| format!("{:.0}", b as f64 / (1 << 20) as f64));
        let notes = match m.name {
            "pc1" => format!(
                "{:.0}% of the SHA bound ({:.2} s a sector); labeling {:.0}%; {:.0} sectors/hour",
                m.extra["percent_of_sha_bound"].as_f64().unwrap_or(0.0),
                bound_seconds,
                m.extra["labeling_percent_of_sha_bound"].as_f64().unwrap_or(0.0),
                m.extra["sectors_per_hour"].as_f64().unwrap_or(0.0)
            ),
            "unseal" => "full sector, after finalize".to_string(),
            "pc2" | "pc2_cpu" => format!(
                "on {}; tree_c {:.3} s, tree_r_last {:.3} s{}",
                m.extra["on"].as_str().unwrap_or("?"),
                m.extra["tree_c_seconds"].as_f64().unwrap_or(0.0),
                m.extra["tree_r_last_seconds"].as_f64().unwrap_or(0.0),
                if m.extra.get("tree_files_equal_to_gpu").is_some() { "; trees equal the GPU's" } else { "" }
            ),
            "wdpost" | "wnpost" => format!(
                "{} sector(s) in one SNARK: vanilla {:.3} s, SNARK {:.3} s on {}; verified",
                m.extra["sectors"],
                m.extra["vanilla_seconds"].as_f64().unwrap_or(0.0),
                m.extra["snark_seconds"].as_f64().unwrap_or(0.0),
                m.extra["on"].as_str().unwrap_or("?")
            ),
            "c2" | "c2_cpu" => format!(
                "on {}{}",
                m.extra["on"].as_str().unwrap_or("?"),
                if m.extra.get("proof_equal_to_gpu").is_some() { "; proof equals the GPU's" } else { "" }
            ),
            _ => String::new(),
        };
        outln!("{:<8} {:>10.3} {:>10} {:>6.2}  {notes}", m.name, m.seconds, mib, m.cpu_seconds / m.seconds);
    }
    Ok(())
}
