//! Errors of the registry and of encoding, and the decode errors that map to dead-letter reasons.

use std::path::PathBuf;

use crate::records::DeadLetterReason;
use crate::topic::Topic;

/// Failure of a registry operation or of encoding (never caused by bytes read from a log).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema text is not a valid Avro schema (caller's fault).
    #[error("invalid Avro schema for subject {subject}: {reason}")]
    InvalidSchema { subject: String, reason: String },

    /// The new schema cannot read data written with an earlier version of the subject.
    #[error("schema for subject {subject} is not backward compatible: {reason}")]
    Incompatible { subject: String, reason: String },

    /// Reading or writing the registry file failed (external; may be retried).
    #[error("schema registry I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The registry file exists but is not a registry this code wrote (internal; needs a human).
    #[error("schema registry file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },

    /// A value could not be serialized with its topic's schema (a bug in the producer, e.g. a
    /// value the schema cannot hold).
    #[error("cannot encode a {topic} record: {reason}")]
    Encode { topic: Topic, reason: String },

    /// A registry server or the store behind it could not be reached or answered an error
    /// that is not one of the above (external; may be retried).
    #[error("schema registry {registry}: {reason}")]
    Remote { registry: String, reason: String },

    /// Ids are `u32` (Confluent wire format); the registry ran out of them.
    #[error("schema registry has no schema ids left")]
    IdsExhausted,
}

/// Why a log value could not be turned into a [`crate::Payload`]. The record's fault: the runtime
/// dead-letters it with [`DecodeError::reason_type`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than 5 bytes or the first byte is not the magic byte 0x00.
    #[error("value is not in the Confluent wire format (magic byte 0x00 + 4-byte schema id)")]
    NotWireFormat,

    /// The registry does not know this schema id.
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),

    /// The schema id belongs to a subject other than the topic's (`<topic>-value`).
    #[error("schema id {id} is not a version of subject {expected_topic}-value")]
    WrongSubject { id: u32, expected_topic: Topic },

    /// The Avro body does not decode with the writer schema (truncated, trailing bytes, bad
    /// enum index, invalid UTF-8, ...). Also used when the registry could not be asked about an
    /// older writer schema; the message says so.
    #[error("undecodable Avro body: {0}")]
    Undecodable(String),
}

impl DecodeError {
    /// The dead-letter class of this error.
    pub fn reason_type(&self) -> DeadLetterReason {
        match self {
            DecodeError::NotWireFormat => DeadLetterReason::NotWireFormat,
            DecodeError::UnknownSchemaId(_) | DecodeError::WrongSubject { .. } => {
                DeadLetterReason::UnknownSchema
            }
            DecodeError::Undecodable(_) => DeadLetterReason::Undecodable,
        }
    }
}

/// A JSON event (ingest API, `log dump` round trip) that does not have the topic's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON for a {topic} record: {reason}")]
pub struct JsonError {
    pub topic: Topic,
    pub reason: String,
}
