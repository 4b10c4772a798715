//! Proving: the daemon's Window and Winning PoSt, driven by the chain's
//! deadlines and elections.
//!
//! The prover runs on its own thread, beside the sealing driver, so a PoSt
//! never waits behind queued PC1 or C2 work; while one runs, the driver starts
//! no new local sealing task ([`ProvingGate`]). Each tick it
//!
//! 1. proves every partition of the open deadline window that has no pending
//!    or accepted SubmitWindowedPoSt on chain (so a restarted daemon proves
//!    again while the window is open, and never submits twice), leaving out
//!    sectors whose files fail and listing them as skipped;
//! 2. checks the sectors of the windows opening within
//!    `proving.check_ahead_epochs` and declares faults for unreadable ones and
//!    recoveries for faulty ones that read again (`kiln proving check`);
//! 3. answers won elections with a Winning PoSt.
//!
//! Every run is recorded with its timings ([`crate::store::PostRun`]).

use crate::chain::{DeadlineWindow, Message, ProvingSectorOnChain, RandomnessKind, SectorHealth};
use crate::config::ProvingConfig;
use crate::ledger::SharedLedger;
use crate::pipeline::PipelineConfig;
use crate::store::{PostRun, RunFault};
use proofs::post::challenges::{mask_randomness, winning_sector_index};
use proofs::post::vanilla::{self, ProvingSector, ReadLimits, Vanilla};
use proofs::post::{snark, PostProof};
use proofs::snark::params::GrothParams;
use proofs::Randomness;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, info_span, warn};
pub use wire::api::SectorCheck;

/// Tells the sealing driver that a PoSt is running: it starts no new local
/// task until the PoSt is done.
#[derive(Clone, Debug, Default)]
pub struct ProvingGate(Arc<AtomicUsize>);

impl ProvingGate {
    /// Whether a PoSt is running.
    pub fn busy(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }
    fn enter(&self) -> GateGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        GateGuard(self.0.clone())
    }
}

struct GateGuard(Arc<AtomicUsize>);

impl Drop for GateGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Errors of a proving tick (each is logged; the next tick tries again).
#[derive(Debug, thiserror::Error)]
pub enum ProvingError {
    /// The chain.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    /// The store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The proof core (parameters, SNARK).
    #[error(transparent)]
    Proofs(#[from] proofs::Error),
}

/// The daemon's prover.
pub struct Prover {
    ledger: SharedLedger,
    layout: PipelineConfig,
    param_dir: PathBuf,
    gate: ProvingGate,
    /// Windows (by open epoch) whose sectors were checked ahead.
    checked: HashSet<u64>,
    /// Failed attempts per (window open, partition): a rejected proof is
    /// retried a few times, not every tick.
    attempts: HashMap<(u64, u64), u32>,
    /// The next election epoch to look at.
    next_election: Option<u64>,
}

const MAX_ATTEMPTS: u32 = 3;

impl Prover {
    /// A prover of the sectors in `layout`'s data directory, with its
    /// proving settings.
    pub fn new(ledger: SharedLedger, layout: PipelineConfig, param_dir: PathBuf, gate: ProvingGate) -> Self {
        Self {
            ledger,
            layout,
            param_dir,
            gate,
            checked: HashSet::new(),
            attempts: HashMap::new(),
            next_election: None,
        }
    }

    /// Ticks every `interval` until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool, interval: Duration) {
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.tick() {
                warn!(error = %e, "proving tick failed");
            }
            let until = Instant::now() + interval;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20).min(interval));
            }
        }
    }

    fn limits(&self) -> ReadLimits {
        read_limits(&self.layout.proving)
    }

    fn proving_sector(&self, s: &ProvingSectorOnChain) -> ProvingSector {
        ProvingSector::in_dir(s.sector, s.comm_r, &self.layout.sector_dir(s.sector))
    }

    /// One pass: the open window, the checks ahead, the elections.
    pub fn tick(&mut self) -> Result<(), ProvingError> {
        let chain = self.ledger.chain();
        let now = self.ledger.now_ms();
        let head = chain.head(now)?;
        let schedule = chain.proving_schedule();
        let sectors = chain.proving_sectors(now)?;
        if sectors.is_empty() {
            self.next_election = Some(head + 1);
            return Ok(());
        }

        let window = schedule.current(head);
        let due = due_partitions(&sectors, &window);
        for (partition, members) in due {
            let key = (window.open, partition);
            if self.attempts.get(&key).copied().unwrap_or(0) >= MAX_ATTEMPTS {
                continue;
            }
            if chain.find_post_message(window.open, partition, now)?.is_some() {
                continue;
            }
            let ok = self.window_post(&window, partition, &members)?;
            if !ok {
                *self.attempts.entry(key).or_default() += 1;
            }
        }
        self.attempts.retain(|(open, _), _| *open + schedule.window > head);

        for n in 1..=schedule.deadlines {
            let upcoming = schedule.nth(head / schedule.window + n);
            if upcoming.open > head + self.layout.proving.check_ahead_epochs {
                break;
            }
            if self.checked.insert(upcoming.open) {
                self.check_ahead(&upcoming, &sectors)?;
            }
        }
        self.checked.retain(|&open| open > head);

        if self.layout.proving.winning {
            let from = self.next_election.unwrap_or(head.saturating_sub(schedule.winning_window) + 1);
            let from = from.max(head.saturating_sub(schedule.winning_window) + 1);
            for epoch in from..=head {
                if chain.won_election(epoch) {
                    let answered =
                        chain.elections(epoch, epoch, now)?.first().is_some_and(|e| e.sector.is_some());
                    if !answered {
                        self.winning_post(epoch, &sectors)?;
                    }
                }
            }
            self.next_election = Some(head + 1);
        }
        Ok(())
    }

    /// Proves one partition of the open window and sends the proof; false if
    /// nothing could be sent.
    fn window_post(
        &self,
        window: &DeadlineWindow,
        partition: u64,
        members: &[&ProvingSectorOnChain],
    ) -> Result<bool, ProvingError> {
        let _span =
            info_span!("window_post", deadline = window.deadline, open = window.open, partition).entered();
        let _gate = self.gate.enter();
        let chain = self.ledger.chain();
        let size = members[0].sector_size;
        let post = PostProof::window(size);
        let started_ms = self.ledger.now_ms();
        let randomness = chain.randomness(RandomnessKind::WindowPost, window.challenge, started_ms)?;
        let proving: Vec<ProvingSector> = members.iter().map(|s| self.proving_sector(s)).collect();
        let t = Instant::now();
        let van = vanilla::generate(&post, &randomness, &proving, self.limits())?;
        let vanilla_ms = t.elapsed().as_millis() as u64;
        let skipped: Vec<u64> = van.faults.iter().map(|f| f.sector_id).collect();
        let mut run = run_record("window", started_ms, vanilla_ms, &van);
        (run.deadline, run.open_epoch, run.partition) =
            (Some(window.deadline), Some(window.open), Some(partition));
        let t = Instant::now();
        let proof = if van.proofs.is_empty() { Ok(Vec::new()) } else { self.prove(&post, &van, &mut run) };
        run.snark_ms = t.elapsed().as_millis() as u64;
        let proof = match proof {
            Ok(p) => p,
            Err(e) => {
                run.error = Some(e.to_string());
                self.ledger.store().record_post_run(&run)?;
                return Err(e);
            }
        };
        crate::failpoints::crash_point!("wdpost:proved-unsent");
        let message = Message::SubmitWindowedPoSt {
            deadline: window.deadline,
            open_epoch: window.open,
            partition,
            skipped: skipped.clone(),
            proof,
        };
        let sent = chain.send(&message, self.ledger.now_ms());
        run.message = sent.as_ref().ok().map(|m| m.0);
        run.error = sent.as_ref().err().map(|e| e.to_string());
        self.ledger.store().record_post_run(&run)?;
        let id = sent?;
        info!(message = %id, proven = run.proven.len(), ?skipped, vanilla_ms, snark_ms = run.snark_ms, "Window PoSt sent");
        Ok(true)
    }

    fn prove(&self, post: &PostProof, van: &Vanilla, run: &mut PostRun) -> Result<Vec<u8>, ProvingError> {
        let params = GrothParams::post(&self.param_dir, *post).load_proving()?;
        let out = snark::prove(post, &van.proofs, &params)?;
        run.prover =
            if out.gpus.is_empty() { "local".into() } else { format!("local GPU {}", out.gpus.join(", ")) };
        Ok(out.bytes)
    }

    /// Checks the sectors of a window about to open; declares what changed.
    fn check_ahead(
        &self,
        window: &DeadlineWindow,
        sectors: &[ProvingSectorOnChain],
    ) -> Result<(), ProvingError> {
        let _span = info_span!("proving_check", deadline = window.deadline, open = window.open).entered();
        let members: Vec<&ProvingSectorOnChain> =
            sectors.iter().filter(|s| s.deadline == window.deadline).collect();
        if members.is_empty() {
            return Ok(());
        }
        let checks = check_sectors(&self.layout, &members)?;
        let newly_faulty: Vec<u64> = checks
            .iter()
            .filter(|c| c.fault.is_some() && c.health != SectorHealth::Faulty)
            .map(|c| c.sector)
            .collect();
        let recovered: Vec<u64> = checks
            .iter()
            .filter(|c| c.fault.is_none() && c.health == SectorHealth::Faulty)
            .map(|c| c.sector)
            .collect();
        let chain = self.ledger.chain();
        for (sectors, message) in [
            (&newly_faulty, Message::DeclareFaults { sectors: newly_faulty.clone() }),
            (&recovered, Message::DeclareFaultsRecovered { sectors: recovered.clone() }),
        ] {
            if !sectors.is_empty() {
                let id = chain.send(&message, self.ledger.now_ms())?;
                info!(message = %id, ?sectors, method = message.method(), "declared");
            }
        }
        Ok(())
    }

    /// Answers the election of `epoch`.
    fn winning_post(&self, epoch: u64, sectors: &[ProvingSectorOnChain]) -> Result<(), ProvingError> {
        let _span = info_span!("winning_post", epoch).entered();
        let _gate = self.gate.enter();
        let chain = self.ledger.chain();
        let eligible: Vec<&ProvingSectorOnChain> =
            sectors.iter().filter(|s| s.health == SectorHealth::Active && s.activation <= epoch).collect();
        if eligible.is_empty() {
            warn!("won an election with no eligible sector");
            return Ok(());
        }
        let started_ms = self.ledger.now_ms();
        let randomness = chain.randomness(RandomnessKind::WinningPost, epoch, started_ms)?;
        let prover_id = self.layout.prover_id;
        let index = winning_sector_index(&prover_id, &randomness, eligible.len() as u64)?;
        let chosen = eligible[index as usize];
        let post = PostProof::winning(chosen.sector_size);
        let t = Instant::now();
        let van = vanilla::generate(&post, &randomness, &[self.proving_sector(chosen)], self.limits())?;
        let mut run = run_record("winning", started_ms, t.elapsed().as_millis() as u64, &van);
        run.election = Some(epoch);
        if !van.faults.is_empty() {
            run.error = Some(format!("sector {} is faulty", chosen.sector));
            self.ledger.store().record_post_run(&run)?;
            warn!(sector = chosen.sector, reason = %van.faults[0].reason, "the chosen sector cannot be proven");
            return Ok(());
        }
        let t = Instant::now();
        let proof = self.prove(&post, &van, &mut run);
        run.snark_ms = t.elapsed().as_millis() as u64;
        let proof = match proof {
            Ok(p) => p,
            Err(e) => {
                run.error = Some(e.to_string());
                self.ledger.store().record_post_run(&run)?;
                return Err(e);
            }
        };
        let sent = chain
            .send(&Message::SubmitWinningPoSt { epoch, sector: chosen.sector, proof }, self.ledger.now_ms());
        run.message = sent.as_ref().ok().map(|m| m.0);
        run.error = sent.as_ref().err().map(|e| e.to_string());
        self.ledger.store().record_post_run(&run)?;
        let id = sent?;
        info!(message = %id, sector = chosen.sector, snark_ms = run.snark_ms, "Winning PoSt sent");
        Ok(())
    }
}

fn read_limits(config: &ProvingConfig) -> ReadLimits {
    ReadLimits { parallel: config.read_parallel, timeout: Duration::from_millis(config.sector_timeout_ms) }
}

/// Reads each sector's files at fresh random challenges (what a Window PoSt
/// reads): `kiln proving check`, and the check ahead of each window.
pub fn check_sectors(
    layout: &PipelineConfig,
    members: &[&ProvingSectorOnChain],
) -> Result<Vec<SectorCheck>, ProvingError> {
    let mut out = Vec::with_capacity(members.len());
    for s in members {
        let randomness = mask_randomness(&Randomness(rand::random()));
        let sector = ProvingSector::in_dir(s.sector, s.comm_r, &layout.sector_dir(s.sector));
        let t = Instant::now();
        let van = vanilla::generate(
            &PostProof::window(s.sector_size),
            &randomness,
            std::slice::from_ref(&sector),
            read_limits(&layout.proving),
        )?;
        out.push(SectorCheck {
            sector: s.sector,
            health: s.health,
            fault: van.faults.first().map(|f| f.reason.clone()),
            ms: t.elapsed().as_millis() as u64,
        });
    }
    out.sort_by_key(|c| c.sector);
    Ok(out)
}

/// The partitions of `window`'s deadline with sectors to prove in it.
fn due_partitions<'a>(
    sectors: &'a [ProvingSectorOnChain],
    window: &DeadlineWindow,
) -> BTreeMap<u64, Vec<&'a ProvingSectorOnChain>> {
    let mut out: BTreeMap<u64, Vec<&ProvingSectorOnChain>> = BTreeMap::new();
    for s in sectors {
        if s.deadline == window.deadline
            && s.activation <= window.challenge
            && s.health != SectorHealth::Faulty
        {
            out.entry(s.partition).or_default().push(s);
        }
    }
    out
}

fn run_record(kind: &str, started_ms: i64, vanilla_ms: u64, van: &Vanilla) -> PostRun {
    PostRun {
        id: 0,
        kind: kind.into(),
        deadline: None,
        open_epoch: None,
        partition: None,
        election: None,
        started_ms,
        vanilla_ms,
        snark_ms: 0,
        proven: van.proofs.iter().map(|p| p.sector_id).collect(),
        faults: van
            .faults
            .iter()
            .map(|f| RunFault { sector: f.sector_id, reason: f.reason.clone() })
            .collect(),
        prover: "local".into(),
        message: None,
        error: None,
    }
}
