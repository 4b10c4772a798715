//! The memory-map fence: the only module that maps files.
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
    _file: File,
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
        Ok(Self { path: path.to_path_buf(), map, _file: file })
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

    /// The file's bytes, read-only.
    pub fn bytes(&self) -> &[u8] {
        &self.map
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
