//! The proof engine: the seal phases as the pipeline sees them, behind a
//! trait so the driver can be tested with a fast double. C1 and C2 are apart
//! so that C2 can run on a remote worker (`kiln-worker` uses [`LocalEngine::c2`]).

use proofs::sdr::label_par::LabelingConfig;
use proofs::sdr::layers::Progress;
use proofs::seal::{c1, finalize, pc1, pc2, SectorDir, SectorIdentity};
use proofs::snark::params::PorepParams;
use proofs::{Commitment, Randomness};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// A failed seal phase.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The proof core failed.
    #[error(transparent)]
    Proofs(#[from] proofs::Error),
    /// Any other failure (remote workers, test doubles).
    #[error("{0}")]
    Other(String),
}

/// What pre-committing a sector needs.
#[derive(Clone, Debug)]
pub struct PreCommitTask {
    /// The sector.
    pub identity: SectorIdentity,
    /// The seal ticket.
    pub ticket: Randomness,
    /// Data piece files, in order; none for committed capacity.
    pub pieces: Vec<PathBuf>,
}

/// The commitments a PreCommit message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreCommitOutput {
    /// The data commitment.
    pub comm_d: Commitment,
    /// The replica commitment.
    pub comm_r: Commitment,
}

/// Runs the seal phases of one sector directory.
pub trait ProofEngine: Send + Sync {
    /// PC1 then PC2. Must be safe to re-run on a directory a crash interrupted.
    fn pre_commit(
        &self,
        dir: &SectorDir,
        task: &PreCommitTask,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PreCommitOutput, EngineError>;

    /// C1: the sector's vanilla proofs for `seed`, in the binary C1 form (what
    /// C2 needs, locally or on a remote worker).
    fn c1(&self, dir: &SectorDir, seed: &Randomness) -> Result<Vec<u8>, EngineError>;

    /// C2: the Groth16 proof bytes of a binary C1 output.
    fn c2(&self, c1: &[u8]) -> Result<Vec<u8>, EngineError>;

    /// Removes what only sealing needed.
    fn finalize(&self, dir: &SectorDir, keep_unsealed: bool) -> Result<(), EngineError>;
}

/// Runs every phase in this process with the proof core.
#[derive(Clone, Debug)]
pub struct LocalEngine {
    /// Groth16 parameters.
    pub param_dir: PathBuf,
    /// SDR parent caches.
    pub parent_cache_dir: PathBuf,
    /// Labeler tuning.
    pub labeling: LabelingConfig,
}

impl ProofEngine for LocalEngine {
    fn pre_commit(
        &self,
        dir: &SectorDir,
        task: &PreCommitTask,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PreCommitOutput, EngineError> {
        let req = pc1::Pc1Request {
            identity: task.identity,
            ticket: task.ticket,
            pieces: task.pieces.clone(),
            parent_cache_dir: self.parent_cache_dir.clone(),
            labeling: self.labeling,
        };
        let r1 = pc1::run(dir, &req, cancel, progress)?;
        if !r1.labeling.reused.is_empty() {
            tracing::info!(kept = ?r1.labeling.reused, labeled = ?r1.labeling.labeled, "PC1 resumed: finished layers kept");
        }
        let r2 = pc2::run(dir, cancel, progress)?;
        Ok(PreCommitOutput { comm_d: r1.output.comm_d, comm_r: r2.output.comm_r })
    }

    fn c1(&self, dir: &SectorDir, seed: &Randomness) -> Result<Vec<u8>, EngineError> {
        Ok(c1::run(dir, seed)?.to_binary())
    }

    fn c2(&self, c1: &[u8]) -> Result<Vec<u8>, EngineError> {
        let c1 = c1::C1Output::decode(c1)?;
        let params = PorepParams::new(&self.param_dir, c1.identity.sector_size);
        let proving = params.load_proving()?;
        Ok(proofs::snark::prove(&c1, &proving)?)
    }

    fn finalize(&self, dir: &SectorDir, keep_unsealed: bool) -> Result<(), EngineError> {
        finalize::finalize(dir, keep_unsealed)?;
        Ok(())
    }
}
