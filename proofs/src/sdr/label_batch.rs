//! The batch labeler: several sectors of one size labeled together, for
//! throughput.
//!
//! All sectors of a size share one graph, so node `v` has the same parents in
//! every sector of the batch: each hashing thread reads the parent indices
//! once and gathers the labels of its sectors from them, then hashes its
//! sectors' node `v` as interleaved SHA-256 streams ([`Kernel::labels`]). The
//! rounds of one stream are latency-bound, so the other streams fill the gaps.
//!
//! Every core hashes; there are no producer threads. Each thread owns its
//! sectors' layers outright (a `&mut` slice each), reads base parents from its
//! own output and expander parents from the previous layers, and so needs no
//! synchronisation and no `unsafe`. It prefetches the parents of a node
//! [`PREFETCH`] ahead to hide memory latency on large sectors.

use super::kernel::{Kernel, MAX_STREAMS};
use super::label::label_first_node;
use super::label_par::{prefetch, Follow, CHECK_INTERVAL};
use super::parent_cache::ParentCache;
use crate::error::{Error, Result};
use crate::ids::ReplicaId;
use crate::shape::{BASE_DEGREE, DEGREE};
use std::sync::atomic::{AtomicBool, Ordering};

/// How far ahead of the node it hashes a thread prefetches parents.
const PREFETCH: usize = 8;
/// Labels handed to a sector's `follow` at once (1 MiB).
const FOLLOW_CHUNK: usize = 1 << 15;

/// One sector of a batch, for one layer.
pub struct BatchSector<'a, 'f> {
    /// The sector's replica id.
    pub replica_id: ReplicaId,
    /// The sector's previous layer (None in layer 1).
    pub previous: Option<&'a [[u8; 32]]>,
    /// Receives the layer.
    pub out: &'a mut [[u8; 32]],
    /// Receives the labels in order, in runs, as they are finished (on the hashing thread).
    pub follow: &'a mut Follow<'f>,
}

/// The most sectors one call labels: [`MAX_STREAMS`] per thread.
pub fn max_width(threads: usize) -> usize {
    threads.max(1) * MAX_STREAMS
}

/// Labels `layer` of every sector in `sectors` (at most [`max_width`]`(threads)`) on
/// `threads` hashing threads; each sector's bytes are those of
/// [`super::label::label_layer`]. `progress` is called with the nodes done every 2^16
/// nodes and at the end; `cancel` is checked as often.
pub fn label_layer_batch(
    cache: &ParentCache,
    kernel: Kernel,
    layer: u32,
    sectors: &mut [BatchSector<'_, '_>],
    threads: usize,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let n = cache.num_nodes() as usize;
    for s in sectors.iter() {
        assert_eq!(s.out.len(), n, "layer buffer size");
        assert_eq!(s.previous.is_some(), layer > 1, "previous layer given iff layer > 1");
        assert!(s.previous.is_none_or(|p| p.len() == n), "previous layer size");
    }
    assert!(sectors.len() <= max_width(threads), "{} sectors in one batch call", sectors.len());
    if sectors.is_empty() {
        return Ok(());
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    // Split into at most `threads` groups, as even as possible.
    let groups = threads.clamp(1, sectors.len());
    let mut rest = sectors;
    let mut parts = Vec::with_capacity(groups);
    for g in 0..groups {
        let size = rest.len() / (groups - g);
        let (part, tail) = rest.split_at_mut(size);
        parts.push(part);
        rest = tail;
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut parts = parts.into_iter();
        let first = parts.next().expect("at least one group");
        for part in parts {
            let stop = &stop;
            handles.push(scope.spawn(move || label_group(cache, kernel, layer, part, stop, &mut |_| Ok(()))));
        }
        let mut report = |done: usize| -> Result<()> {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            progress(done as u64);
            // Every thread is about as far: keep a margin for the slowest.
            cache.release_before(done.saturating_sub(2 * CHECK_INTERVAL) as u32);
            Ok(())
        };
        let mut result = label_group(cache, kernel, layer, first, &stop, &mut report);
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        for h in handles {
            let joined = h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if result.is_ok() {
                result = joined;
            }
        }
        result
    })?;
    progress(n as u64);
    Ok(())
}

/// One thread's share of a batch, at its run-time width.
fn label_group(
    cache: &ParentCache,
    kernel: Kernel,
    layer: u32,
    group: &mut [BatchSector<'_, '_>],
    stop: &AtomicBool,
    report: &mut dyn FnMut(usize) -> Result<()>,
) -> Result<()> {
    macro_rules! width {
        ($($k:literal)*) => {
            match group.len() {
                $($k => label_streams::<$k>(cache, kernel, layer, group, stop, report),)*
                k => unreachable!("{k} streams in one group"),
            }
        };
    }
    width!(1 2 3 4 5 6 7 8)
}

/// Labels `K` sectors' layer on this thread, node by node, `K` streams at a time.
fn label_streams<const K: usize>(
    cache: &ParentCache,
    kernel: Kernel,
    layer: u32,
    group: &mut [BatchSector<'_, '_>],
    stop: &AtomicBool,
    report: &mut dyn FnMut(usize) -> Result<()>,
) -> Result<()> {
    let n = cache.num_nodes() as usize;
    let group: &mut [BatchSector<'_, '_>; K] = group.try_into().expect("group of K sectors");
    let replica_ids: [ReplicaId; K] = std::array::from_fn(|s| group[s].replica_id);
    for s in group.iter_mut() {
        s.out[0] = label_first_node(&s.replica_id, layer);
    }
    let mut followed = 0usize;
    let mut parents = [[[0u8; 32]; DEGREE]; K];
    for v in 1..n {
        if v + PREFETCH < n {
            let ahead = cache.parents((v + PREFETCH) as u32);
            for s in group.iter() {
                for &p in &ahead[..BASE_DEGREE] {
                    prefetch(s.out.as_ptr().wrapping_add(p as usize));
                }
                if let Some(prev) = s.previous {
                    for &p in &ahead[BASE_DEGREE..] {
                        prefetch(prev.as_ptr().wrapping_add(p as usize));
                    }
                }
            }
        }
        let idx = cache.parents(v as u32);
        for (s, sector) in group.iter().enumerate() {
            for i in 0..BASE_DEGREE {
                parents[s][i] = sector.out[idx[i] as usize];
            }
            if let Some(prev) = sector.previous {
                for i in BASE_DEGREE..DEGREE {
                    parents[s][i] = prev[idx[i] as usize];
                }
            }
        }
        let headers = kernel.header_states::<K>(std::array::from_fn(|s| &replica_ids[s]), layer, v as u64);
        let labels = kernel.labels::<K>(
            std::array::from_fn(|s| super::kernel::LabelJob { header: &headers[s], parents: &parents[s] }),
            layer,
        );
        for (sector, label) in group.iter_mut().zip(labels) {
            sector.out[v] = label;
        }
        if (v + 1) % FOLLOW_CHUNK == 0 {
            for sector in group.iter_mut() {
                (sector.follow)(&sector.out[followed..v + 1])?;
            }
            followed = v + 1;
        }
        if (v + 1) % CHECK_INTERVAL == 0 {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            report(v + 1)?;
        }
    }
    for sector in group.iter_mut() {
        (sector.follow)(&sector.out[followed..n])?;
    }
    Ok(())
}
