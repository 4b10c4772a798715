//! The proof core's one error type.
//!
//! Every variant names what is wrong and, where a file is involved, which file,
//! so that a caller (the CLI, the sealing pipeline) can report it as it stands
//! or match on it to decide whether to retry.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the proof core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sector size that has no registered V1_1 proof.
    #[error("unsupported sector size {0}: expected one of 2KiB, 8MiB, 512MiB, 32GiB, 64GiB")]
    SectorSize(String),

    /// A piece whose size cannot be placed in a sector.
    #[error("invalid piece size: {0}")]
    PieceSize(String),

    /// Pieces that do not fit into the sector.
    #[error("pieces need {needed} padded bytes but the sector holds {capacity}")]
    PiecesTooLarge {
        /// Padded bytes the pieces occupy, alignment included.
        needed: u64,
        /// The sector size.
        capacity: u64,
    },

    /// A hex string of the wrong length or with non-hex characters.
    #[error("invalid {what}: {reason}")]
    InvalidHex {
        /// Which value was being parsed.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// 32 bytes that are not a canonical BLS12-381 scalar.
    #[error("{what} is not a valid field element (value >= modulus)")]
    NotInField {
        /// Which value was being converted.
        what: String,
    },

    /// A file of the wrong length.
    #[error("{path}: expected {expected} bytes, found {found}")]
    FileLength {
        /// The file.
        path: PathBuf,
        /// The length it must have.
        expected: u64,
        /// The length it has.
        found: u64,
    },

    /// A finished layer file that no longer matches its completion record.
    #[error("{path}: layer {layer} does not match its completion record ({reason}); remove the sector's cache to relabel")]
    LayerCorrupt {
        /// The layer file.
        path: PathBuf,
        /// The layer, 1-based.
        layer: u32,
        /// What differs.
        reason: String,
    },

    /// A sector directory that already holds a different sector.
    #[error("{dir} holds sector {found}, not sector {expected}; use an empty directory")]
    ForeignSector {
        /// The sector directory.
        dir: PathBuf,
        /// The sector the caller asked for.
        expected: String,
        /// The sector the directory's metadata names.
        found: String,
    },

    /// A file whose content is malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The commitment computed from the data differs from the one from the piece list.
    #[error("comm_d from the sector data ({from_data}) differs from comm_d from the pieces ({from_pieces})")]
    CommDMismatch {
        /// Root of tree_d over the staged data.
        from_data: String,
        /// comm_d folded from the piece list.
        from_pieces: String,
    },

    /// A step that needs the output of an earlier step that has not run.
    #[error("{step} needs {missing}; run the earlier phase first")]
    MissingInput {
        /// The step that was asked for.
        step: &'static str,
        /// What it lacks.
        missing: String,
    },

    /// A vanilla or SNARK proof that is malformed or does not verify.
    #[error("invalid proof: {0}")]
    InvalidProof(String),

    /// A C1 output that cannot be decoded.
    #[error("malformed C1 output: {0}")]
    C1Format(String),

    /// A Groth16 parameter file that is missing, unreadable or of the wrong circuit.
    #[error("{path}: {reason}")]
    Params {
        /// The parameter file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A parameter file whose digest is not the one its manifest records.
    #[error("{path}: digest {found} does not match the manifest's {expected}; the file is corrupt or not the published one, delete it and fetch or generate it again")]
    ParamsDigest {
        /// The parameter file.
        path: PathBuf,
        /// Digest in the manifest.
        expected: String,
        /// Digest of the file.
        found: String,
    },

    /// Groth16 synthesis or proving failed.
    #[error("SNARK: {0}")]
    Snark(String),

    /// An operation interrupted by its cancellation flag.
    #[error("cancelled")]
    Cancelled,

    /// A piece's data no longer commits to the comm_p recorded when it was taken in.
    #[error(
        "piece {path} changed since it was added: comm_p recorded {recorded}, its data now gives {found}"
    )]
    CommPMismatch {
        /// The piece file.
        path: std::path::PathBuf,
        /// comm_p recorded at intake.
        recorded: String,
        /// comm_p of the data staged.
        found: String,
    },

    /// A GPU or its driver failed.
    #[error("GPU: {0}")]
    Gpu(String),

    /// An I/O failure on a named file.
    #[error("{op} {path}")]
    Io {
        /// The action that failed ("read", "create", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The sectors of a PC1 batch are not all of one size (one graph, one parent cache).
    #[error("a PC1 batch takes sectors of one size: sector {sector_id} is {found}, the batch is {expected}")]
    MixedBatch {
        /// The sector that does not fit.
        sector_id: u64,
        /// The batch's size.
        expected: String,
        /// That sector's size.
        found: String,
    },

    /// An output path inside the sector directory it is computed from (it
    /// would replace the replica or a cache file).
    #[error("{out} is inside the sector directory {dir}: write the output elsewhere (it would replace a file of the sector)")]
    OutputInSector {
        /// The output path asked for.
        out: PathBuf,
        /// The sector directory.
        dir: PathBuf,
    },

    /// A read that did not finish in the time it was given (a stuck disk).
    #[error("not read within {after:?}")]
    Timeout {
        /// The time it had.
        after: std::time::Duration,
    },

    /// An I/O failure on a stream that has no path (a piece reader).
    #[error("{what}")]
    Stream {
        /// What was being read or written.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// How a failure should be handled by whoever runs the work: the same
/// classification for every crate's errors, so the driver treats a corrupt
/// parameter file differently from an I/O blip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// May pass when tried again (an I/O blip, an unreachable worker): retried with backoff.
    #[default]
    Temporary,
    /// A fault of the sector itself (its data or replica is wrong): retrying cannot mend it.
    Permanent,
    /// A fault of this node, not of the sector (a corrupt parameter file, a full
    /// disk): no sector is charged for it; the kind of work waits until it is fixed.
    Node,
    /// A broken invariant (a bug): stop rather than act on it.
    Critical,
}

impl Disposition {
    /// The name as written in event logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Temporary => "temporary",
            Self::Permanent => "permanent",
            Self::Node => "node",
            Self::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The disposition of an I/O error: a full or read-only disk, or a process
/// or system out of file descriptors, is the node's fault; anything else may
/// pass.
pub fn io_disposition(e: &std::io::Error) -> Disposition {
    use std::io::ErrorKind as K;
    if out_of_descriptors(e) {
        return Disposition::Node;
    }
    match e.kind() {
        K::StorageFull | K::QuotaExceeded | K::ReadOnlyFilesystem | K::PermissionDenied => Disposition::Node,
        _ => Disposition::Temporary,
    }
}

/// Whether `e` says the process (EMFILE) or the system (ENFILE) has no file
/// descriptor left: nothing about the file being opened, so no sector is to
/// blame and a sector read failing with it is not a faulty sector.
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

impl Error {
    /// How a driver should handle this failure.
    pub fn disposition(&self) -> Disposition {
        match self {
            // The sector's own inputs or replica are wrong.
            Self::SectorSize(_)
            | Self::PieceSize(_)
            | Self::PiecesTooLarge { .. }
            | Self::InvalidHex { .. }
            | Self::NotInField { .. }
            | Self::LayerCorrupt { .. }
            | Self::ForeignSector { .. }
            | Self::CommDMismatch { .. }
            | Self::CommPMismatch { .. }
            | Self::InvalidProof(_)
            | Self::OutputInSector { .. } => Disposition::Permanent,
            // Shared files of the node.
            Self::Params { .. } | Self::ParamsDigest { .. } | Self::Gpu(_) => Disposition::Node,
            // A batch is formed by the caller: a mixed one is its bug.
            Self::MixedBatch { .. } => Disposition::Critical,
            Self::Io { source, .. } | Self::Stream { source, .. } => io_disposition(source),
            Self::FileLength { .. }
            | Self::Malformed { .. }
            | Self::MissingInput { .. }
            | Self::C1Format(_)
            | Self::Snark(_)
            | Self::Timeout { .. }
            | Self::Cancelled => Disposition::Temporary,
        }
    }

    /// Whether this failure is the process or the system running out of file
    /// descriptors ([`out_of_descriptors`]).
    pub fn is_out_of_descriptors(&self) -> bool {
        match self {
            Self::Io { source, .. } | Self::Stream { source, .. } => out_of_descriptors(source),
            _ => false,
        }
    }

    /// Wraps an I/O error with the action and the file it concerned.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_is_the_nodes_fault_not_the_sectors() {
        for code in [libc::EMFILE, libc::ENFILE] {
            let e = std::io::Error::from_raw_os_error(code);
            assert!(out_of_descriptors(&e));
            assert_eq!(io_disposition(&e), Disposition::Node, "{e}");
            let wrapped = Error::io("read", "/srv/kiln/sectors/2/sector.json")(e);
            assert!(wrapped.is_out_of_descriptors());
            assert_eq!(wrapped.disposition(), Disposition::Node);
        }
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(!out_of_descriptors(&missing));
        assert_eq!(io_disposition(&missing), Disposition::Temporary);
    }
}
