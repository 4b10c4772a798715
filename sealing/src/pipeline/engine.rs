//! The proof engine: the seal phases as the pipeline sees them, behind a
//! trait so the driver can be tested with a fast double. C1 and C2 are apart
//! so that C2 can run on a remote worker (which calls the proof core itself).

use proofs::sdr::label_par::LabelingConfig;
use proofs::sdr::layers::Progress;
use proofs::seal::{c1, finalize, pc1, pc2, SectorDir, SectorIdentity};
use proofs::snark::params::GrothParams;
use proofs::{Commitment, Disposition, Randomness};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A failed seal phase.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The proof core failed.
    #[error(transparent)]
    Proofs(#[from] proofs::Error),
    /// A failure known by its text and disposition (one shared by a batch, a
    /// panicked task, a test double).
    #[error("{message}")]
    Failed {
        /// What went wrong.
        message: String,
        /// How the driver handles it.
        disposition: Disposition,
    },
}

impl EngineError {
    /// A failure with this text and disposition.
    pub fn failed(message: impl Into<String>, disposition: Disposition) -> Self {
        Self::Failed { message: message.into(), disposition }
    }

    /// How the driver handles it (see [`Disposition`]).
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Proofs(e) => e.disposition(),
            Self::Failed { disposition, .. } => *disposition,
        }
    }
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
    /// Their comm_p as recorded when they were added, in order.
    pub comm_p: Vec<proofs::Commitment>,
}

/// The commitments a PreCommit message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreCommitOutput {
    /// The data commitment.
    pub comm_d: Commitment,
    /// The replica commitment.
    pub comm_r: Commitment,
}

/// One sector of a pre-commit batch.
#[derive(Clone, Debug)]
pub struct BatchMember {
    /// The sector's directory.
    pub dir: SectorDir,
    /// What pre-committing it needs.
    pub task: PreCommitTask,
    /// Set when this sector alone is cancelled (removed): it is dropped once the
    /// batch's labeling ends, and the others go on.
    pub cancel: Arc<AtomicBool>,
}

/// Runs the seal phases of one sector directory.
pub trait ProofEngine: Send + Sync {
    /// PC1: labels the layers. Must be safe to re-run on a directory a crash
    /// interrupted or whose PC2 failed (the layers it finished are kept).
    fn pc1(
        &self,
        dir: &SectorDir,
        task: &PreCommitTask,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), EngineError>;

    /// PC1 for several sectors of one size together; `done` gets each
    /// sector's outcome (by index) as soon as it is known. `cancel` stops the
    /// whole batch (set when every member is cancelled). By default the
    /// sectors are labeled one after another.
    fn pc1_batch(
        &self,
        members: &[BatchMember],
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
        done: &mut dyn FnMut(usize, Result<(), EngineError>),
    ) {
        for (i, m) in members.iter().enumerate() {
            if cancel.load(Ordering::Relaxed) || m.cancel.load(Ordering::Relaxed) {
                done(i, Err(proofs::Error::Cancelled.into()));
                continue;
            }
            done(i, self.pc1(&m.dir, &m.task, &m.cancel, progress));
        }
    }

    /// PC2: the trees and the replica from the layers PC1 left; comm_d and comm_r.
    fn pc2(
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

impl LocalEngine {
    fn pc1_request(&self, task: &PreCommitTask) -> pc1::Pc1Request {
        pc1::Pc1Request {
            identity: task.identity,
            ticket: task.ticket,
            pieces: task.pieces.clone(),
            parent_cache_dir: self.parent_cache_dir.clone(),
            labeling: self.labeling,
            expected_comm_p: task.comm_p.clone(),
        }
    }
}

fn log_resumed(r1: &pc1::Pc1Report) {
    if !r1.labeling.reused.is_empty() {
        tracing::info!(kept = ?r1.labeling.reused, labeled = ?r1.labeling.labeled, "PC1 resumed: finished layers kept");
    }
}

impl ProofEngine for LocalEngine {
    fn pc1(
        &self,
        dir: &SectorDir,
        task: &PreCommitTask,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), EngineError> {
        let r1 = pc1::run(dir, &self.pc1_request(task), cancel, progress)?;
        log_resumed(&r1);
        Ok(())
    }

    fn pc1_batch(
        &self,
        members: &[BatchMember],
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
        done: &mut dyn FnMut(usize, Result<(), EngineError>),
    ) {
        let requests: Vec<(SectorDir, pc1::Pc1Request)> =
            members.iter().map(|m| (m.dir.clone(), self.pc1_request(&m.task))).collect();
        let labeled = match pc1::run_batch(&requests, cancel, progress) {
            Ok(results) => results,
            Err(e) => {
                // The whole batch failed (cancelled, or its parent cache): every member says so.
                let cancelled = matches!(e, proofs::Error::Cancelled);
                let (text, disposition) = (e.to_string(), e.disposition());
                for i in 0..members.len() {
                    done(
                        i,
                        Err(if cancelled {
                            proofs::Error::Cancelled.into()
                        } else {
                            EngineError::failed(text.clone(), disposition)
                        }),
                    );
                }
                return;
            }
        };
        for (i, (m, r1)) in members.iter().zip(labeled).enumerate() {
            let _span = tracing::info_span!("sector", sector_id = m.task.identity.sector_id).entered();
            done(i, r1.map(|r1| log_resumed(&r1)).map_err(EngineError::from));
        }
    }

    fn pc2(
        &self,
        dir: &SectorDir,
        _: &PreCommitTask,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PreCommitOutput, EngineError> {
        let r2 = pc2::run(dir, cancel, progress)?;
        let comm_d = dir.open()?.pc1.map(|pc1| pc1.comm_d).ok_or_else(|| {
            EngineError::failed("PC2 finished without PC1's record", Disposition::Temporary)
        })?;
        Ok(PreCommitOutput { comm_d, comm_r: r2.output.comm_r })
    }

    fn c1(&self, dir: &SectorDir, seed: &Randomness) -> Result<Vec<u8>, EngineError> {
        Ok(c1::run(dir, seed)?.to_binary())
    }

    fn c2(&self, c1: &[u8]) -> Result<Vec<u8>, EngineError> {
        let c1 = c1::C1Output::decode(c1)?;
        let params = GrothParams::porep(&self.param_dir, c1.identity.sector_size);
        let proving = params.load_proving()?;
        Ok(proofs::snark::prove(&c1, &proving)?)
    }

    fn finalize(&self, dir: &SectorDir, keep_unsealed: bool) -> Result<(), EngineError> {
        finalize::finalize(dir, keep_unsealed)?;
        Ok(())
    }
}
