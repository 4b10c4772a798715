//! What the driver and the API share: the sector store, the chain, the clock
//! and the metrics.
//!
//! The store sits behind its own mutex, held for single SQLite transactions
//! only; the chain synchronises itself (see [`Chain`]) and is never reached
//! through the store's lock. So an API call waits at most for one short
//! transaction, never for a proof verification or a task.

use crate::chain::Chain;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::{Arc, Mutex, MutexGuard};

/// The store, the chain and the clock.
pub struct Ledger {
    store: Mutex<Box<dyn Store>>,
    chain: Box<dyn Chain>,
    observer: Option<Box<dyn Chain>>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
}

/// The ledger, shared.
pub type SharedLedger = Arc<Ledger>;

impl Ledger {
    /// A ledger over `store` and `chain`, telling time by `clock`.
    pub fn new(store: Box<dyn Store>, chain: Box<dyn Chain>, clock: SharedClock) -> SharedLedger {
        Self::build(store, chain, None, clock)
    }

    /// A ledger whose readers (the API) see the chain through `observer`, a
    /// handle that never executes messages (so never verifies a proof).
    pub fn with_observer(
        store: Box<dyn Store>,
        chain: Box<dyn Chain>,
        observer: Box<dyn Chain>,
        clock: SharedClock,
    ) -> SharedLedger {
        Self::build(store, chain, Some(observer), clock)
    }

    fn build(
        mut store: Box<dyn Store>,
        chain: Box<dyn Chain>,
        observer: Option<Box<dyn Chain>>,
        clock: SharedClock,
    ) -> SharedLedger {
        let metrics = Arc::new(Metrics::new());
        store.attach_observer(metrics.clone());
        Arc::new(Self { store: Mutex::new(store), chain, observer, clock, metrics })
    }

    /// The daemon's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The store, locked. Hold the guard for one operation or transaction:
    /// never across chain calls, file I/O or proofs.
    pub fn store(&self) -> MutexGuard<'_, Box<dyn Store>> {
        // A panic elsewhere while holding the lock leaves SQLite consistent
        // (every write is a transaction), so a poisoned lock is used as is.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The chain, as the driver acts on it (reads execute messages due).
    pub fn chain(&self) -> &dyn Chain {
        self.chain.as_ref()
    }

    /// The chain for readers that must not do the chain's work: the observer
    /// when there is one, else the chain itself (whose execution still runs
    /// outside any lock a reader waits on).
    pub fn chain_view(&self) -> &dyn Chain {
        self.observer.as_deref().unwrap_or(self.chain.as_ref())
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Now, by the ledger's clock (ms since the Unix epoch).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
