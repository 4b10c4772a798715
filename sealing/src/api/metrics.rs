//! `GET /metrics` (Prometheus, with the daemon's token, or without one on the
//! loopback scrape address) and `GET /v0/history` (sectors per state over
//! time, sampled by the daemon for the web view's chart).

use super::server::{blocking, ApiContext, ApiError, ApiResult, Ctx};
use crate::ledger::Ledger;
use crate::metrics::Records;
use crate::workers::scheduler::worker_state;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use wire::api::{HistorySample, HistoryView};

/// Sectors per state, sampled every `interval_ms`, at most `capacity` kept.
pub struct History {
    interval_ms: u64,
    capacity: usize,
    samples: Mutex<VecDeque<HistorySample>>,
}

impl History {
    /// An empty history.
    pub fn new(interval_ms: u64, capacity: usize) -> Self {
        Self { interval_ms, capacity: capacity.max(1), samples: Mutex::default() }
    }

    /// Time between samples.
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.interval_ms)
    }

    /// Takes a sample now.
    pub fn sample(&self, ledger: &Ledger) {
        let counts = match ledger.store().sector_counts() {
            Ok(c) => c,
            Err(e) => return tracing::warn!(error = %e, "history: cannot count sectors"),
        };
        let sample = HistorySample {
            at_ms: ledger.now_ms(),
            sectors: counts.into_iter().map(|(state, n)| (state.name().to_string(), n)).collect(),
        };
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == self.capacity {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    fn view(&self) -> HistoryView {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        HistoryView { interval_ms: self.interval_ms, samples: samples.iter().cloned().collect() }
    }
}

/// The scrape answer.
pub(super) async fn metrics(State(ctx): Ctx) -> Response {
    let text = blocking(ctx, |ctx| {
        let records = records(ctx);
        let ledger = &ctx.ledger;
        Ok(ledger.metrics().scrape(records, ledger.chain_view(), ledger.now_ms()))
    })
    .await;
    match text {
        Ok(axum::Json(text)) => wire::metrics::response(text),
        Err(e) => e.into_response(),
    }
}

/// The gauges' values now.
fn records(ctx: &ApiContext) -> Result<Records, String> {
    let ledger = &ctx.ledger;
    let now_ms = ledger.now_ms();
    let (sectors, workers, open_tasks) = {
        let store = ledger.store();
        let text = |e: crate::store::StoreError| e.to_string();
        (
            store.sector_counts().map_err(text)?,
            store.workers().map_err(text)?,
            store.open_tasks().map_err(text)?,
        )
    };
    let lease_ms = ctx.config.workers.lease_ms;
    let workers = workers
        .into_iter()
        .map(|w| {
            let state = worker_state(&w, now_ms, lease_ms);
            (w, state)
        })
        .collect();
    let paused = crate::pipeline::relock(&ctx.paused).keys().copied().collect();
    let chain = ledger.chain_view();
    let head = chain.head(now_ms).map_err(|e| e.to_string())?;
    let proving_sectors = chain.proving_sectors(now_ms).map_err(|e| e.to_string())?;
    Ok(Records { now_ms, sectors, open_tasks, workers, paused, head, proving_sectors })
}

pub(super) async fn history(State(ctx): Ctx) -> ApiResult<HistoryView> {
    Ok(axum::Json(ctx.history.view()))
}

/// The unauthenticated scrape address's routes: `/metrics` only.
pub fn scrape_router(ctx: Arc<ApiContext>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(ctx)
        .fallback(|| async { ApiError::not_found("this address serves /metrics only") })
        .layer(axum::middleware::from_fn(wire::metrics::loopback_host_only))
}
