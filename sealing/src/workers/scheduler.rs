//! Which worker gets a C2 task: the scheduler's pure decisions, separate from
//! the driver that acts on them.

use crate::store::{TaskRow, WorkerRow};
use proofs::SectorSize;
use std::collections::HashMap;

pub use wire::api::WorkerState;

/// `w`'s state at `now_ms`, given the lease length.
pub fn worker_state(w: &WorkerRow, now_ms: i64, lease_ms: u64) -> WorkerState {
    if w.revoked {
        WorkerState::Revoked
    } else if w.unhealthy.is_some() {
        WorkerState::Unhealthy
    } else if now_ms.saturating_sub(w.last_seen_ms) > lease_ms as i64 {
        WorkerState::Offline
    } else if w.benched_until_ms.is_some_and(|until| now_ms < until) {
        WorkerState::Benched
    } else {
        WorkerState::Online
    }
}

/// Slots taken per worker: its open tasks, cancelled ones it has not let go included.
pub fn load(open: &[TaskRow]) -> HashMap<&str, u32> {
    let mut out = HashMap::new();
    for t in open.iter().filter(|t| t.state.holds_slot()) {
        if let Some(w) = t.worker.as_deref() {
            *out.entry(w).or_default() += 1;
        }
    }
    out
}

/// The worker a C2 of a `size` sector goes to: online, holding the size's
/// parameters, with a free slot (its slots, as many as its memory holds C2s
/// of the size: [`Capabilities::slots_for`]), not benched; workers that prove the size on GPUs before those that do not,
/// then the least loaded (by share of slots in use), then by name. None: no
/// worker is free, and the task runs locally if the local limit allows.
pub fn pick_worker<'a>(
    workers: &'a [WorkerRow],
    open: &[TaskRow],
    size: SectorSize,
    now_ms: i64,
    lease_ms: u64,
) -> Option<&'a WorkerRow> {
    let load = load(open);
    workers
        .iter()
        .filter(|w| worker_state(w, now_ms, lease_ms) == WorkerState::Online)
        .filter(|w| w.capabilities.proves(size))
        .filter(|w| load.get(w.name.as_str()).copied().unwrap_or(0) < w.capabilities.slots_for(size))
        .min_by(|a, b| {
            let share = |w: &WorkerRow| {
                f64::from(load.get(w.name.as_str()).copied().unwrap_or(0))
                    / f64::from(w.capabilities.slots_for(size).max(1))
            };
            let cpu_only = |w: &WorkerRow| !w.capabilities.proves_on_gpu(size);
            cpu_only(a)
                .cmp(&cpu_only(b))
                .then_with(|| share(a).total_cmp(&share(b)))
                .then_with(|| a.name.cmp(&b.name))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{TaskKind, TaskState};
    use wire::worker::{Capabilities, ParamFile, RemoteTask};

    fn worker(name: &str, slots: u32, last_seen_ms: i64) -> WorkerRow {
        WorkerRow {
            name: name.into(),
            instance: "i".into(),
            url: "http://w".into(),
            capabilities: Capabilities {
                tasks: vec![RemoteTask::C2],
                slots,
                params: vec![ParamFile::porep(SectorSize::KiB2)],
                ..Default::default()
            },
            registered_ms: 0,
            last_seen_ms,
            unhealthy: None,
            revoked: false,
            failures: 0,
            benched_until_ms: None,
            bench_reason: None,
        }
    }

    fn task(id: u64, worker: &str) -> TaskRow {
        TaskRow {
            id,
            sector: Some(id),
            kind: TaskKind::Commit,
            worker: Some(worker.into()),
            state: TaskState::Running,
            created_ms: 0,
            updated_ms: 0,
            lease_until_ms: Some(10_000),
            error: None,
            result_bytes: None,
            queued_ms: None,
            owner: "local".into(),
        }
    }

    fn pick(workers: &[WorkerRow], open: &[TaskRow], size: SectorSize) -> Option<String> {
        pick_worker(workers, open, size, 1_000, 5_000).map(|w| w.name.clone())
    }

    #[test]
    fn the_least_loaded_free_worker_is_chosen() {
        let ws = [worker("a", 1, 900), worker("b", 2, 900)];
        assert_eq!(pick(&ws, &[], SectorSize::KiB2).as_deref(), Some("a"));
        assert_eq!(pick(&ws, &[task(1, "a")], SectorSize::KiB2).as_deref(), Some("b"));
        assert_eq!(pick(&ws, &[task(1, "b")], SectorSize::KiB2).as_deref(), Some("a"));
        assert_eq!(pick(&ws, &[task(1, "a"), task(2, "b")], SectorSize::KiB2).as_deref(), Some("b"));
        assert_eq!(pick(&ws, &[task(1, "a"), task(2, "b"), task(3, "b")], SectorSize::KiB2), None);
    }

    #[test]
    fn offline_unhealthy_revoked_backed_off_or_unequipped_workers_get_nothing() {
        let mut offline = worker("a", 1, -10_000);
        assert_eq!(worker_state(&offline, 1_000, 5_000), WorkerState::Offline);
        offline.last_seen_ms = 900;
        let online = offline.clone();
        assert_eq!(pick(std::slice::from_ref(&online), &[], SectorSize::GiB32), None, "no 32GiB parameters");

        let mut sick = online.clone();
        sick.unhealthy = Some("bad proof".into());
        let mut revoked = online.clone();
        revoked.revoked = true;
        assert_eq!(worker_state(&sick, 1_000, 5_000), WorkerState::Unhealthy);
        assert_eq!(worker_state(&revoked, 1_000, 5_000), WorkerState::Revoked);
        assert_eq!(pick(&[sick, revoked], &[], SectorSize::KiB2), None);

        let mut benched = online.clone();
        benched.benched_until_ms = Some(2_000);
        assert_eq!(worker_state(&benched, 1_000, 5_000), WorkerState::Benched);
        assert!(pick_worker(std::slice::from_ref(&benched), &[], SectorSize::KiB2, 1_000, 5_000).is_none());
        assert!(pick_worker(std::slice::from_ref(&benched), &[], SectorSize::KiB2, 2_000, 5_000).is_some());
        // A cancelled task its worker still proves keeps the slot taken.
        let mut cancelling = task(1, "a");
        cancelling.state = TaskState::Cancelling;
        assert_eq!(pick(std::slice::from_ref(&online), &[cancelling.clone()], SectorSize::KiB2), None);
        cancelling.state = TaskState::Cancelled;
        assert!(pick(std::slice::from_ref(&online), &[cancelling], SectorSize::KiB2).is_some());
    }

    #[test]
    fn a_worker_gets_no_more_c2s_than_its_memory_holds() {
        let mut w = worker("a", 8, 900);
        w.capabilities.memory_bytes = 10 << 30;
        // Two 2KiB C2s fit in 10 GiB, not eight.
        assert_eq!(w.capabilities.slots_for(SectorSize::KiB2), 2);
        let ws = [w.clone()];
        assert_eq!(pick(&ws, &[task(1, "a")], SectorSize::KiB2).as_deref(), Some("a"));
        assert_eq!(pick(&ws, &[task(1, "a"), task(2, "a")], SectorSize::KiB2), None);
        // Not even one 32GiB C2.
        w.capabilities.params.push(ParamFile::porep(SectorSize::GiB32));
        assert_eq!(w.capabilities.slots_for(SectorSize::GiB32), 0);
        assert_eq!(pick(&[w], &[], SectorSize::GiB32), None);
    }

    #[test]
    fn workers_proving_the_size_on_gpus_come_first() {
        use wire::worker::GpuInfo;
        let gpu = |name: &str, memory_bytes: u64| {
            let mut w = worker(name, 4, 900);
            w.capabilities.gpu_build = true;
            w.capabilities.gpus = vec![GpuInfo { name: "NVIDIA H200".into(), memory_bytes }];
            w
        };
        // "a" sorts first by name and is idle; the GPU worker is busier but wins.
        let ws = [worker("a", 4, 900), gpu("z", 140 << 30)];
        let open = [task(1, "z"), task(2, "z")];
        assert_eq!(pick(&ws, &open, SectorSize::KiB2).as_deref(), Some("z"));
        // Full, it yields to the CPU worker.
        let full = [task(1, "z"), task(2, "z"), task(3, "z"), task(4, "z")];
        assert_eq!(pick(&ws, &full, SectorSize::KiB2).as_deref(), Some("a"));
        // A GPU too small for the size counts as none.
        let small = [worker("a", 4, 900), gpu("z", 256 << 20)];
        assert!(!small[1].capabilities.proves_on_gpu(SectorSize::KiB2));
        assert_eq!(pick(&small, &open, SectorSize::KiB2).as_deref(), Some("a"));
    }
}
