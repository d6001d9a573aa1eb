//! Journal errors.

use std::path::{Path, PathBuf};

/// What went wrong with the journal. Each variant says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another process holds the journal. Stop the running `vendd` (or use its HTTP API)
    /// before opening the journal from `vendctl`.
    #[error("journal {path} is in use by another process (is vendd running?); stop it first")]
    Locked {
        /// Journal directory.
        path: PathBuf,
    },
    /// sled could not open the directory: check the path, its permissions and free space.
    #[error("cannot open journal {path}: {message}")]
    Open {
        /// Journal directory.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// A write or commit failed: the disk may be full, read-only or failing. The machine
    /// must stop selling until it is fixed.
    #[error("cannot write journal {path}: {message}")]
    Write {
        /// Journal directory.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// A read failed.
    #[error("cannot read journal {path}: {message}")]
    Read {
        /// Journal directory.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// A stored record does not decode: the journal was damaged or written by an
    /// incompatible version. Export it with `vendctl journal export` and keep the copy.
    #[error("journal record {seq} is damaged: {message}")]
    Corrupt {
        /// Sequence number (0 for the checkpoint or a key).
        seq: u64,
        /// Cause.
        message: String,
    },
    /// A record could not be encoded (a bug).
    #[error("cannot encode a journal record: {0}")]
    Encode(String),
}

impl JournalError {
    pub(crate) fn open(path: &Path, e: sled::Error) -> Self {
        let message = e.to_string();
        if message.contains("lock")
            || message.contains("WouldBlock")
            || message.contains("Resource temporarily unavailable")
        {
            JournalError::Locked {
                path: path.to_path_buf(),
            }
        } else {
            JournalError::Open {
                path: path.to_path_buf(),
                message,
            }
        }
    }
    pub(crate) fn write(path: &Path, e: sled::Error) -> Self {
        JournalError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
    pub(crate) fn read(path: &Path, e: sled::Error) -> Self {
        JournalError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        JournalError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
