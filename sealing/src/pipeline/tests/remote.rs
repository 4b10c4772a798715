//! The scheduler's side of remote workers, with the test playing the worker.
use super::*;
use crate::store::{TaskKind, TaskOutput, TaskRow, TaskState};
use crate::workers::dispatch::{DispatchError, Dispatcher};
use wire::worker::{self as protocol, Capabilities, ParamFile, RemoteTask, TaskEnvelope};

const TOKEN: &str = "kiln-worker-test";

/// Takes every task and remembers it (or refuses all when `refuse`).
#[derive(Default)]
struct FakeDispatcher {
    sent: Mutex<Vec<u64>>,
    refuse: AtomicBool,
    /// Tasks the daemon told the worker to drop.
    cancelled: Mutex<Vec<u64>>,
}

impl Dispatcher for FakeDispatcher {
    fn cancel(&self, _: &str, key: &str, task: u64) -> Result<(), DispatchError> {
        assert_eq!(key, protocol::dispatch_key(TOKEN));
        self.cancelled.lock().unwrap().push(task);
        Ok(())
    }

    fn send_task(
        &self,
        url: &str,
        key: &str,
        task: u64,
        envelope: &TaskEnvelope,
        c1: &[u8],
    ) -> Result<(), DispatchError> {
        assert_eq!(key, protocol::dispatch_key(TOKEN), "the daemon presents the worker's dispatch key");
        assert_eq!(envelope.kind, RemoteTask::C2);
        assert!(!c1.is_empty());
        if self.refuse.load(Ordering::SeqCst) {
            let refused = wire::client::CallError::Unreachable {
                endpoint: url.into(),
                reason: "connection refused".into(),
                local: false,
            };
            return Err(refused.into());
        }
        self.sent.lock().unwrap().push(task);
        Ok(())
    }
}

fn remote_rig(lease_ms: u64, local_commits: usize) -> (Rig, Arc<FakeDispatcher>) {
    remote_rig_with(lease_ms, local_commits, 1, |_| {})
}

fn remote_rig_with(
    lease_ms: u64,
    local_commits: usize,
    slots: u32,
    tweak: impl FnOnce(&mut PipelineConfig),
) -> (Rig, Arc<FakeDispatcher>) {
    let mut r = rig_with(3, 0, 60_000, |c| {
        c.workers = crate::config::WorkersConfig {
            heartbeat_ms: 10,
            lease_ms,
            dispatch_timeout_ms: 1_000,
            ..Default::default()
        };
        c.limits.commit = local_commits;
        tweak(c);
    });
    let dispatcher = Arc::new(FakeDispatcher::default());
    r.pipeline = std::mem::replace(
        &mut r.pipeline,
        Pipeline::new(
            r.ledger.clone(),
            r.engine.clone(),
            Arc::new(FakeVerifier { reject_first: Arc::default() }),
            r.config.clone(),
        ),
    )
    .with_dispatcher(dispatcher.clone());
    let caps = Capabilities {
        tasks: vec![RemoteTask::C2],
        slots,
        params: vec![ParamFile::porep(SectorSize::KiB2)],
        ..Default::default()
    };
    let now = r.now();
    let mut store = r.ledger.store();
    store
        .create_worker_token("w", &protocol::token_hash(TOKEN), &protocol::dispatch_key(TOKEN), now)
        .unwrap();
    store.register_worker("w", "i", "http://w", &caps, now).unwrap();
    drop(store);
    (r, dispatcher)
}

impl Rig {
    /// Ticks as the worker would act: heartbeats while `alive`, and
    /// reports `proof` for each task it was sent.
    fn drive_with_worker(
        &mut self,
        d: &FakeDispatcher,
        n: u64,
        state: SectorState,
        alive: bool,
        proof: &[u8],
    ) {
        let mut reported = Vec::new();
        for _ in 0..20_000 {
            if self.state(n) == state {
                return;
            }
            self.turn();
            if alive {
                let sent = d.sent.lock().unwrap().clone();
                let now = self.now();
                let mut store = self.ledger.store();
                store.worker_heartbeat("w", "i", &sent, now + 60_000, now).unwrap();
                for id in sent {
                    let running = store.task(id).unwrap().is_some_and(|t| t.state == TaskState::Running);
                    if running && !reported.contains(&id) {
                        let result = TaskOutput::save(self.config.new_task_result_path(id), proof).unwrap();
                        store.report_task(id, "w", Ok(&result), now).unwrap();
                        reported.push(id);
                    }
                }
            }
        }
        panic!("sector {n} stuck in {}", self.state(n));
    }

    fn commit_tasks(&self, n: u64) -> Vec<TaskRow> {
        let tasks = self.ledger.store().tasks(Some(n)).unwrap();
        tasks.into_iter().filter(|t| t.kind == TaskKind::Commit).collect()
    }
}

fn summary(tasks: &[TaskRow]) -> Vec<(Option<&str>, TaskState)> {
    tasks.iter().map(|t| (t.worker.as_deref(), t.state)).collect()
}

/// The C1s the daemon runs for workers are bounded by `limits.remote_c1`,
/// however many worker slots are free (they were not bounded at all).
#[test]
fn c1s_for_workers_run_within_their_limit() {
    let (mut r, d) = remote_rig_with(60_000, 0, 3, |c| {
        c.limits.remote_c1 = 1;
        c.limits.pre_commit = 3;
    });
    let gate = r.engine.c1_gate.clone();
    let held = gate.lock().unwrap();
    pledge(&r.ledger, &r.config, 3, r.now()).unwrap();
    let mut turns = 0;
    while turns < 4_000 {
        turns += 1;
        r.pipeline.tick();
        if r.pipeline.busy() {
            r.pipeline.await_task(Duration::from_millis(20));
        } else {
            r.clock.advance(STEP_MS);
        }
        let committing = (1..=3).filter(|&n| r.state(n) == SectorState::Committing).count();
        if committing == 3 && r.engine.c1_in.load(Ordering::SeqCst) >= 1 {
            break;
        }
    }
    // All three wait for C2 with three free slots; more ticks start no second C1.
    for _ in 0..20 {
        r.pipeline.tick();
        r.pipeline.await_task(Duration::from_millis(10));
    }
    assert_eq!(r.engine.c1_in.load(Ordering::SeqCst), 1);
    drop(held);
    r.drive_with_worker(&d, 3, SectorState::Proving, true, GOOD);
    r.drive_to(1, SectorState::Proving);
    r.drive_to(2, SectorState::Proving);
    assert_eq!(r.engine.c1_peak.load(Ordering::SeqCst), 1);
    assert_eq!(d.sent.lock().unwrap().len(), 3, "every C2 went to the worker");
}

#[test]
fn a_free_worker_gets_the_c2_and_its_verified_proof_is_accepted() {
    let (mut r, d) = remote_rig(60_000, 1);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_with_worker(&d, 1, SectorState::Proving, true, GOOD);
    assert_eq!(r.engine.commits.load(Ordering::SeqCst), 0, "no C2 ran locally");
    assert_eq!(summary(&r.commit_tasks(1)), [(Some("w"), TaskState::Done)]);
    // The other tasks ran here and are recorded too.
    let kinds: Vec<_> = r.ledger.store().tasks(Some(1)).unwrap().iter().map(|t| (t.kind, t.state)).collect();
    assert_eq!(
        kinds,
        [
            (TaskKind::Pc1, TaskState::Done),
            (TaskKind::Pc2, TaskState::Done),
            (TaskKind::Commit, TaskState::Done),
            (TaskKind::Finalize, TaskState::Done)
        ]
    );
}

#[test]
fn a_bad_remote_proof_is_rejected_the_worker_marked_unhealthy_and_c2_rerun_locally() {
    let (mut r, d) = remote_rig(60_000, 1);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_with_worker(&d, 1, SectorState::Proving, true, b"forged proof");
    let tasks = r.commit_tasks(1);
    assert_eq!(summary(&tasks), [(Some("w"), TaskState::Rejected), (None, TaskState::Done)]);
    assert!(tasks[0].error.as_deref().unwrap().contains("does not verify"), "{:?}", tasks[0].error);
    let w = &r.ledger.store().workers().unwrap()[0];
    assert!(w.unhealthy.as_deref().unwrap().contains("does not verify"));
    assert_eq!(r.engine.commits.load(Ordering::SeqCst), 1);
    let proofs: Vec<Vec<u8>> = r
        .messages()
        .into_iter()
        .flat_map(|m| match m.message {
            Message::ProveCommitSectors { sectors } => sectors.into_iter().map(|s| s.proof).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(proofs, [GOOD.to_vec()], "only the verified proof reached the chain");
}

#[test]
fn a_silent_worker_loses_the_task_when_the_lease_lapses() {
    let (mut r, d) = remote_rig(200, 1);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_with_worker(&d, 1, SectorState::Proving, false, GOOD);
    let tasks = r.commit_tasks(1);
    assert_eq!(summary(&tasks), [(Some("w"), TaskState::Expired), (None, TaskState::Done)]);
    assert!(tasks[0].error.as_deref().unwrap().contains("did not renew the lease"));
}

#[test]
fn a_worker_refusing_the_task_is_backed_off_and_with_no_local_slots_the_sector_waits() {
    let (mut r, d) = remote_rig(60_000, 0);
    d.refuse.store(true, Ordering::SeqCst);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_to(1, SectorState::Committing);
    r.pass(250);
    // One refused dispatch, then the worker is backed off; commit = 0 runs nothing here.
    assert_eq!(summary(&r.commit_tasks(1)), [(Some("w"), TaskState::Failed)]);
    assert_eq!(r.state(1), SectorState::Committing);
    assert_eq!(r.engine.commits.load(Ordering::SeqCst), 0);
    // A failure the worker reports is charged to the worker, not the sector.
    d.refuse.store(false, Ordering::SeqCst);
    assert_eq!(r.ledger.store().workers().unwrap()[0].failures, 1, "the refusal is charged");
    r.ledger.store().reset_worker("w").unwrap();
    for _ in 0..1_000 {
        if !d.sent.lock().unwrap().is_empty() {
            break;
        }
        r.turn();
    }
    let id = d.sent.lock().unwrap()[0];
    r.ledger.store().report_task(id, "w", Err("out of GPU memory"), r.now()).unwrap();
    r.pass(100);
    let row = r.ledger.store().sector(1).unwrap().unwrap();
    assert_eq!((row.lifecycle.state, row.lifecycle.attempts), (SectorState::Committing, 0));
    let failed = r.commit_tasks(1).into_iter().find(|t| t.id == id).unwrap();
    assert_eq!(failed.state, TaskState::Failed);
    assert!(failed.error.unwrap().contains("out of GPU memory"));
}

/// A worker whose C2 always fails (a corrupt parameter file, too little
/// memory) is charged, not the sectors: after `failures_before_bench` it is
/// benched and the sector proves locally, without a failed step.
#[test]
fn a_failing_worker_is_benched_and_the_sector_proves_without_losing_attempts() {
    let (mut r, d) = remote_rig(60_000, 1);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    let mut reported = Vec::new();
    for _ in 0..20_000 {
        if r.state(1) == SectorState::Proving {
            break;
        }
        r.turn();
        let now = r.now();
        for id in d.sent.lock().unwrap().clone() {
            if !reported.contains(&id) {
                r.ledger.store().report_task(id, "w", Err("parameter file digest mismatch"), now).unwrap();
                reported.push(id);
            }
        }
    }
    assert_eq!(r.state(1), SectorState::Proving);
    assert!(!r.event_names(1).contains(&"StepFailed"), "{:?}", r.event_names(1));
    let bench = r.config.workers.failures_before_bench as usize;
    let mut want = vec![(Some("w"), TaskState::Failed); bench];
    want.push((None, TaskState::Done));
    assert_eq!(summary(&r.commit_tasks(1)), want);
    let w = &r.ledger.store().workers().unwrap()[0];
    assert!(w.benched_until_ms.is_some_and(|t| t > r.now()), "benched: {w:?}");
    assert!(w.bench_reason.as_deref().unwrap().contains("parameter file digest mismatch"), "{w:?}");
}

/// A worker that takes tasks and heartbeats but never finishes (a hung
/// prover) loses each at the task deadline, is benched, and the sector proves locally.
#[test]
fn a_hung_worker_misses_the_task_deadline_and_is_benched() {
    let (mut r, d) = remote_rig(60_000, 1);
    // 2KiB gets a sixteenth of the configured deadline: 300 ms.
    r.config.workers.task_deadline_ms = 16 * 300;
    assert_eq!(r.config.workers.task_deadline_ms_for(SectorSize::KiB2), 300);
    assert_eq!(r.config.workers.task_deadline_ms_for(SectorSize::GiB32), 4_800);
    let local = Arc::new(FakeVerifier { reject_first: Arc::default() });
    r.pipeline =
        Pipeline::new(r.ledger.clone(), r.engine.clone(), local, r.config.clone()).with_dispatcher(d.clone());
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    for _ in 0..20_000 {
        if r.state(1) == SectorState::Proving {
            break;
        }
        r.turn();
        let sent = d.sent.lock().unwrap().clone();
        let now = r.now();
        let _ = r.ledger.store().worker_heartbeat("w", "i", &sent, now + 60_000, now);
    }
    assert_eq!(r.state(1), SectorState::Proving);
    assert!(!r.event_names(1).contains(&"StepFailed"));
    let tasks = r.commit_tasks(1);
    let expired = tasks.iter().filter(|t| t.state == TaskState::Expired).count();
    assert_eq!(expired, r.config.workers.failures_before_bench as usize, "{tasks:?}");
    assert!(tasks[0].error.as_deref().unwrap().contains("task deadline"));
    assert_eq!(summary(&tasks).last().copied(), Some((None, TaskState::Done)));
}

/// A C2 pause (a node fault) lets one probe through per interval; when the
/// probe goes to a worker and its proof is accepted, C2 resumes.
#[test]
fn a_remote_probe_whose_proof_is_accepted_resumes_a_paused_c2() {
    let (mut r, d) = remote_rig(60_000, 1);
    let now = r.now();
    r.pipeline.pause(TaskKind::Commit, "verifying key unreadable", now);
    pledge(&r.ledger, &r.config, 2, r.now()).unwrap();
    r.drive_with_worker(&d, 2, SectorState::Proving, true, GOOD);
    r.drive_to(1, SectorState::Proving);
    assert!(r.pipeline.paused().lock().unwrap().is_empty(), "resumed by the accepted remote proof");
    assert_eq!(summary(&r.commit_tasks(1)), [(Some("w"), TaskState::Done)]);
    assert_eq!(r.engine.commits.load(Ordering::SeqCst), 0, "no C2 ran locally");
}

/// A worker whose prover hangs while its heartbeats keep renewing the lease
/// cannot pin the sector past the prove-commit window: the task is cancelled
/// and the sector seals again (then proves locally once the worker is gone).
#[test]
fn a_hung_worker_cannot_hold_a_sector_past_its_precommit_expiry() {
    let (mut r, d) = remote_rig(60_000, 1);
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    r.drive_to(1, SectorState::Committing);
    // The worker takes the task, heartbeats, never reports.
    for _ in 0..20_000 {
        if r.event_names(1).contains(&"PreCommitExpired") {
            break;
        }
        r.turn();
        let sent = d.sent.lock().unwrap().clone();
        let now = r.now();
        let _ = r.ledger.store().worker_heartbeat("w", "i", &sent, now + 60_000, now);
    }
    assert!(r.event_names(1).contains(&"PreCommitExpired"), "{:?}", r.event_names(1));
    let tasks = r.commit_tasks(1);
    // The worker still lists it: it keeps the slot, and was told to drop it.
    assert_eq!(summary(&tasks)[0], (Some("w"), TaskState::Cancelling), "{tasks:?}");
    assert!(tasks[0].error.as_deref().unwrap().contains("PreCommit expired"));
    r.pass(1_100);
    assert!(d.cancelled.lock().unwrap().contains(&tasks[0].id));
}

/// A worker that accepts every C2 and then registers again as a new instance
/// (a crash loop, or a lie) loses the task each time and is charged for it,
/// wherever the expiry is found (here: at its registration): after
/// `failures_before_bench` it is benched, the C2 runs locally, and the bench
/// outlives a restart of the daemon. (It was never charged: C2 starved.)
#[test]
fn a_worker_that_restarts_with_tasks_open_is_charged_and_benched() {
    let (mut r, d) = remote_rig(60_000, 1);
    let caps = r.ledger.store().workers().unwrap()[0].capabilities.clone();
    pledge(&r.ledger, &r.config, 1, r.now()).unwrap();
    let mut restarts = 0;
    for _ in 0..20_000 {
        if r.state(1) == SectorState::Proving {
            break;
        }
        r.turn();
        let sent = d.sent.lock().unwrap().len();
        if sent > restarts {
            restarts = sent;
            let now = r.now();
            r.ledger.store().register_worker("w", &format!("i{restarts}"), "http://w", &caps, now).unwrap();
        }
    }
    assert_eq!(r.state(1), SectorState::Proving);
    let bench = r.config.workers.failures_before_bench as usize;
    let mut want = vec![(Some("w"), TaskState::Expired); bench];
    want.push((None, TaskState::Done));
    assert_eq!(summary(&r.commit_tasks(1)), want);
    assert!(!r.event_names(1).contains(&"StepFailed"));
    let benched = |store: &dyn crate::store::Store| {
        let w = store.workers().unwrap().remove(0);
        assert!(w.bench_reason.as_deref().unwrap().contains("restarted"), "{w:?}");
        w.benched_until_ms.unwrap()
    };
    let until = benched(r.ledger.store().as_ref());
    assert!(until > r.now());
    // The bench is in the database: a daemon restarting finds it.
    let reopened = crate::store::SqliteStore::open(&r.config.database_path(), r.config.retry).unwrap();
    let reopened: &dyn crate::store::Store = &reopened;
    assert_eq!(benched(reopened), until);
    assert_eq!(
        crate::workers::scheduler::worker_state(&reopened.workers().unwrap()[0], r.now(), 60_000),
        wire::api::WorkerState::Benched
    );
}

/// Aborting a sector whose C2 is on a worker cancels the task at once and
/// tells the worker; the slot stays taken while the worker still proves it
/// (it was freed at once, oversubscribing the worker) and is freed when the
/// worker reports (409: not wanted). Another sector then gets the worker.
/// Before, the task stayed open for good and the slot with it.
#[test]
fn an_aborted_sectors_remote_task_holds_the_slot_until_the_worker_lets_go() {
    let (mut r, d) = remote_rig(60_000, 0);
    pledge(&r.ledger, &r.config, 2, r.now()).unwrap();
    for _ in 0..20_000 {
        if !d.sent.lock().unwrap().is_empty() && !r.pipeline.busy() {
            break;
        }
        r.turn();
    }
    let first = d.sent.lock().unwrap()[0];
    let task = r.ledger.store().task(first).unwrap().unwrap();
    let aborted = task.sector.unwrap();
    let other = 3 - aborted;
    let now = r.now();
    let abort = crate::lifecycle::SectorEvent::Abort { reason: "operator".into() };
    r.ledger.store().apply(aborted, &abort, now).unwrap();
    assert_eq!(r.ledger.store().task(first).unwrap().unwrap().state, TaskState::Cancelling);
    // The worker still lists it: told to drop it, and the slot stays taken.
    for _ in 0..400 {
        r.turn();
        let now = r.now();
        let drop = r.ledger.store().worker_heartbeat("w", "i", &[first], now + 60_000, now).unwrap();
        assert_eq!(drop, [first]);
    }
    assert!(d.cancelled.lock().unwrap().contains(&first), "the worker was told");
    r.drive_to(other, SectorState::Committing);
    r.pass(200);
    assert_eq!(d.sent.lock().unwrap().len(), 1, "no second C2 while the worker still proves the first");
    // The worker finishes and reports a failure: refused (not wanted), the slot freed.
    let now = r.now();
    let e = r.ledger.store().report_task(first, "w", Err("out of memory"), now).unwrap_err();
    assert!(e.to_string().contains("cancelled"), "{e}");
    assert_eq!(r.ledger.store().task(first).unwrap().unwrap().state, TaskState::Cancelled);
    r.drive_with_worker(&d, other, SectorState::Proving, true, GOOD);
    assert_eq!(r.state(aborted), SectorState::Failed);
    assert!(r.ledger.store().open_tasks().unwrap().is_empty(), "{:?}", r.ledger.store().open_tasks());
}

/// Removing a sector whose worker already reported closes the task with the
/// removal (it was left `reported` with the slot taken); a cancelled task the
/// worker no longer lists in a heartbeat is let go at once.
#[test]
fn removal_closes_reported_tasks_and_a_heartbeat_without_the_task_lets_it_go() {
    let (mut r, d) = remote_rig(60_000, 0);
    pledge(&r.ledger, &r.config, 2, r.now()).unwrap();
    for _ in 0..20_000 {
        if d.sent.lock().unwrap().len() == 1 && !r.pipeline.busy() {
            break;
        }
        r.turn();
    }
    let first = d.sent.lock().unwrap()[0];
    let sector = r.ledger.store().task(first).unwrap().unwrap().sector.unwrap();
    let now = r.now();
    r.ledger.store().report_task(first, "w", Err("out of memory"), now).unwrap();
    r.ledger.store().apply(sector, &crate::lifecycle::SectorEvent::Remove, now).unwrap();
    assert_eq!(r.ledger.store().task(first).unwrap().unwrap().state, TaskState::Cancelled);
    r.drive_to(sector, SectorState::Removed);
    // The other sector's C2 goes out; abort it, and the worker's next
    // heartbeat does not list it (it had not started): let go.
    for _ in 0..20_000 {
        if d.sent.lock().unwrap().len() == 2 && !r.pipeline.busy() {
            break;
        }
        r.turn();
    }
    let second = d.sent.lock().unwrap()[1];
    let other = r.ledger.store().task(second).unwrap().unwrap().sector.unwrap();
    let now = r.now();
    r.ledger.store().apply(other, &crate::lifecycle::SectorEvent::Abort { reason: "x".into() }, now).unwrap();
    assert_eq!(r.ledger.store().task(second).unwrap().unwrap().state, TaskState::Cancelling);
    r.ledger.store().worker_heartbeat("w", "i", &[], now + 60_000, now).unwrap();
    assert_eq!(r.ledger.store().task(second).unwrap().unwrap().state, TaskState::Cancelled);
    assert!(r.ledger.store().open_tasks().unwrap().is_empty());
}

/// Result files no open task refers to go with the hourly pruning once an
/// hour old (a delivery in progress is younger); one awaiting judgement
/// stays, however old, and a judged task's file goes when it is closed.
#[test]
fn stale_result_files_are_swept_and_one_awaiting_judgement_is_kept() {
    let (mut r, _d) = remote_rig(60_000, 0);
    let now = r.now();
    let aged = |path: &std::path::Path| {
        let hours_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 3_600);
        std::fs::File::options().write(true).open(path).unwrap().set_modified(hours_ago).unwrap();
    };
    let (waiting, judged) = {
        let mut store = r.ledger.store();
        let mut reported = |bytes: &[u8]| {
            let id =
                store.start_task(None, TaskKind::WindowPost, Some("w"), Some(now + 60_000), now).unwrap();
            let result = TaskOutput::save(r.config.new_task_result_path(id), bytes).unwrap();
            store.report_task(id, "w", Ok(&result), now).unwrap();
            aged(&result.path);
            (id, result)
        };
        (reported(&[1; 192]).1, reported(&[2; 192]))
    };
    let (judged_id, judged) = judged;
    let orphan = r.config.task_results_dir().join("77.0000000000000000.result");
    std::fs::write(&orphan, [3; 192]).unwrap();
    aged(&orphan);
    let fresh = r.config.task_results_dir().join("78.0000000000000000.result");
    std::fs::write(&fresh, [4; 192]).unwrap();
    crate::pipeline::close_task(&r.ledger, judged_id, TaskState::Done, None);
    assert!(!judged.path.exists(), "a judged task's result file goes when it is closed");
    r.pipeline.prune_history();
    assert!(!orphan.exists(), "an hour-old file no open task refers to is removed");
    assert!(fresh.exists(), "a younger one may be a delivery in progress");
    assert_eq!(waiting.read(192).unwrap(), [1; 192], "the result awaiting judgement is kept");
}
