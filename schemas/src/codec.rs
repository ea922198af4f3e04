//! `Codec`: payloads to and from Confluent wire format (0x00, big-endian u32 schema id, Avro body).
//!
//! Hot path: values written with the current schema of their topic are encoded and decoded by
//! `serde_avro_fast` straight into the Rust types, with the schema parsed once at construction;
//! no lock, no registry call, no allocation beyond the decoded value itself.
//! Slow path: a value written with an older version of the topic's subject is read with
//! apache-avro schema resolution (writer = that version, reader = current), re-encoded with the
//! current schema and decoded by the fast path, so both paths produce values the same way.

use std::any::Any;
use std::collections::HashMap;
use std::io::BufRead as _;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DecodeError, SchemaError};
use crate::payload::{Payload, Record};
use crate::records::*;
use crate::registry::{parse_schema, SchemaRegistry};
use crate::sensor_fast;
use crate::topic::Topic;

/// The wire format's magic byte.
pub const MAGIC: u8 = 0x00;
/// Magic byte + schema id.
pub const HEADER_LEN: usize = 5;

/// Splits a wire-format value into schema id and Avro body.
pub fn split_wire(bytes: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    match bytes {
        [MAGIC, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => Err(DecodeError::NotWireFormat),
    }
}

/// The current schema of one topic, parsed for both libraries.
struct Current {
    id: u32,
    fast: serde_avro_fast::Schema,
    avro: apache_avro::Schema,
}

/// What the codec learned about a schema id that is not a current one.
enum Older {
    /// An earlier version of the subject of `topic`.
    Version {
        topic: Topic,
        writer: apache_avro::Schema,
    },
    /// A schema of another subject (another topic's, or one that is no topic's).
    OtherSubject,
}

/// Encoder/decoder for all topics. `Send + Sync`; share it in an `Arc`.
pub struct Codec {
    registry: Arc<dyn SchemaRegistry>,
    /// Whether the hand-written `SensorReading` codec matches the current schema.
    sensor_hand: bool,
    /// Indexed by `Topic::rank`.
    current: Vec<Current>,
    /// Ids seen on the slow path. Never consulted for current ids.
    older: RwLock<HashMap<u32, Arc<Older>>>,
}

// Shared across tasks behind an `Arc`; fail the build if a field ever breaks that.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Codec>();
};

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field(
                "schema_ids",
                &Topic::ALL
                    .iter()
                    .map(|t| (t.name(), self.current[usize::from(t.rank())].id))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Codec {
    /// Registers the current schema of every topic (a no-op for those already registered) and
    /// keeps their ids. Fails if the registry refuses one (e.g. it is not backward compatible
    /// with what the registry already holds).
    pub fn new(registry: Arc<dyn SchemaRegistry>) -> Result<Codec, SchemaError> {
        let mut current = Vec::with_capacity(Topic::ALL.len());
        for topic in Topic::ALL {
            let subject = topic.subject();
            let json = topic.schema_json();
            let avro = parse_schema(&subject, json)?;
            let fast: serde_avro_fast::Schema =
                json.parse().map_err(|e| SchemaError::InvalidSchema {
                    subject: subject.clone(),
                    reason: format!("serde_avro_fast: {e}"),
                })?;
            let id = registry.register(&subject, json)?;
            current.push(Current { id, fast, avro });
        }
        let sensor_hand = current[usize::from(Topic::SensorReadings.rank())]
            .avro
            .canonical_form()
            == sensor_fast::CANONICAL;
        Ok(Codec {
            registry,
            sensor_hand,
            current,
            older: RwLock::new(HashMap::new()),
        })
    }

    /// The registry this codec resolves older schema ids with.
    pub fn registry(&self) -> &Arc<dyn SchemaRegistry> {
        &self.registry
    }

    /// Id of the current schema of `topic` (the one `encode` writes).
    pub fn schema_id(&self, topic: Topic) -> u32 {
        self.cur(topic).id
    }

    /// The parsed current schema of `topic` (apache-avro form), e.g. for sinks that need it.
    pub fn avro_schema(&self, topic: Topic) -> &apache_avro::Schema {
        &self.cur(topic).avro
    }

    fn cur(&self, topic: Topic) -> &Current {
        &self.current[usize::from(topic.rank())]
    }

    /// Appends the wire form of `payload` (current schema of its topic) to `out`. On error `out`
    /// is left as it was.
    pub fn encode(&self, payload: &Payload, out: &mut Vec<u8>) -> Result<(), SchemaError> {
        match payload {
            Payload::SensorReading(r) => self.encode_record(r, out),
            Payload::Image(r) => self.encode_record(r, out),
            Payload::JobEvent(r) => self.encode_record(r, out),
            Payload::MachineEvent(r) => self.encode_record(r, out),
            Payload::Defect(r) => self.encode_record(r, out),
            Payload::TwinState(r) => self.encode_record(r, out),
            Payload::FailurePrediction(r) => self.encode_record(r, out),
            Payload::MaintenanceRequest(r) => self.encode_record(r, out),
            Payload::ScheduleChange(r) => self.encode_record(r, out),
            Payload::DeadLetter(r) => self.encode_record(r, out),
        }
    }

    /// `encode` into a new vector.
    pub fn encode_to_vec(&self, payload: &Payload) -> Result<Vec<u8>, SchemaError> {
        let mut out = Vec::new();
        self.encode(payload, &mut out)?;
        Ok(out)
    }

    /// Appends the wire form of one record to `out`, without wrapping it in a `Payload`.
    pub fn encode_record<R: Record>(
        &self,
        record: &R,
        out: &mut Vec<u8>,
    ) -> Result<(), SchemaError> {
        if self.sensor_hand {
            // A type-id comparison, resolved at compile time per `R`.
            if let Some(r) = (record as &dyn Any).downcast_ref::<SensorReading>() {
                out.push(MAGIC);
                out.extend_from_slice(&self.cur(Topic::SensorReadings).id.to_be_bytes());
                sensor_fast::encode(r, out);
                return Ok(());
            }
        }
        self.encode_record_generic(record, out)
    }

    /// Decodes a wire-format value of `topic`.
    pub fn decode(&self, topic: Topic, bytes: &[u8]) -> Result<Payload, DecodeError> {
        match topic {
            Topic::SensorReadings => self
                .decode_record::<SensorReading>(bytes)
                .map(Payload::from),
            Topic::Images => self.decode_record::<Image>(bytes).map(Payload::from),
            Topic::JobEvents => self.decode_record::<JobEvent>(bytes).map(Payload::from),
            Topic::MachineEvents => self.decode_record::<MachineEvent>(bytes).map(Payload::from),
            Topic::Defects => self.decode_record::<Defect>(bytes).map(Payload::from),
            Topic::TwinState => self.decode_record::<TwinState>(bytes).map(Payload::from),
            Topic::FailurePredictions => self
                .decode_record::<FailurePrediction>(bytes)
                .map(Payload::from),
            Topic::MaintenanceRequests => self
                .decode_record::<MaintenanceRequest>(bytes)
                .map(Payload::from),
            Topic::ScheduleChanges => self
                .decode_record::<ScheduleChange>(bytes)
                .map(Payload::from),
            Topic::DeadLetters => self.decode_record::<DeadLetter>(bytes).map(Payload::from),
        }
    }

    /// Decodes a wire-format value of `R::TOPIC` straight into `R` (no `Payload` enum).
    pub fn decode_record<R: Record>(&self, bytes: &[u8]) -> Result<R, DecodeError> {
        if self.sensor_hand {
            let mut slot: Option<R> = None;
            if let Some(sensor_slot) =
                (&mut slot as &mut dyn Any).downcast_mut::<Option<SensorReading>>()
            {
                let (id, body) = split_wire(bytes)?;
                let cur = self.cur(Topic::SensorReadings);
                if id != cur.id {
                    return self.decode_older::<R>(id, body);
                }
                *sensor_slot = Some(sensor_fast::decode(body)?);
            }
            if let Some(r) = slot {
                return Ok(r);
            }
        }
        self.decode_record_generic(bytes)
    }

    /// Fast path for the busiest topic.
    pub fn decode_sensor_reading(&self, bytes: &[u8]) -> Result<SensorReading, DecodeError> {
        self.decode_record::<SensorReading>(bytes)
    }

    /// Whether the hand-written `SensorReading` codec is in use (false once the schema changes
    /// without that codec being updated; everything still works, just slower).
    pub fn sensor_fast_path(&self) -> bool {
        self.sensor_hand
    }

    /// Decodes with serde_avro_fast only (skipping the hand-written path); for tests and benches.
    #[doc(hidden)]
    pub fn decode_record_generic<R: Record>(&self, bytes: &[u8]) -> Result<R, DecodeError> {
        let (id, body) = split_wire(bytes)?;
        let cur = self.cur(R::TOPIC);
        if id == cur.id {
            return decode_fast(&cur.fast, body);
        }
        self.decode_older::<R>(id, body)
    }

    /// Encodes with serde_avro_fast only (skipping the hand-written path); for tests and benches.
    #[doc(hidden)]
    pub fn encode_record_generic<R: Record>(
        &self,
        record: &R,
        out: &mut Vec<u8>,
    ) -> Result<(), SchemaError> {
        let cur = self.cur(R::TOPIC);
        let start = out.len();
        out.push(MAGIC);
        out.extend_from_slice(&cur.id.to_be_bytes());
        // A fresh config costs nothing (its buffers are only used to reorder fields, and our
        // structs declare fields in schema order), and keeps `encode` lock-free under `&self`.
        let mut config = serde_avro_fast::ser::SerializerConfig::new(&cur.fast);
        serde_avro_fast::to_datum(record, &mut *out, &mut config)
            .map(|_| ())
            .map_err(|e| {
                out.truncate(start);
                SchemaError::Encode {
                    topic: R::TOPIC,
                    reason: e.to_string(),
                }
            })
    }

    #[cold]
    fn decode_older<R: Record>(&self, id: u32, body: &[u8]) -> Result<R, DecodeError> {
        let topic = R::TOPIC;
        let older = self.older_schema(id)?;
        let writer = match &*older {
            Older::Version { topic: t, writer } if *t == topic => writer,
            _ => {
                return Err(DecodeError::WrongSubject {
                    id,
                    expected_topic: topic,
                })
            }
        };
        let cur = self.cur(topic);
        let mut reader = body;
        let value = apache_avro::reader::datum::GenericDatumReader::builder(writer)
            .reader_schema(&cur.avro)
            .build()
            .and_then(|r| r.read_value(&mut reader))
            .map_err(|e| DecodeError::Undecodable(e.to_string()))?;
        if !reader.is_empty() {
            return Err(trailing(reader.len()));
        }
        let current_body = apache_avro::writer::datum::GenericDatumWriter::builder(&cur.avro)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .map_err(|e| {
                DecodeError::Undecodable(format!(
                    "resolved value of schema id {id} does not fit the current schema: {e}"
                ))
            })?;
        decode_fast(&cur.fast, &current_body)
    }

    /// Looks `id` up: codec's current ids, then the cache, then the registry.
    fn older_schema(&self, id: u32) -> Result<Arc<Older>, DecodeError> {
        // The current id of another topic: no need to ask the registry.
        if self.current.iter().any(|c| c.id == id) {
            return Ok(Arc::new(Older::OtherSubject));
        }
        if let Some(o) = self.older.read().get(&id) {
            return Ok(o.clone());
        }
        let registered = self
            .registry
            .schema_by_id(id)
            .map_err(|e| {
                DecodeError::Undecodable(format!("schema registry lookup of id {id} failed: {e}"))
            })?
            .ok_or(DecodeError::UnknownSchemaId(id))?;
        let older = match Topic::from_subject(&registered.subject) {
            Some(topic) => {
                let writer = parse_schema(&registered.subject, &registered.schema)
                    .map_err(|e| DecodeError::Undecodable(format!("writer schema id {id}: {e}")))?;
                Older::Version { topic, writer }
            }
            None => Older::OtherSubject,
        };
        let older = Arc::new(older);
        self.older.write().insert(id, older.clone());
        Ok(older)
    }
}

fn trailing(n: usize) -> DecodeError {
    DecodeError::Undecodable(format!("{n} trailing bytes after the record"))
}

/// Decodes an Avro body written with exactly `schema`, refusing trailing bytes.
fn decode_fast<T: DeserializeOwned>(
    schema: &serde_avro_fast::Schema,
    body: &[u8],
) -> Result<T, DecodeError> {
    let mut config = serde_avro_fast::de::DeserializerConfig::new(schema);
    // Every array or map element of our schemas takes at least one byte, so a length above the
    // body's size is garbage: refuse it before looping over it.
    config.max_seq_size = body.len();
    let mut state = serde_avro_fast::de::DeserializerState::with_config(
        serde_avro_fast::de::read::SliceRead::new(body),
        config,
    );
    let value = T::deserialize(state.deserializer())
        .map_err(|e| DecodeError::Undecodable(e.to_string()))?;
    let mut rest = state.into_reader();
    let left = rest.fill_buf().map(|b| b.len()).unwrap_or(0);
    if left != 0 {
        return Err(trailing(left));
    }
    Ok(value)
}

/// Encodes `value` as a bare Avro body with apache-avro (the reference implementation, via
/// `to_value`, `resolve` and a validating writer); used by tests and benchmarks to cross-check
/// the fast path. Fails when the value does not validate against `schema`.
pub fn encode_with_apache_avro<T: Serialize>(
    schema: &apache_avro::Schema,
    value: &T,
) -> Result<Vec<u8>, String> {
    let v = apache_avro::to_value(value).map_err(|e| e.to_string())?;
    let v = v.resolve(schema).map_err(|e| e.to_string())?;
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(v))
        .map_err(|e| e.to_string())
}
