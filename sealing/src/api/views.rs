//! The API's answers built from the daemon's records: a record can change
//! without the API changing, and the other way round.

use crate::store::{EventRow, PieceRow, SectorRow, TaskRow, TokenRow, WorkerRow};
use wire::api::{
    EventView, LifecycleView, PieceView, SectorView, TaskView, TokenView, WorkerState, WorkerView,
};

impl From<SectorRow> for SectorView {
    fn from(r: SectorRow) -> Self {
        Self {
            number: r.number,
            sector_size: r.sector_size,
            pledged: r.pledged,
            lifecycle: LifecycleView { state: r.lifecycle.state, attempts: r.lifecycle.attempts },
            ticket: r.ticket,
            ticket_epoch: r.ticket_epoch,
            comm_d: r.comm_d,
            comm_r: r.comm_r,
            seed: r.seed,
            seed_epoch: r.seed_epoch,
            precommit_message: r.precommit_message,
            commit_message: r.commit_message,
            last_error: r.last_error,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
        }
    }
}

impl From<PieceRow> for PieceView {
    fn from(r: PieceRow) -> Self {
        Self {
            index: r.index,
            path: r.path,
            raw_len: r.raw_len,
            padded_size: r.padded_size,
            comm_p: r.comm_p,
            added_ms: r.added_ms,
        }
    }
}

impl From<EventRow> for EventView {
    fn from(r: EventRow) -> Self {
        // An event always serialises (plain data); `Null` would only hide a bug.
        let event = serde_json::to_value(&r.event).unwrap_or(serde_json::Value::Null);
        Self { seq: r.seq, at_ms: r.at_ms, event, state: r.state }
    }
}

impl From<TaskRow> for TaskView {
    fn from(r: TaskRow) -> Self {
        Self {
            id: r.id,
            sector: r.sector,
            kind: r.kind,
            worker: r.worker,
            state: r.state,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            lease_until_ms: r.lease_until_ms,
            error: r.error,
            result_bytes: r.result_bytes,
            queued_ms: r.queued_ms,
        }
    }
}

impl From<TokenRow> for TokenView {
    fn from(r: TokenRow) -> Self {
        Self { name: r.name, created_ms: r.created_ms, revoked_ms: r.revoked_ms }
    }
}

/// A worker's view: its record, its state now and its open tasks.
pub fn worker_view(w: WorkerRow, state: WorkerState, tasks: Vec<u64>) -> WorkerView {
    WorkerView {
        name: w.name,
        instance: w.instance,
        url: w.url,
        capabilities: w.capabilities,
        registered_ms: w.registered_ms,
        last_seen_ms: w.last_seen_ms,
        unhealthy: w.unhealthy,
        revoked: w.revoked,
        failures: w.failures,
        benched_until_ms: w.benched_until_ms,
        bench_reason: w.bench_reason,
        state,
        tasks,
    }
}

/// Rows as views.
pub fn all<R, V: From<R>>(rows: Vec<R>) -> Vec<V> {
    rows.into_iter().map(V::from).collect()
}
