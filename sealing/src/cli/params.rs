//! `kiln params`: generate a test setup, check a parameter directory.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use proofs::snark::params::{verify_dir, GrothParams, SetupSeed};
use proofs::SectorSize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum ParamsCommand {
    /// Generate Groth16 TEST setups for a sector size: PoRep, Winning PoSt and
    /// Window PoSt (insecure: for tests and devnets only).
    Generate {
        /// 2KiB, 8MiB or 512MiB.
        #[arg(long)]
        sector_size: String,
        /// Seed of the setup's randomness (64 hex characters) [default: kiln's fixed test seed].
        #[arg(long, conflicts_with = "reference_seed")]
        seed: Option<String>,
        /// Draw the setup as the reference draws its test parameters (its RNG and
        /// TEST_SEED): the files then equal the reference's, byte for byte.
        #[arg(long)]
        reference_seed: bool,
        /// Parameter directory [default: $XDG_CACHE_HOME/kiln/params].
        #[arg(long)]
        param_dir: Option<PathBuf>,
        /// Circuits to set up, comma-separated: porep, winning, window.
        #[arg(long, value_delimiter = ',', default_value = "porep,winning,window")]
        circuits: Vec<String>,
    },
    /// Check every parameter file in the directory against its manifest digest.
    Verify {
        /// Also report the PoRep and PoSt files of these sizes as missing if absent.
        #[arg(long = "sector-size")]
        sizes: Vec<String>,
        /// Parameter directory [default: $XDG_CACHE_HOME/kiln/params].
        #[arg(long)]
        param_dir: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ParamsCommand) -> Result<()> {
    match cmd {
        ParamsCommand::Generate { sector_size, seed, reference_seed, param_dir, circuits } => {
            for c in &circuits {
                if !["porep", "winning", "window"].contains(&c.as_str()) {
                    bail!("unknown circuit {c:?}: expected some of porep, winning, window");
                }
            }
            let size = SectorSize::parse(&sector_size)?;
            if matches!(size, SectorSize::GiB32 | SectorSize::GiB64) {
                bail!("a {size} setup is far beyond one machine's means; install the published parameters instead");
            }
            let seed = match (seed, reference_seed) {
                (_, true) => SetupSeed::Reference,
                (Some(hex), false) => SetupSeed::ChaCha20(proofs::ids::parse_hex32(&hex, "seed")?),
                (None, false) => SetupSeed::KILN,
            };
            let dir = param_dir.unwrap_or_else(sealing::dirs::param_dir);
            eprintln!("WARNING: this is a TEST setup. Anyone who knows its seed can forge proofs; never use it on mainnet.");
            let wanted = |p: &GrothParams| circuits.iter().any(|c| c.eq_ignore_ascii_case(p.kind().name()));
            for params in GrothParams::all(&dir, size).into_iter().filter(wanted) {
                let t = Instant::now();
                params
                    .generate_test_setup(seed)
                    .with_context(|| format!("generate the {} parameters", params.kind().name()))?;
                outln!("{}", params.kind().name());
                outln!("  params   {}", params.params_path().display());
                outln!("  vk       {}", params.vk_path().display());
                outln!("  seconds  {:.1}", t.elapsed().as_secs_f64());
            }
            Ok(())
        }
        ParamsCommand::Verify { sizes, param_dir, json } => {
            let dir = param_dir.unwrap_or_else(sealing::dirs::param_dir);
            let sizes = sizes.iter().map(|s| SectorSize::parse(s)).collect::<Result<Vec<_>, _>>()?;
            let checks = verify_dir(&dir, &sizes)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&checks)?);
            } else {
                outln!("{}", dir.display());
                for c in &checks {
                    outln!("  {:<9} {} {}", c.status, c.name, c.detail.as_deref().unwrap_or(""));
                }
            }
            let bad = checks.iter().filter(|c| c.status != "ok").count();
            if bad > 0 {
                bail!("{bad} parameter file(s) failed the check");
            }
            Ok(())
        }
    }
}
