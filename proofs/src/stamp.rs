//! Stamps: what was true of a file (device, inode, size, modification and
//! change times) when its whole content was last verified, and the digest it
//! had then.
//!
//! Hashing a large file on every open costs seconds to minutes (a 32GiB
//! parent cache, a 1 GB parameter file); a file that still matches its stamp
//! is trusted without being read. Any replacement, truncation, rewrite,
//! `touch` or `chmod` changes the stamped facts (the change time cannot be set
//! back from user space) and brings the full check back. What keeps them all
//! (bits rotting on disk, a raw write to the device) is left to the file's own
//! cheaper checks: the parent cache spot-checks nodes against the graph, the
//! prover checks that every parameter point it decodes is on the curve.

use crate::durable;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tracing::warn;

/// Format of the stamp file; a stamp of another version is ignored.
const VERSION: u32 = 3;

/// The stamp of one file, kept beside it as `<name>.stamp` (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    version: u32,
    device: u64,
    inode: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    digest: String,
}

impl Stamp {
    /// The stamp `file` would get now for `digest`; `None` where the platform
    /// has no inode numbers (files are then always checked in full).
    #[cfg(unix)]
    pub fn of(meta: &std::fs::Metadata, digest: &str) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(Self {
            version: VERSION,
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            digest: digest.to_string(),
        })
    }

    /// See the unix version.
    #[cfg(not(unix))]
    pub fn of(_meta: &std::fs::Metadata, _digest: &str) -> Option<Self> {
        None
    }

    /// The digest the file had when stamped.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Where the stamp of `file` is kept.
    pub fn path(file: &Path) -> PathBuf {
        let mut name = file.file_name().unwrap_or_default().to_os_string();
        name.push(".stamp");
        file.with_file_name(name)
    }

    /// The recorded stamp of `file`, if any and readable.
    pub fn read(file: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(Self::path(file)).ok()?).ok()
    }

    /// The digest recorded for `file` if its stamp still matches it.
    pub fn digest_if_unchanged(file: &Path, meta: &std::fs::Metadata) -> Option<String> {
        let stamp = Self::read(file)?;
        (Self::of(meta, &stamp.digest).as_ref() == Some(&stamp)).then_some(stamp.digest)
    }

    /// Records the stamp; a failure (a read-only directory) is only logged: the
    /// next open checks the file in full again.
    pub fn write(&self, file: &Path) {
        let json = serde_json::to_vec(self).expect("a stamp serialises");
        if let Err(e) = durable::write_file(&Self::path(file), &json) {
            warn!(path = %file.display(), "file verified but not stamped: {e}");
        }
    }

    /// Drops the stamp of `file`, if any.
    pub fn remove(file: &Path) {
        let _ = std::fs::remove_file(Self::path(file));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_holds_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"content").unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(Stamp::digest_if_unchanged(&file, &meta), None, "no stamp yet");
        Stamp::of(&meta, "d1").unwrap().write(&file);
        assert_eq!(Stamp::digest_if_unchanged(&file, &meta).as_deref(), Some("d1"));
        std::fs::write(&file, b"content, longer").unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(Stamp::digest_if_unchanged(&file, &meta), None, "size and mtime changed");
        Stamp::of(&meta, "d2").unwrap().write(&file);
        assert_eq!(Stamp::digest_if_unchanged(&file, &meta).as_deref(), Some("d2"));
        let mut perms = meta.permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&file, perms).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(Stamp::digest_if_unchanged(&file, &meta), None, "chmod changed the change time");
        std::fs::write(Stamp::path(&file), b"{not json").unwrap();
        assert_eq!(Stamp::digest_if_unchanged(&file, &meta), None, "unreadable stamp");
        Stamp::remove(&file);
        assert!(!Stamp::path(&file).exists());
    }
}
