//! twinline's Confluent-compatible schema registry: [`KafkaRegistry`] keeps the registry in a
//! compacted Kafka topic, [`server::router`] serves Confluent's REST API over any
//! [`twinline_schemas::SchemaRegistry`], and [`RemoteRegistry`] is the client twinline uses
//! against any Confluent-compatible registry (its own or another).

pub mod client;
pub mod server;
pub mod store;

pub use client::RemoteRegistry;
pub use store::{KafkaRegistry, KafkaRegistryConfig};
