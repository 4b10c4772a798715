//! The multi-threaded labeler: producers prefetch parent labels, one consumer hashes.
//!
//! Labels within a layer form a chain (node `v` needs `v − 1`), so hashing stays
//! on one thread; what parallelises is gathering the 14 parent labels, which are
//! scattered reads across two layers. The protocol:
//!
//! - A ring of `lookahead` slots; node `v` uses slot `v % lookahead`.
//! - Producers claim nodes in increasing order from a shared counter. The
//!   producer of `v` waits until the consumer has published node `v − lookahead`
//!   (the slot is then free), copies the 8 expander parents (previous layer,
//!   complete) and every base parent already published in the current layer,
//!   records which base parents it copied, and marks the slot ready for `v`.
//! - The consumer takes nodes in order: it waits for slot `v` to be ready,
//!   fills the base parents the producer could not see (they are all `< v`, so
//!   published by the consumer itself), hashes, and publishes label `v`.
//!
//! Publishing is a release store of the count of finished nodes; producers read
//! a label only after an acquire load shows it finished, and finished labels
//! are never written again. That is the whole memory-ordering argument, and the
//! two shared types below enforce it.

#![allow(unsafe_code)]

use super::label::{label_first_node, label_node};
use super::parent_cache::ParentCache;
use crate::error::{Error, Result};
use crate::ids::ReplicaId;
use crate::shape::{BASE_DEGREE, DEGREE};
use crossbeam_utils::Backoff;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Tuning of the labeler, passed in by the caller (never read from the environment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelingConfig {
    /// Producer threads prefetching parents; 0 selects the single-threaded reference labeler.
    pub producers: usize,
    /// Nodes the producers may run ahead of the consumer.
    pub lookahead: usize,
}

impl Default for LabelingConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { producers: (cores.saturating_sub(1)).clamp(1, 4), lookahead: 1024 }
    }
}

impl LabelingConfig {
    /// The plain single-threaded reference labeler.
    pub fn reference() -> Self {
        Self { producers: 0, lookahead: 1 }
    }
}

/// Nodes between cancellation checks and progress reports.
const CHECK_INTERVAL: usize = 1 << 16;

/// The layer being written: one writer appends in order, any thread may read
/// what has been published.
struct PublishedLayer<'a> {
    ptr: *mut [u8; 32],
    len: usize,
    done: AtomicUsize,
    _buffer: PhantomData<&'a mut [[u8; 32]]>,
}

// SAFETY: all access goes through `publish` (single writer, each index written once,
// before it is published) and `get` (reads only published indices), which together
// make concurrent use data-race free.
unsafe impl Sync for PublishedLayer<'_> {}

impl<'a> PublishedLayer<'a> {
    fn new(buffer: &'a mut [[u8; 32]]) -> Self {
        Self { ptr: buffer.as_mut_ptr(), len: buffer.len(), done: AtomicUsize::new(0), _buffer: PhantomData }
    }

    /// Writes label `index` and publishes it.
    ///
    /// # Safety
    /// Only one thread ever calls this, with `index` equal to the number of labels
    /// published so far (so each index is written exactly once, in order).
    unsafe fn publish(&self, index: usize, label: [u8; 32]) {
        debug_assert_eq!(index, self.done.load(Ordering::Relaxed));
        assert!(index < self.len, "publish past the end of the layer");
        // SAFETY: `index < len` is in the buffer; no reader touches it until the store below
        // publishes it, and no other writer exists (caller's contract).
        unsafe { self.ptr.add(index).write(label) };
        self.done.store(index + 1, Ordering::Release);
    }

    /// The label at `index` if it has been published.
    #[inline]
    fn get(&self, index: usize) -> Option<[u8; 32]> {
        if index < self.done.load(Ordering::Acquire) {
            // SAFETY: published indices are in bounds and never written again; the acquire
            // load above orders this read after the writer's write.
            Some(unsafe { self.ptr.add(index).read() })
        } else {
            None
        }
    }

    fn published(&self) -> usize {
        self.done.load(Ordering::Acquire)
    }
}

/// One prefetch slot.
struct Slot {
    /// `node + 1` once the slot holds `node`'s parents; 0 before the first fill.
    ready: AtomicU64,
    data: UnsafeCell<([[u8; 32]; DEGREE], u8)>,
}

/// The ring of prefetch slots, with the ownership protocol of the module docs.
struct Ring {
    slots: Vec<Slot>,
}

// SAFETY: a slot's data is written only by the producer of node `v` after the consumer
// released it (published node `v − lookahead`, observed with acquire) and read only by
// the consumer after `ready == v + 1` (acquire); the two never overlap.
unsafe impl Sync for Ring {}

impl Ring {
    fn new(lookahead: usize) -> Self {
        let slots = (0..lookahead)
            .map(|_| Slot { ready: AtomicU64::new(0), data: UnsafeCell::new(([[0; 32]; DEGREE], 0)) })
            .collect();
        Self { slots }
    }

    /// Fills the slot of `node`.
    ///
    /// # Safety
    /// The caller is the only producer of `node`, and the consumer has published every
    /// node up to `node − lookahead`.
    unsafe fn fill(&self, node: u64, parents: [[u8; 32]; DEGREE], base_mask: u8) {
        let slot = &self.slots[node as usize % self.slots.len()];
        // SAFETY: by the caller's contract nobody else accesses this slot now.
        unsafe { *slot.data.get() = (parents, base_mask) };
        slot.ready.store(node + 1, Ordering::Release);
    }

    /// Whether the slot of `node` has been filled for it.
    fn is_ready(&self, node: u64) -> bool {
        self.slots[node as usize % self.slots.len()].ready.load(Ordering::Acquire) == node + 1
    }

    /// Takes the parents of `node` out of its slot.
    ///
    /// # Safety
    /// Only the consumer calls this, after `is_ready(node)` returned true and before
    /// publishing `node`.
    unsafe fn take(&self, node: u64) -> ([[u8; 32]; DEGREE], u8) {
        let slot = &self.slots[node as usize % self.slots.len()];
        // SAFETY: the producer finished with the slot (ready, acquire) and cannot reuse it
        // until `node` is published (caller's contract).
        unsafe { *slot.data.get() }
    }
}

fn wait(backoff: &Backoff) {
    if backoff.is_completed() {
        std::thread::sleep(Duration::from_micros(20));
    } else {
        backoff.snooze();
    }
}

/// Labels one layer with `config.producers` prefetching threads. Gives the same
/// bytes as [`super::label::label_layer`]. `progress` is called with the number
/// of finished nodes every 2^16 nodes and at the end; `cancel` is checked as often.
#[allow(clippy::too_many_arguments)]
pub fn label_layer_par(
    cache: &ParentCache,
    replica_id: &ReplicaId,
    layer: u32,
    previous: Option<&[[u8; 32]]>,
    out: &mut [[u8; 32]],
    config: &LabelingConfig,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let n = out.len();
    assert_eq!(n, cache.num_nodes() as usize, "layer buffer size");
    assert_eq!(previous.is_some(), layer > 1, "previous layer given iff layer > 1");
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    if config.producers == 0 {
        super::label::label_layer(cache, replica_id, layer, previous, out);
        progress(n as u64);
        return Ok(());
    }
    let lookahead = config.lookahead.max(1);
    let current = PublishedLayer::new(out);
    let ring = Ring::new(lookahead);
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);

    std::thread::scope(|s| {
        for _ in 0..config.producers {
            s.spawn(|| {
                let backoff = Backoff::new();
                loop {
                    let v = next.fetch_add(1, Ordering::Relaxed);
                    if v >= n as u64 {
                        return;
                    }
                    // Wait for the slot: node v − lookahead must be published.
                    backoff.reset();
                    while (current.published() as u64) + (lookahead as u64) <= v {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        wait(&backoff);
                    }
                    let idx = cache.parents(v as u32);
                    let mut labels = [[0u8; 32]; DEGREE];
                    let mut mask = 0u8;
                    for i in 0..BASE_DEGREE {
                        if let Some(l) = current.get(idx[i] as usize) {
                            labels[i] = l;
                            mask |= 1 << i;
                        }
                    }
                    if let Some(prev) = previous {
                        for i in BASE_DEGREE..DEGREE {
                            labels[i] = prev[idx[i] as usize];
                        }
                    }
                    // SAFETY: `v` was claimed by this producer alone (fetch_add), and the wait
                    // above observed node v − lookahead published.
                    unsafe { ring.fill(v, labels, mask) };
                }
            });
        }

        let result = (|| {
            let backoff = Backoff::new();
            for v in 0..n {
                backoff.reset();
                while !ring.is_ready(v as u64) {
                    wait(&backoff);
                }
                // SAFETY: this thread is the only consumer; the slot is ready and `v` is
                // not yet published.
                let (mut labels, mask) = unsafe { ring.take(v as u64) };
                let label = if v == 0 {
                    label_first_node(replica_id, layer)
                } else {
                    if mask != (1 << BASE_DEGREE) - 1 {
                        let idx = cache.parents(v as u32);
                        for i in (0..BASE_DEGREE).filter(|i| mask & (1 << i) == 0) {
                            labels[i] = current.get(idx[i] as usize).expect("base parents precede the node");
                        }
                    }
                    label_node(replica_id, layer, v as u64, &labels)
                };
                // SAFETY: the consumer is the only publisher and publishes 0, 1, 2, ... in order.
                unsafe { current.publish(v, label) };
                if (v + 1) % CHECK_INTERVAL == 0 {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(Error::Cancelled);
                    }
                    progress((v + 1) as u64);
                }
            }
            progress(n as u64);
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        result
    })
}
