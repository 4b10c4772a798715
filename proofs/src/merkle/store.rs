//! The memory-map fence: the only module that maps files (and anonymous memory).
//!
//! Layers, trees and replicas are far larger than memory for production
//! sectors, so they are worked on through mappings. A mapping is only sound
//! while nobody truncates or rewrites the file behind it; kiln guarantees this
//! for its own processes by holding an advisory lock (`flock`) for the life of
//! each mapping: shared for reading, exclusive for writing, never waiting (a
//! file that is locked is reported as busy instead). Other programs writing a
//! sector's files while kiln works on them are outside that contract, as they
//! are for every sealer.

#![allow(unsafe_code)]

use crate::error::{Error, Result};
use memmap2::{Mmap, MmapMut};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Bytes of one node.
const NODE: usize = 32;

fn lock_error(path: &Path) -> impl FnOnce(std::fs::TryLockError) -> Error + '_ {
    move |e| match e {
        std::fs::TryLockError::WouldBlock => Error::Io {
            op: "lock",
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "file is in use by another kiln task or process",
            ),
        },
        std::fs::TryLockError::Error(source) => Error::Io { op: "lock", path: path.to_path_buf(), source },
    }
}

/// A read-only mapping of a whole file, checked for length on open.
pub struct ReadMap {
    path: PathBuf,
    map: Option<Mmap>,
    // Held for the lock; dropped after the mapping.
    file: File,
}

impl ReadMap {
    /// Maps `path` for reading. With `expected_len`, a file of another length is an
    /// error ([`Error::FileLength`]) and nothing is mapped.
    pub fn open(path: &Path, expected_len: Option<u64>) -> Result<Self> {
        let file = File::open(path).map_err(Error::io("open", path))?;
        file.try_lock_shared().map_err(lock_error(path))?;
        let len = file.metadata().map_err(Error::io("stat", path))?.len();
        if let Some(expected) = expected_len {
            if len != expected {
                return Err(Error::FileLength { path: path.to_path_buf(), expected, found: len });
            }
        }
        // A zero-length mapping is not allowed by mmap(2); an empty file maps to nothing.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the file is held under a shared flock for the life of this value, so no
            // kiln writer (which takes the exclusive lock) can truncate or modify it while the
            // mapping exists; see the module contract for other processes.
            Some(unsafe { Mmap::map(&file) }.map_err(Error::io("map", path))?)
        };
        Ok(Self { path: path.to_path_buf(), map, file })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// The file as 32-byte nodes; a trailing partial node is not included.
    pub fn nodes(&self) -> &[[u8; NODE]] {
        self.bytes().as_chunks::<NODE>().0
    }

    /// The mapped file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops bytes `from..to` of the mapping (page-aligned inward) from this process's
    /// resident set. The pages stay in the page cache and are mapped again by the next
    /// read; for a file read once front to back (the parent cache) the resident set
    /// then stays a window instead of growing to the whole file.
    pub fn release(&self, from: usize, to: usize) {
        let Some(map) = &self.map else { return };
        let (from, to) = (from.min(map.len()), to.min(map.len()));
        if from < to {
            // SAFETY: `from..to` lies in this value's shared, read-only mapping of its file.
            unsafe { release_shared(map.as_ptr().add(from), to - from) };
        }
    }

    /// The mapped file's metadata (of the open file, not of whatever the path names now).
    pub fn metadata(&self) -> Result<std::fs::Metadata> {
        self.file.metadata().map_err(Error::io("stat", &self.path))
    }

    /// Node `v` as a field element, or an error naming the file and the node
    /// (`what` says what the file's nodes are: "label", "node").
    pub fn fr(&self, v: usize, what: &str) -> Result<blstrs::Scalar> {
        crate::poseidon::fr_from_bytes(&self.nodes()[v]).ok_or_else(|| Error::Malformed {
            path: self.path.clone(),
            reason: format!("{what} {v} is not a field element"),
        })
    }
}

/// A writable mapping of a whole file of fixed length.
pub struct WriteMap {
    path: PathBuf,
    map: MmapMut,
    file: File,
}

impl WriteMap {
    /// Creates (or truncates) `path` to `len` bytes of zeros and maps it for writing.
    pub fn create(path: &Path, len: u64) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::io("create", path))?;
        file.try_lock().map_err(lock_error(path))?;
        // Truncate only after the lock is held, so a concurrent reader is never cut short.
        file.set_len(0).map_err(Error::io("truncate", path))?;
        file.set_len(len).map_err(Error::io("resize", path))?;
        Self::map(path, file)
    }

    fn map(path: &Path, file: File) -> Result<Self> {
        // SAFETY: the file is held under an exclusive flock for the life of this value, so no
        // other kiln mapping of it exists; the length was set by us and is not changed while
        // mapped.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(Error::io("map", path))?;
        Ok(Self { path: path.to_path_buf(), map, file })
    }

    /// The file's bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// The file as 32-byte nodes.
    pub fn nodes_mut(&mut self) -> &mut [[u8; NODE]] {
        self.map.as_chunks_mut::<NODE>().0
    }

    /// The file as 32-byte nodes, read-only.
    pub fn nodes(&self) -> &[[u8; NODE]] {
        self.map.as_chunks::<NODE>().0
    }

    /// The file's bytes, read-only.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Fills nodes `range` a window of `window` nodes at a time with
    /// `fill(first_node, nodes)`, dropping each finished window from the resident set
    /// (the file keeps it): a pass over a large file holds one window, not the file.
    pub fn fill_windows(
        &mut self,
        range: std::ops::Range<usize>,
        window: usize,
        mut fill: impl FnMut(usize, &mut [[u8; NODE]]) -> Result<()>,
    ) -> Result<()> {
        let nodes = self.map.as_chunks_mut::<NODE>().0;
        for start in range.clone().step_by(window.max(1)) {
            let part = &mut nodes[start..(start + window.max(1)).min(range.end)];
            fill(start, part)?;
            // SAFETY: `part` lies in this value's shared mapping of its file.
            unsafe { release_shared(part.as_ptr().cast(), std::mem::size_of_val(part)) };
        }
        Ok(())
    }

    /// Writes the mapping back and syncs the file to disk.
    pub fn sync(&self) -> Result<()> {
        self.map.flush().map_err(Error::io("flush", &self.path))?;
        self.file.sync_all().map_err(Error::io("sync", &self.path))
    }

    /// The mapped file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Bytes of memory available to new allocations, from `/proc/meminfo` (Linux).
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Nodes in anonymous memory (zeroed, page-aligned), optionally advised onto
/// transparent huge pages. Huge pages pay where a hashing thread reads a large
/// layer at random itself (batch PC1: 18% more sectors per hour at 512MiB, a TLB
/// miss and its page walk saved per parent read); they do not where a producer
/// gathers with time to spare, since first touch may wait for the kernel's
/// compaction (measured: 1.1 s to populate 512 MiB of huge pages on a fragmented
/// machine, against 0.12 s for 4 KiB pages).
pub struct NodeBuffer {
    map: MmapMut,
}

impl NodeBuffer {
    /// A zeroed buffer of `nodes` nodes, on transparent huge pages if `huge_pages`.
    pub fn new(nodes: u64, huge_pages: bool) -> Result<Self> {
        let len = usize::try_from(nodes * NODE as u64).map_err(|_| Error::Io {
            op: "allocate",
            path: PathBuf::from("(memory)"),
            source: std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                "buffer larger than the address space",
            ),
        })?;
        let map = MmapMut::map_anon(len.max(1)).map_err(Error::io("allocate", "(memory)"))?;
        #[cfg(target_os = "linux")]
        if huge_pages {
            // Only a hint: without huge pages the buffer works the same, slower.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = huge_pages;
        Ok(Self { map })
    }

    /// The buffer as nodes.
    pub fn nodes(&self) -> &[[u8; NODE]] {
        self.map.as_chunks::<NODE>().0
    }

    /// The buffer as nodes, writable.
    pub fn nodes_mut(&mut self) -> &mut [[u8; NODE]] {
        self.map.as_chunks_mut::<NODE>().0
    }
}

/// Drops `[ptr, ptr + len)` (page-aligned inward) of a shared file mapping from
/// this process's resident set (`MADV_DONTNEED`). Dirty pages keep their data: the
/// kernel marks them dirty in the page cache before unmapping them, and a later
/// access maps the file's content again.
///
/// # Safety
/// The range lies inside a live `MAP_SHARED` mapping of a file, never in anonymous
/// or private memory (there the advice would zero it).
unsafe fn release_shared(ptr: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = ptr as usize;
        let (first, last) = (start.next_multiple_of(PAGE), (start + len) / PAGE * PAGE);
        if first < last {
            // SAFETY: inside a shared file mapping (caller's contract): the advice drops page
            // table entries only; the file keeps every byte.
            unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_DONTNEED) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// Faults in the pages of `[ptr, ptr + len)` writable ahead of the writes, in
/// one call instead of one fault per page (Linux `MADV_POPULATE_WRITE`, 5.14+;
/// elsewhere, or where refused, nothing: the writes then fault as usual).
/// Contents are not changed.
///
/// # Safety
/// The range is memory of this process that it may write (a live writable mapping
/// or allocation); another thread may be writing other parts of it.
pub unsafe fn prefault_for_write(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = ptr as usize;
        let (first, last) = (start.next_multiple_of(PAGE), (start + len) / PAGE * PAGE);
        if first < last {
            // SAFETY: [first, last) lies inside the caller's writable range; the advice only
            // populates page tables and never changes a byte, so it races with no writer.
            unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_POPULATE_WRITE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// Starts writing parts of a file back to disk without waiting, so that the
/// sync at the end finds little left to do. Use it on files written with
/// `write`, not through a writable mapping: write-back of mapped pages makes
/// the kernel write-protect them, one TLB shootdown (an interrupt of every
/// other core running this process) per page.
pub struct WriteBack<'a> {
    path: &'a Path,
    file: &'a File,
}

impl<'a> WriteBack<'a> {
    /// Write-back of `file` (opened from `path`).
    pub fn new(path: &'a Path, file: &'a File) -> Self {
        Self { path, file }
    }

    /// Queues bytes `offset..offset + len` for write-back (Linux `sync_file_range`
    /// with `SYNC_FILE_RANGE_WRITE`; elsewhere nothing, the final sync does it all).
    /// Durability still comes only from [`WriteMap::sync`].
    pub fn start(&self, offset: u64, len: u64) -> Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
                return Ok(());
            };
            // SAFETY: a plain syscall on a file descriptor this value borrows (open for its
            // lifetime); it reads no memory of ours.
            let rc = unsafe {
                libc::sync_file_range(self.file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
            };
            if rc != 0 {
                return Err(Error::io("start write-back of", self.path)(std::io::Error::last_os_error()));
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offset, len, self.file, self.path);
        Ok(())
    }
}
