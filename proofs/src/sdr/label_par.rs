//! The single-sector labeler: producers gather parents, one consumer hashes.
//!
//! Labels within a layer form a chain (node `v` needs `v − 1`), so hashing a
//! sector stays on one thread, and that thread does nothing else: 19 SHA-256
//! blocks per node, with every parent label already in a slot it reads from
//! its cache. The producers (other cores) do the rest:
//!
//! - A ring of `lookahead` slots; node `v` uses slot `v % lookahead`. Each
//!   slot is its own cache lines: the 14 parent labels, then one line with
//!   the header state, the base parents' indices and the ready flag.
//! - Producers claim nodes in runs of [`CLAIM`] from a shared counter. The
//!   producer of `v` waits until the consumer has published node
//!   `v − lookahead` (the slot is then free), prefetches the parents of a
//!   node [`PREFETCH`] ahead, copies the 8 expander parents (previous layer,
//!   complete) and every base parent already published in this layer,
//!   compresses the header block (it depends on no label), records which base
//!   parents it could not copy, and marks the slot ready for `v`.
//! - The consumer takes nodes in order: it waits for slot `v`, fills the base
//!   parents the producer could not see (all `< v`, written by the consumer
//!   itself, so still in its cache), hashes, and writes label `v`; it
//!   publishes its progress every [`PUBLISH`] nodes and before it waits.
//! - Producer 0 also follows the published labels in order (the caller's
//!   `follow`: the layer digest and early write-back), off the hashing thread.
//!
//! Publishing is a release store of the count of finished nodes; producers read
//! a label only after an acquire load shows it finished, and finished labels
//! are never written again. That is the whole memory-ordering argument, and the
//! two shared types below enforce it. Counters written by different threads
//! sit on different cache lines.

#![allow(unsafe_code)]

use super::kernel::{Backend, Kernel};
use super::label::label_first_node;
use super::parent_cache::ParentCache;
use crate::error::{Error, Result};
use crate::ids::ReplicaId;
use crate::merkle::store::prefault_for_write;
use crate::shape::{BASE_DEGREE, DEGREE};
use crossbeam_utils::{Backoff, CachePadded};
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Tuning of the labeler, passed in by the caller (never read from the environment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelingConfig {
    /// Producer threads gathering parents for one sector's hashing thread; 0 selects the
    /// single-threaded reference labeler.
    pub producers: usize,
    /// Hashing threads of a batch of sectors; 0 means one per core.
    pub batch_threads: usize,
    /// Nodes the producers may run ahead of the consumer.
    pub lookahead: usize,
    /// The SHA-256 backend: `None` picks the fastest this CPU runs.
    pub backend: Option<Backend>,
    /// Label layers in memory and write the files from there (`Some(true)`), or
    /// straight into mapped files (`Some(false)`); `None` takes memory when two
    /// layers of every sector labeled together fit in half the available memory.
    pub in_memory: Option<bool>,
}

impl Default for LabelingConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            producers: (cores.saturating_sub(1)).clamp(1, 4),
            batch_threads: 0,
            lookahead: 512,
            backend: None,
            in_memory: None,
        }
    }
}

impl LabelingConfig {
    /// The plain single-threaded reference labeler.
    pub fn reference() -> Self {
        Self {
            producers: 0,
            batch_threads: 1,
            lookahead: 1,
            backend: Some(Backend::Portable),
            in_memory: None,
        }
    }

    /// Hashing threads of a batch.
    pub fn batch_threads(&self) -> usize {
        match self.batch_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The kernel this configuration runs.
    pub fn kernel(&self) -> Kernel {
        match self.backend {
            Some(Backend::Portable) => Kernel::portable(),
            // SHA-NI is used only where the CPU has it, whatever was asked for.
            Some(Backend::ShaNi) | None => Kernel::detect(),
        }
    }
}

/// Nodes between cancellation checks and progress reports.
pub(crate) const CHECK_INTERVAL: usize = 1 << 16;
/// Nodes a producer claims at once.
const CLAIM: u64 = 8;
/// Nodes between the consumer's progress stores (it also publishes whenever it
/// has to wait, so a lookahead below this cannot stall the producers).
const PUBLISH: usize = 16;
/// How far ahead of the node it gathers a producer prefetches parents.
const PREFETCH: u64 = 16;
/// Labels producer 0 hands to `follow` at once (8 KiB): small, so that following
/// (hashing, decoding) never keeps it from the gathering for long.
const FOLLOW_CHUNK: usize = 256;

/// How far ahead of the nodes it gathers producer 0 faults in the layer's pages,
/// and in what steps (so the hashing thread never takes a page fault).
const PREFAULT_AHEAD: u64 = 1 << 15;
const PREFAULT_STEP: u64 = 1 << 11;

/// Receives a layer's labels in order, in runs, while the layer is labeled.
pub type Follow<'a> = dyn FnMut(&[[u8; 32]]) -> Result<()> + Send + 'a;

/// Hints the CPU to bring the line holding `p` into its caches.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The layer being written: one writer appends in order, any thread may read
/// what has been published.
struct PublishedLayer<'a> {
    ptr: *mut [u8; 32],
    len: usize,
    done: CachePadded<AtomicUsize>,
    _buffer: PhantomData<&'a mut [[u8; 32]]>,
}

// SAFETY: all access goes through `write`/`publish` (single writer, each index written
// once, before it is published) and `get`/`published_prefix` (reads only published
// indices), which together make concurrent use data-race free.
unsafe impl Sync for PublishedLayer<'_> {}

impl<'a> PublishedLayer<'a> {
    fn new(buffer: &'a mut [[u8; 32]]) -> Self {
        Self {
            ptr: buffer.as_mut_ptr(),
            len: buffer.len(),
            done: CachePadded::new(AtomicUsize::new(0)),
            _buffer: PhantomData,
        }
    }

    /// Writes label `index` (not yet visible to other threads).
    ///
    /// # Safety
    /// Only the single writer calls this, with each index once, in increasing order,
    /// and only indices not yet published.
    #[inline]
    unsafe fn write(&self, index: usize, label: [u8; 32]) {
        assert!(index < self.len, "write past the end of the layer");
        // SAFETY: `index < len` is in the buffer; no reader touches it until it is
        // published, and no other writer exists (caller's contract).
        unsafe { self.ptr.add(index).write(label) };
    }

    /// A label the writer wrote itself (published or not).
    ///
    /// # Safety
    /// Only the writer calls this, for an index it has written.
    #[inline]
    unsafe fn own(&self, index: usize) -> [u8; 32] {
        debug_assert!(index < self.len);
        // SAFETY: written by this same thread (caller's contract), never written again.
        unsafe { self.ptr.add(index).read() }
    }

    /// Makes labels `..count` visible to other threads.
    ///
    /// # Safety
    /// Only the writer calls this, after writing every index below `count`.
    #[inline]
    unsafe fn publish(&self, count: usize) {
        self.done.store(count, Ordering::Release);
    }

    /// The label at `index` if it has been published.
    #[inline]
    fn get(&self, index: usize, published: usize) -> Option<[u8; 32]> {
        if index < published {
            // SAFETY: `published` came from an acquire load of `done` (the callers pass
            // `self.published()`); published indices are in bounds and never written again.
            Some(unsafe { self.ptr.add(index).read() })
        } else {
            None
        }
    }

    /// Faults in the pages of labels `from..to` for writing (clamped to the layer).
    fn prefault(&self, from: usize, to: usize) {
        let (from, to) = (from.min(self.len), to.min(self.len));
        if from < to {
            // SAFETY: labels `from..to` are inside the buffer, which this layer may write;
            // prefaulting changes no byte.
            unsafe { prefault_for_write(self.ptr.add(from).cast(), (to - from) * 32) };
        }
    }

    /// The address of label `index` (for prefetching; not dereferenced).
    fn address(&self, index: usize) -> *const [u8; 32] {
        self.ptr.wrapping_add(index.min(self.len.saturating_sub(1)))
    }

    fn published(&self) -> usize {
        self.done.load(Ordering::Acquire)
    }

    /// Labels `from..to`, all published.
    fn published_range(&self, from: usize, to: usize) -> &[[u8; 32]] {
        assert!(from <= to && to <= self.published(), "range not published");
        // SAFETY: every index below `published()` (acquire) is written and never written
        // again, so a shared view of them cannot race.
        unsafe { std::slice::from_raw_parts(self.ptr.add(from), to - from) }
    }
}

/// What a slot's last cache line holds besides the labels.
#[repr(C)]
struct SlotMeta {
    /// SHA-256 state after the node's header block.
    header: [u32; 8],
    /// The base parents' indices.
    base: [u32; BASE_DEGREE],
    /// Bit `i` set: base parent `i` was not published when gathered.
    missing: u8,
}

/// One prefetch slot: eight cache lines.
#[repr(C, align(64))]
struct Slot {
    parents: UnsafeCell<[[u8; 32]; DEGREE]>,
    meta: UnsafeCell<SlotMeta>,
    /// `node + 1` once the slot holds `node`'s parents; 0 before the first fill.
    ready: AtomicU32,
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
            .map(|_| Slot {
                parents: UnsafeCell::new([[0; 32]; DEGREE]),
                meta: UnsafeCell::new(SlotMeta { header: [0; 8], base: [0; BASE_DEGREE], missing: 0 }),
                ready: AtomicU32::new(0),
            })
            .collect();
        Self { slots }
    }

    fn slot(&self, node: u64) -> &Slot {
        &self.slots[node as usize % self.slots.len()]
    }

    /// Fills the slot of `node` in place with `fill`.
    ///
    /// # Safety
    /// The caller is the only producer of `node`, and the consumer has published every
    /// node up to `node − lookahead`.
    unsafe fn fill(&self, node: u64, fill: impl FnOnce(&mut [[u8; 32]; DEGREE], &mut SlotMeta)) {
        let slot = self.slot(node);
        // SAFETY: by the caller's contract nobody else accesses this slot now.
        unsafe { fill(&mut *slot.parents.get(), &mut *slot.meta.get()) };
        slot.ready.store(node as u32 + 1, Ordering::Release);
    }

    /// Whether the slot of `node` has been filled for it.
    #[inline]
    fn is_ready(&self, node: u64) -> bool {
        self.slot(node).ready.load(Ordering::Acquire) == node as u32 + 1
    }

    /// The slot of `node`, for the consumer.
    ///
    /// # Safety
    /// Only the consumer calls this, after `is_ready(node)` returned true, and drops the
    /// references before publishing `node`.
    #[inline]
    unsafe fn take(&self, node: u64) -> (&[[u8; 32]; DEGREE], &SlotMeta) {
        let slot = self.slot(node);
        // SAFETY: the producer finished with the slot (ready, acquire) and cannot reuse it
        // until `node` is published (caller's contract).
        unsafe { (&*slot.parents.get(), &*slot.meta.get()) }
    }

    fn prefetch(&self, node: u64) {
        let slot = self.slot(node);
        for line in 0..8 {
            prefetch((slot as *const Slot).cast::<u8>().wrapping_add(line * 64));
        }
    }
}

fn wait(backoff: &Backoff) {
    if backoff.is_completed() {
        std::thread::sleep(Duration::from_micros(20));
    } else {
        backoff.snooze();
    }
}

/// Labels one layer with `config.producers` gathering threads. Gives the same
/// bytes as [`super::label::label_layer`]. `progress` is called with the number
/// of finished nodes every 2^16 nodes and at the end; `cancel` is checked as
/// often. `follow` receives every label in order, in runs (on a producer while
/// the layer is labeled, the tail on the calling thread).
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
    follow: &mut Follow<'_>,
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
        return follow(out);
    }
    let kernel = config.kernel();
    let lookahead = config.lookahead.max(1);
    let current = PublishedLayer::new(out);
    let ring = Ring::new(lookahead);
    let next = CachePadded::new(AtomicU64::new(0));
    let stop = AtomicBool::new(false);
    let followed = AtomicUsize::new(0);

    let result = std::thread::scope(|s| {
        let mut follow_slot = Some(&mut *follow);
        let mut producers = Vec::new();
        for _ in 0..config.producers {
            let mut follow = follow_slot.take();
            let first_producer = follow.is_some();
            let (current, ring, next, stop, followed) = (&current, &ring, &next, &stop, &followed);
            producers.push(s.spawn(move || -> Result<()> {
                let mut done_following = 0usize;
                let mut prefaulted = 0u64;
                let mut follow_some =
                    |published: usize, follow: &mut Option<&mut Follow<'_>>| -> Result<()> {
                        if let Some(f) = follow.as_mut() {
                            if published >= done_following + FOLLOW_CHUNK {
                                f(current.published_range(done_following, published))?;
                                done_following = published;
                                followed.store(published, Ordering::Relaxed);
                            }
                        }
                        Ok(())
                    };
                let backoff = Backoff::new();
                loop {
                    let first = next.fetch_add(CLAIM, Ordering::Relaxed);
                    if first >= n as u64 {
                        return Ok(());
                    }
                    while first_producer && prefaulted < (first + PREFAULT_AHEAD).min(n as u64) {
                        current.prefault(prefaulted as usize, (prefaulted + PREFAULT_STEP) as usize);
                        prefaulted += PREFAULT_STEP;
                    }
                    for v in first..(first + CLAIM).min(n as u64) {
                        // Wait for the slot: node v − lookahead must be published.
                        backoff.reset();
                        let mut published = current.published();
                        while published as u64 + lookahead as u64 <= v {
                            if stop.load(Ordering::Relaxed) {
                                return Ok(());
                            }
                            follow_some(published, &mut follow)?;
                            wait(&backoff);
                            published = current.published();
                        }
                        if v + PREFETCH < n as u64 {
                            let ahead = cache.parents((v + PREFETCH) as u32);
                            for &p in &ahead[..BASE_DEGREE] {
                                prefetch(current.address(p as usize));
                            }
                            if let Some(prev) = previous {
                                for &p in &ahead[BASE_DEGREE..] {
                                    prefetch(prev.as_ptr().wrapping_add(p as usize));
                                }
                            }
                        }
                        let idx = cache.parents(v as u32);
                        let [header] = kernel.header_states([replica_id], layer, v);
                        // SAFETY: `v` was claimed by this producer alone (fetch_add), and the
                        // wait above observed node v − lookahead published.
                        unsafe {
                            ring.fill(v, |labels, meta| {
                                meta.header = header;
                                meta.missing = 0;
                                for i in 0..BASE_DEGREE {
                                    meta.base[i] = idx[i];
                                    match current.get(idx[i] as usize, published) {
                                        Some(l) => labels[i] = l,
                                        None => meta.missing |= 1 << i,
                                    }
                                }
                                if let Some(prev) = previous {
                                    for i in BASE_DEGREE..DEGREE {
                                        labels[i] = prev[idx[i] as usize];
                                    }
                                }
                            })
                        };
                    }
                    follow_some(current.published(), &mut follow)?;
                }
            }));
        }

        let consumed = (|| {
            let backoff = Backoff::new();
            let mut published = 0;
            for v in 0..n {
                if !ring.is_ready(v as u64) {
                    // Producers may be waiting for a slot this thread has not published yet.
                    // SAFETY: every index below `v` is written.
                    unsafe { current.publish(v) };
                    published = v;
                    backoff.reset();
                    while !ring.is_ready(v as u64) {
                        wait(&backoff);
                    }
                }
                ring.prefetch(v as u64 + 2);
                let label = if v == 0 {
                    label_first_node(replica_id, layer)
                } else {
                    // SAFETY: this thread is the only consumer; the slot is ready and `v` is
                    // not yet published; the references end with this block.
                    let (gathered, meta) = unsafe { ring.take(v as u64) };
                    let mut labels = *gathered;
                    let mut missing = meta.missing;
                    while missing != 0 {
                        let i = missing.trailing_zeros() as usize;
                        // SAFETY: base parents precede `v` and this thread wrote all of them.
                        labels[i] = unsafe { current.own(meta.base[i] as usize) };
                        missing &= missing - 1;
                    }
                    kernel.label(&meta.header, &labels, layer)
                };
                // SAFETY: the consumer is the only writer and writes 0, 1, 2, ... in order.
                unsafe { current.write(v, label) };
                if v + 1 - published >= PUBLISH {
                    // SAFETY: every index up to `v` is written.
                    unsafe { current.publish(v + 1) };
                    published = v + 1;
                }
                if (v + 1) % CHECK_INTERVAL == 0 {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(Error::Cancelled);
                    }
                    progress((v + 1) as u64);
                    // The producers are past these nodes.
                    cache.release_before((v + 1 - CHECK_INTERVAL) as u32);
                }
            }
            // SAFETY: every index is written.
            unsafe { current.publish(n) };
            Ok(())
        })();
        if consumed.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let mut result = consumed;
        for p in producers {
            let joined = p.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if result.is_ok() {
                result = joined;
            }
        }
        result
    });
    result?;
    // Whatever producer 0 had not followed yet, on this thread.
    progress(n as u64);
    follow(current.published_range(followed.load(Ordering::Relaxed), n))
}
