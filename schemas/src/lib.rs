//! twinline's event schemas: the `.avsc` files in `schemas/avro/` (the source of truth), the Rust
//! types for them, topics, the `Payload` enum, the Confluent wire-format `Codec`, and the schema
//! registry (embedded JSON file or in memory).
//!
//! ```
//! use std::sync::Arc;
//! use twinline_schemas::{Codec, MemoryRegistry, Payload, SensorKind, SensorReading, Topic};
//!
//! let codec = Codec::new(Arc::new(MemoryRegistry::new()))?; // registers all 10 schemas
//! let reading = SensorReading {
//!     machine_id: "M1".into(),
//!     sensor: SensorKind::Vibration,
//!     value: 3.2,
//!     unit: "mm/s".into(),
//!     event_time: 1_767_225_600_000,
//! };
//! let mut value = Vec::new();
//! codec.encode_record(&reading, &mut value)?; // 0x00, schema id, Avro body
//! assert_eq!(codec.decode(Topic::SensorReadings, &value)?, Payload::SensorReading(reading));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod codec;
pub mod error;
pub mod payload;
pub mod records;
pub mod registry;
mod sensor_fast;
pub mod topic;

pub use codec::{split_wire, Codec, HEADER_LEN, MAGIC};
pub use error::{DecodeError, JsonError, SchemaError};
pub use payload::{Payload, Record};
pub use records::*;
pub use registry::{
    check_backward, parse_schema, same_schema, EmbeddedRegistry, MemoryRegistry, RegisteredSchema,
    Registration, RegistryBook, SchemaRegistry,
};
pub use topic::{Topic, UnknownTopic};
