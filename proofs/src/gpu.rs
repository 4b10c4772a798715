//! The GPUs this process proves on, and their exclusive use.
//!
//! A build without the `gpu` feature has none. A `gpu` build finds NVIDIA
//! GPUs through CUDA at first use; [`disable`] (`--no-gpu`) makes it find
//! none. Work that would use a GPU asks for a [`GpuLease`]: an exclusive lock
//! on the device, held across processes (a `flock` on a file per device in the
//! temporary directory, so a daemon and a worker on one box share it too), and
//! granted only where the device has the memory the work needs. Without one,
//! the work runs on the CPU.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// One GPU as workers advertise it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// The device's name, e.g. "NVIDIA H200".
    pub name: String,
    /// Its memory in bytes.
    pub memory_bytes: u64,
}

static DISABLED: AtomicBool = AtomicBool::new(false);

/// Makes this process use no GPU from now on (`--no-gpu`).
pub fn disable() {
    set_enabled(false);
}

/// Turns this process's use of GPUs off or back on (for side-by-side runs).
pub fn set_enabled(on: bool) {
    DISABLED.store(!on, Ordering::Relaxed);
}

/// Whether this binary was built with CUDA proving.
pub const fn built() -> bool {
    cfg!(feature = "gpu")
}

/// The GPUs this process may use: none without the `gpu` feature, after
/// [`disable`], or where CUDA finds none.
pub fn devices() -> Vec<GpuInfo> {
    if DISABLED.load(Ordering::Relaxed) {
        return Vec::new();
    }
    cuda::devices()
}

/// What a GPU C2 of a `size` sector needs on the device: the FFT's three
/// evaluation vectors of the domain, plus room for the multiexp's windows
/// (bellperson sizes its multiexp chunks to the memory it finds).
pub fn c2_memory_needed(size: crate::SectorSize) -> u64 {
    use crate::SectorSize::*;
    // Constraints per partition rounded up to a power of two (params-table.md §5).
    let domain: u64 = match size {
        KiB2 | MiB8 => 1 << 22,
        MiB512 => 1 << 23,
        GiB32 => 1 << 27,
        GiB64 => 1 << 28,
    };
    3 * domain * 32 + (512 << 20)
}

/// What hashing tree rows in batches of `batch` preimages of `arity` needs.
pub fn tree_memory_needed(arity: usize, batch: usize) -> u64 {
    ((arity as u64 + 1) * batch as u64 * 32) * 2 + (256 << 20)
}

/// Why a lease was not granted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoGpu {
    /// The build has no CUDA, `--no-gpu` was given, or CUDA found no device.
    #[error("no GPU (built without `gpu`, disabled, or none found)")]
    None,
    /// Every device is smaller than the work needs.
    #[error("no GPU has {need} bytes of memory (largest: {largest})")]
    TooSmall {
        /// Bytes needed.
        need: u64,
        /// The largest device's memory.
        largest: u64,
    },
    /// The lock files could not be opened.
    #[error("GPU lock {path}: {reason}")]
    Lock {
        /// The lock file.
        path: String,
        /// The system error.
        reason: String,
    },
    /// The device is locked, but another program holds its memory.
    #[error("GPU {index} has {free} bytes free, the work needs {need}")]
    Busy {
        /// The device's index.
        index: usize,
        /// Bytes free on it.
        free: u64,
        /// Bytes needed.
        need: u64,
    },
}

/// Exclusive use of GPUs, released on drop.
#[derive(Debug)]
pub struct GpuLease {
    /// The devices held, by index into [`devices`].
    pub indices: Vec<usize>,
    /// Their names, for the log.
    pub names: Vec<String>,
    _locks: Vec<std::fs::File>,
}

/// Waits for exclusive use of one GPU with `need` bytes, the first free one.
pub fn lease_one(need: u64) -> Result<GpuLease, NoGpu> {
    let all = fitting(need)?;
    // Take a free device at once if there is one, else wait on the first.
    for &(index, _) in &all {
        if let Some(lock) = lock(index, false)? {
            return checked(vec![(index, lock)], need);
        }
    }
    let (index, _) = all[0];
    let lock = lock(index, true)?.expect("a blocking lock is granted");
    checked(vec![(index, lock)], need)
}

/// Waits for exclusive use of every GPU with `need` bytes (bellperson's
/// multiexp spreads one proof over all the devices it sees).
pub fn lease_all(need: u64) -> Result<GpuLease, NoGpu> {
    let all = fitting(need)?;
    if all.len() != devices().len() {
        // bellperson would use the small devices too.
        let largest = devices().iter().map(|d| d.memory_bytes).min().unwrap_or(0);
        return Err(NoGpu::TooSmall { need, largest });
    }
    // In index order, so two waiters never hold one each of what the other wants.
    let mut locks = Vec::new();
    for (index, _) in all {
        locks.push((index, lock(index, true)?.expect("a blocking lock is granted")));
    }
    checked(locks, need)
}

fn fitting(need: u64) -> Result<Vec<(usize, GpuInfo)>, NoGpu> {
    let all = devices();
    if all.is_empty() {
        return Err(NoGpu::None);
    }
    let largest = all.iter().map(|d| d.memory_bytes).max().unwrap_or(0);
    let fit: Vec<_> = all.into_iter().enumerate().filter(|(_, d)| d.memory_bytes >= need).collect();
    if fit.is_empty() {
        return Err(NoGpu::TooSmall { need, largest });
    }
    Ok(fit)
}

fn checked(locks: Vec<(usize, std::fs::File)>, need: u64) -> Result<GpuLease, NoGpu> {
    let names = devices();
    for &(index, _) in &locks {
        if let Some(free) = cuda::free_memory(index) {
            if free < need {
                return Err(NoGpu::Busy { index, free, need });
            }
        }
    }
    Ok(GpuLease {
        names: locks.iter().map(|(i, _)| names[*i].name.clone()).collect(),
        indices: locks.iter().map(|(i, _)| *i).collect(),
        _locks: locks.into_iter().map(|(_, f)| f).collect(),
    })
}

/// Locks device `index`: `Ok(None)` when `wait` is false and it is held.
fn lock(index: usize, wait: bool) -> Result<Option<std::fs::File>, NoGpu> {
    let path = std::env::temp_dir().join(format!("kiln-gpu-{index}.lock"));
    let err = |e: std::io::Error| NoGpu::Lock { path: path.display().to_string(), reason: e.to_string() };
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(err)?;
    if wait {
        file.lock().map_err(err)?;
        return Ok(Some(file));
    }
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(err(e)),
    }
}

#[cfg(feature = "gpu")]
mod cuda {
    use super::GpuInfo;
    use ec_gpu_gen::rust_gpu_tools::Device;
    use std::sync::OnceLock;

    fn all() -> &'static [&'static Device] {
        static ALL: OnceLock<Vec<&'static Device>> = OnceLock::new();
        ALL.get_or_init(|| {
            let all = Device::all();
            for (i, d) in all.iter().enumerate() {
                tracing::info!(index = i, name = %d.name(), memory = d.memory(), id = %d.unique_id(), "GPU found");
            }
            if all.is_empty() {
                tracing::info!("built with `gpu`, but CUDA finds no GPU: proving on the CPU");
            }
            all
        })
    }

    pub fn devices() -> Vec<GpuInfo> {
        all().iter().map(|d| GpuInfo { name: d.name(), memory_bytes: d.memory() }).collect()
    }

    pub fn device(index: usize) -> Option<&'static Device> {
        all().get(index).copied()
    }

    /// Free memory of device `index` by `nvidia-smi` (matched by UUID); None
    /// where it cannot tell.
    pub fn free_memory(index: usize) -> Option<u64> {
        let id = device(index)?.unique_id().to_string();
        let out = std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=uuid,memory.free", "--format=csv,noheader,nounits"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|line| {
            let (uuid, free) = line.split_once(',')?;
            let uuid = uuid.trim().trim_start_matches("GPU-");
            (uuid == id).then(|| free.trim().parse::<u64>().ok().map(|mib| mib << 20)).flatten()
        })
    }
}

#[cfg(not(feature = "gpu"))]
mod cuda {
    use super::GpuInfo;

    pub fn devices() -> Vec<GpuInfo> {
        Vec::new()
    }

    pub fn free_memory(_index: usize) -> Option<u64> {
        None
    }
}

#[cfg(feature = "gpu")]
pub(crate) use cuda::device;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_device_after_disable_and_no_lease_without_one() {
        disable();
        assert!(devices().is_empty());
        assert_eq!(lease_one(1).unwrap_err(), NoGpu::None);
        assert_eq!(lease_all(1).unwrap_err(), NoGpu::None);
        set_enabled(true);
        if !built() {
            assert!(devices().is_empty(), "a CPU build finds no GPU");
        }
    }

    #[test]
    fn a_device_lock_is_exclusive_until_dropped() {
        // An index no machine has, so a real device's lock is not touched.
        let index = 4000 + std::process::id() as usize % 1000;
        let held = lock(index, false).unwrap().expect("free at first");
        assert!(lock(index, false).unwrap().is_none(), "a second holder, even in this process");
        drop(held);
        assert!(lock(index, false).unwrap().is_some(), "free again once dropped");
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("kiln-gpu-{index}.lock")));
    }

    #[test]
    fn memory_estimates_grow_with_the_sector() {
        use crate::SectorSize;
        assert!(c2_memory_needed(SectorSize::KiB2) <= c2_memory_needed(SectorSize::MiB8));
        assert!(c2_memory_needed(SectorSize::MiB8) < c2_memory_needed(SectorSize::MiB512));
        assert!(c2_memory_needed(SectorSize::MiB8) < c2_memory_needed(SectorSize::GiB32));
        // 32GiB: a 2^27-point domain, three vectors of it.
        assert!(c2_memory_needed(SectorSize::GiB32) > 12 << 30);
    }
}
