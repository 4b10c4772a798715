//! Crash-safe file writes: a reader after a crash sees the old file or the new
//! one, never a torn mix.
//!
//! The protocol is the classic one: write a temporary sibling, fsync it, rename
//! it over the target, fsync the directory so the rename itself is durable.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary sibling used while `path` is being replaced.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// A new file next to `path` with a random name, created exclusively and
/// readable by the owner only: a temporary for output that goes where other
/// users may write (an operator's `--out`), where a predictable name could be
/// pre-created as a symlink.
pub fn create_unique_temp(path: &Path) -> Result<(PathBuf, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{:016x}.tmp", rand::random::<u64>()));
    let tmp = path.with_file_name(name);
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(Error::io("create", &tmp))?;
    Ok((tmp, file))
}

/// The directory holding `path`: `.` for a bare file name (whose `parent()` is empty).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Syncs a directory so that renames and creations inside it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("sync directory", dir))
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
pub fn available_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| Error::Malformed {
        path: dir.to_path_buf(),
        reason: "the path holds a NUL byte".into(),
    })?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path that outlives the call, and statvfs
    // writes at most one `statvfs` into the buffer we own; it is read only on success.
    #[allow(unsafe_code)]
    let stat = unsafe {
        if libc::statvfs(c.as_ptr(), stat.as_mut_ptr()) != 0 {
            return Err(Error::io("stat the file system of", dir)(std::io::Error::last_os_error()));
        }
        stat.assume_init()
    };
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Syncs a file's content and metadata to disk.
pub fn sync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).map_err(Error::io("sync", path))
}

/// Renames `from` over `to` and makes the rename durable.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(Error::io("rename into place", to))?;
    sync_dir(parent_dir(to))
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all(bytes).map_err(Error::io("write", &tmp))?;
    f.sync_all().map_err(Error::io("sync", &tmp))?;
    drop(f);
    rename(&tmp, path)
}

/// Creates a directory (and parents) and makes its entry durable.
pub fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_and_a_missing_directory_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(available_bytes(tmp.path()).unwrap() > 0);
        let missing = tmp.path().join("gone");
        let e = available_bytes(&missing).unwrap_err().to_string();
        assert!(e.contains("gone"), "{e}");
    }

    /// `kiln unseal --out out.bin` renamed into place, then synced the directory "".
    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("out.bin")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/data/out.bin")), Path::new("/data"));
        assert_eq!(parent_dir(Path::new("sub/out.bin")), Path::new("sub"));
        sync_dir(parent_dir(Path::new("out.bin"))).unwrap();
    }

    /// Unseal's output temporary was `OUT.tmp`, opened with `File::create`: a
    /// symlink planted there was followed.
    #[test]
    fn unique_temporaries_are_new_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        std::os::unix::fs::symlink("/dev/null", dir.path().join("out.bin.tmp")).unwrap();
        let (a, _) = create_unique_temp(&out).unwrap();
        let (b, _) = create_unique_temp(&out).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), out.parent());
        assert_eq!(fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(fs::symlink_metadata(&a).unwrap().is_file());
    }
}
