//! Where the driver keeps things in the data directory (the full layout is in
//! `daemon`'s documentation).

use super::PipelineConfig;
use proofs::seal::SectorDir;
use std::path::{Path, PathBuf};

impl PipelineConfig {
    /// The SQLite database (sectors and the embedded chain).
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("kiln.db")
    }
    /// The parent of every sector's directory.
    pub fn sectors_dir(&self) -> PathBuf {
        self.data_dir.join("sectors")
    }
    /// Sector `number`'s directory.
    pub fn sector_dir(&self, number: u64) -> SectorDir {
        SectorDir::new(self.sectors_dir().join(number.to_string()))
    }
    /// Where sector `number`'s proof is kept between C2 and the landed ProveCommit.
    pub fn proof_path(&self, number: u64) -> PathBuf {
        self.data_dir.join("proofs").join(format!("{number}.proof"))
    }
    /// Where workers' results are kept between delivery and judgement.
    pub fn task_results_dir(&self) -> PathBuf {
        self.data_dir.join("results")
    }
    /// A new file for a delivery of task `id`'s result: named apart from
    /// any other delivery of it, so one refused removes only its own file.
    pub fn new_task_result_path(&self, id: u64) -> PathBuf {
        self.task_results_dir().join(format!("{id}.{:016x}.result", rand::random::<u64>()))
    }
    /// The daemon's copies of data pieces.
    pub fn pieces_dir(&self) -> PathBuf {
        self.data_dir.join("pieces")
    }
    /// Where a recorded piece copy is now: its file in [`Self::pieces_dir`]. The
    /// record's own path is where the copy was made; a data directory that was
    /// moved, or is reached through a symlink or a relative path, finds it by name.
    pub fn piece_copy(&self, recorded: &Path) -> PathBuf {
        match recorded.file_name() {
            Some(name) => self.pieces_dir().join(name),
            None => recorded.to_path_buf(),
        }
    }
}

/// Removes a file or a directory tree; one already gone is fine.
pub(crate) fn remove_path(path: &Path) -> Result<(), String> {
    let r = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", path.display())),
    }
}
