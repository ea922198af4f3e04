//! `LogError`: every failure the event log reports, classified by whose fault it is.

use std::io;
use std::path::PathBuf;

/// Whose fault an error is, so callers can decide between dead-lettering, retrying and stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The caller passed something invalid (unknown topic, bad name, offset out of range, oversized
    /// record). Retrying the same call will fail the same way.
    BadRequest,
    /// The environment failed (I/O error, another process holds the lock). May succeed later.
    External,
    /// The data on disk is inconsistent, or the log is in a state it cannot continue from.
    /// Stop and restore (reopen runs recovery).
    Internal,
}

/// Errors of the event log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An operating-system I/O call failed.
    #[error("i/o error while {op} {path}: {source}")]
    Io {
        /// What the log was doing ("writing segment", "renaming", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another `EmbeddedLog` in this process) holds the writer lock.
    #[error("log directory {path} is locked by another writer (lock file {lock_file})")]
    Locked {
        /// Root of the log.
        path: PathBuf,
        /// The lock file that is held.
        lock_file: PathBuf,
    },
    /// The topic does not exist.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// The partition number is not below the topic's partition count.
    #[error("topic {topic:?} has {partitions} partitions, partition {partition} does not exist")]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// Requested partition.
        partition: u32,
        /// Actual partition count.
        partitions: u32,
    },
    /// `create_topic` was called for an existing topic with a different partition count.
    #[error("topic {topic:?} already exists with {existing} partitions, requested {requested}")]
    PartitionCountMismatch {
        /// Topic name.
        topic: String,
        /// Partition count on disk.
        existing: u32,
        /// Partition count requested.
        requested: u32,
    },
    /// A topic or group name cannot be used.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// "topic" or "group".
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// An argument is out of its domain (zero partitions, empty batch, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The requested offset is not in `[start_offset, end_offset]`.
    #[error("offset {requested} out of range for {topic}/{partition}: retained [{start}, {end})")]
    OffsetOutOfRange {
        /// Topic name.
        topic: String,
        /// Partition.
        partition: u32,
        /// Requested offset.
        requested: u64,
        /// First retained offset.
        start: u64,
        /// Next offset to be written.
        end: u64,
    },
    /// A record is larger than `LogConfig::max_record_bytes`.
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Encoded size of the record.
        size: usize,
        /// Configured limit.
        max: usize,
    },
    /// Stored data failed validation (CRC mismatch, inconsistent lengths, offsets not ascending)
    /// in a place recovery does not repair, for example in a sealed segment read after open.
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// Segment or metadata file.
        path: PathBuf,
        /// Byte position of the bad frame.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// The log was opened read-only and a mutating call was made.
    #[error("the log is open read-only")]
    ReadOnly,
    /// The backend does not implement this operation.
    #[error("operation not supported by this backend: {0}")]
    Unsupported(&'static str),
    /// A remote backend (Kafka) failed or could not be reached. May succeed later; a fenced
    /// transactional writer (another instance took over the task) never will.
    #[error("{op}: {reason}")]
    Broker {
        /// What the log was doing ("producing to sensor-readings/3", "committing", ...).
        op: String,
        /// The client's error.
        reason: String,
    },
    /// A previous write failed half way and could not be rolled back; the partition refuses
    /// further appends until the log is reopened (recovery then truncates the torn tail).
    #[error("partition {topic}/{partition} is unusable after a failed write: {reason}")]
    Poisoned {
        /// Topic name.
        topic: String,
        /// Partition.
        partition: u32,
        /// The original failure.
        reason: String,
    },
}

impl LogError {
    /// Whose fault the error is.
    pub fn class(&self) -> ErrorClass {
        match self {
            LogError::Io { .. } | LogError::Locked { .. } | LogError::Broker { .. } => {
                ErrorClass::External
            }
            LogError::UnknownTopic(_)
            | LogError::UnknownPartition { .. }
            | LogError::PartitionCountMismatch { .. }
            | LogError::InvalidName { .. }
            | LogError::InvalidArgument(_)
            | LogError::OffsetOutOfRange { .. }
            | LogError::RecordTooLarge { .. }
            | LogError::ReadOnly
            | LogError::Unsupported(_) => ErrorClass::BadRequest,
            LogError::Corrupt { .. } | LogError::Poisoned { .. } => ErrorClass::Internal,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
