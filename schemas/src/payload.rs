//! `Payload`, the decoded value of any topic, with its key, event time, provenance and JSON form.
//!
//! JSON form (`to_json` / `from_json`): the record's fields by their Avro names, enums as their
//! symbols, times as integer Unix milliseconds, optional fields as `null` (and may be omitted on
//! input), maps as objects. `bytes` fields (`Image.data`, `DeadLetter.key`, `DeadLetter.payload`)
//! are standard base64 strings with padding, so `from_json(to_json(p)) == p` for every payload
//! with finite floats (JSON has no NaN or infinity: `to_json` writes them as `null`, which
//! `from_json` refuses). [`Payload::to_json_summary`] replaces bytes by `{"len": n}` for listings.

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::JsonError;
use crate::records::*;
use crate::topic::Topic;

/// A record type carried by exactly one topic.
pub trait Record:
    Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug + 'static
{
    const TOPIC: Topic;
    fn into_payload(self) -> Payload;
    fn from_payload(payload: Payload) -> Option<Self>;
}

macro_rules! records {
    ($($variant:ident => $topic:ident),* $(,)?) => {
        /// The decoded value of a record of any topic.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Payload {
            $($variant($variant),)*
        }

        $(
            impl Record for $variant {
                const TOPIC: Topic = Topic::$topic;
                fn into_payload(self) -> Payload {
                    Payload::$variant(self)
                }
                fn from_payload(payload: Payload) -> Option<Self> {
                    match payload {
                        Payload::$variant(r) => Some(r),
                        _ => None,
                    }
                }
            }

            impl From<$variant> for Payload {
                fn from(r: $variant) -> Payload {
                    Payload::$variant(r)
                }
            }
        )*

        impl Payload {
            /// The topic this payload belongs to.
            pub fn topic(&self) -> Topic {
                match self {
                    $(Payload::$variant(_) => Topic::$topic,)*
                }
            }

            /// Event time, Unix ms (for a dead letter: the original record's log timestamp).
            pub fn event_time(&self) -> i64 {
                match self {
                    $(Payload::$variant(r) => r.event_time,)*
                }
            }

            fn to_json_value(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $(Payload::$variant(r) => serde_json::to_value(r),)*
                }
            }

            fn from_json_value(topic: Topic, value: Value) -> Result<Payload, serde_json::Error> {
                match topic {
                    $(Topic::$topic => serde_json::from_value::<$variant>(value).map(Payload::$variant),)*
                }
            }
        }
    };
}

records! {
    SensorReading => SensorReadings,
    Image => Images,
    JobEvent => JobEvents,
    MachineEvent => MachineEvents,
    Defect => Defects,
    TwinState => TwinState,
    FailurePrediction => FailurePredictions,
    MaintenanceRequest => MaintenanceRequests,
    ScheduleChange => ScheduleChanges,
    DeadLetter => DeadLetters,
}

/// Names of the `bytes` fields of a topic's record (base64 in JSON).
fn bytes_fields(topic: Topic) -> &'static [&'static str] {
    match topic {
        Topic::Images => &["data"],
        Topic::DeadLetters => &["key", "payload"],
        _ => &[],
    }
}

impl Payload {
    /// The log record key: machine id, job id on `job-events`, `"plant"` on `schedule-changes`.
    ///
    /// A dead letter's key is bytes (the original record's key, verbatim); this returns it when it
    /// is valid UTF-8 and `""` otherwise. Use [`Payload::key_bytes`] to get it exactly.
    pub fn key(&self) -> &str {
        match self {
            Payload::SensorReading(r) => &r.machine_id,
            Payload::Image(r) => &r.machine_id,
            Payload::JobEvent(r) => &r.job_id,
            Payload::MachineEvent(r) => &r.machine_id,
            Payload::Defect(r) => &r.machine_id,
            Payload::TwinState(r) => &r.machine_id,
            Payload::FailurePrediction(r) => &r.machine_id,
            Payload::MaintenanceRequest(r) => &r.machine_id,
            Payload::ScheduleChange(_) => PLANT_KEY,
            Payload::DeadLetter(r) => std::str::from_utf8(&r.key).unwrap_or(""),
        }
    }

    /// The log record key as bytes (exact for dead letters too).
    pub fn key_bytes(&self) -> &[u8] {
        match self {
            Payload::DeadLetter(r) => &r.key,
            other => other.key().as_bytes(),
        }
    }

    /// Fills `event_id` and `source` of a derived payload; does nothing for inputs.
    pub fn set_provenance(&mut self, event_id: String, source: Source) {
        let (id, src) = match self {
            Payload::SensorReading(_)
            | Payload::Image(_)
            | Payload::JobEvent(_)
            | Payload::MachineEvent(_) => return,
            Payload::Defect(r) => (&mut r.event_id, &mut r.source),
            Payload::TwinState(r) => (&mut r.event_id, &mut r.source),
            Payload::FailurePrediction(r) => (&mut r.event_id, &mut r.source),
            Payload::MaintenanceRequest(r) => (&mut r.event_id, &mut r.source),
            Payload::ScheduleChange(r) => (&mut r.event_id, &mut r.source),
            Payload::DeadLetter(r) => (&mut r.event_id, &mut r.source),
        };
        *id = event_id;
        *src = source;
    }

    /// `event_id` of a derived payload; `None` for inputs.
    pub fn event_id(&self) -> Option<&str> {
        self.provenance().map(|(id, _)| id)
    }

    /// `source` of a derived payload; `None` for inputs.
    pub fn source(&self) -> Option<&Source> {
        self.provenance().map(|(_, s)| s)
    }

    fn provenance(&self) -> Option<(&str, &Source)> {
        match self {
            Payload::SensorReading(_)
            | Payload::Image(_)
            | Payload::JobEvent(_)
            | Payload::MachineEvent(_) => None,
            Payload::Defect(r) => Some((&r.event_id, &r.source)),
            Payload::TwinState(r) => Some((&r.event_id, &r.source)),
            Payload::FailurePrediction(r) => Some((&r.event_id, &r.source)),
            Payload::MaintenanceRequest(r) => Some((&r.event_id, &r.source)),
            Payload::ScheduleChange(r) => Some((&r.event_id, &r.source)),
            Payload::DeadLetter(r) => Some((&r.event_id, &r.source)),
        }
    }

    /// JSON form (see the module doc): lossless, bytes as base64.
    pub fn to_json(&self) -> Value {
        self.json_with_bytes(|bytes| {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        })
    }

    /// JSON form for listings (`twinline log dump`): like [`Payload::to_json`] but every bytes
    /// field is `{"len": n}`. Not accepted by [`Payload::from_json`].
    pub fn to_json_summary(&self) -> Value {
        self.json_with_bytes(|bytes| serde_json::json!({ "len": bytes.len() }))
    }

    fn json_with_bytes(&self, render: impl Fn(&[u8]) -> Value) -> Value {
        // Serializing plain structs of strings, numbers and maps with string keys to a `Value`
        // cannot fail; the fallback keeps this infallible without a panic path.
        let mut value = self
            .to_json_value()
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
        if let Value::Object(map) = &mut value {
            // serde_bytes renders bytes as an array of numbers in JSON; replace it from the
            // payload itself rather than re-reading that array.
            for (field, bytes) in self.bytes_field_values() {
                map.insert(field.to_string(), render(bytes));
            }
        }
        value
    }

    fn bytes_field_values(&self) -> Vec<(&'static str, &[u8])> {
        match self {
            Payload::Image(r) => vec![("data", &r.data[..])],
            Payload::DeadLetter(r) => vec![("key", &r.key[..]), ("payload", &r.payload[..])],
            _ => Vec::new(),
        }
    }

    /// Parses the JSON form of a `topic` record (the ingest API's input). Unknown fields are
    /// ignored; optional fields may be omitted; `bytes` fields must be base64 strings.
    pub fn from_json(topic: Topic, mut value: Value) -> Result<Payload, JsonError> {
        let err = |reason: String| JsonError { topic, reason };
        // Decoded bytes fields are set on the struct after serde ran, with an empty array in
        // their place meanwhile: a JSON array of one number per byte would cost ~32x the image.
        let mut decoded: Vec<(&str, Vec<u8>)> = Vec::new();
        let fields = bytes_fields(topic);
        if !fields.is_empty() {
            let map = value
                .as_object_mut()
                .ok_or_else(|| err("expected a JSON object".to_string()))?;
            for field in fields {
                let Some(v) = map.get_mut(*field) else {
                    continue; // serde reports the missing field below
                };
                let text = v
                    .as_str()
                    .ok_or_else(|| err(format!("field `{field}` must be a base64 string")))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| err(format!("field `{field}` is not valid base64: {e}")))?;
                *v = Value::Array(Vec::new());
                decoded.push((field, bytes));
            }
        }
        let mut payload = Payload::from_json_value(topic, value).map_err(|e| err(e.to_string()))?;
        for (field, bytes) in decoded {
            match (&mut payload, field) {
                (Payload::Image(r), "data") => r.data = bytes,
                (Payload::DeadLetter(r), "key") => r.key = bytes,
                (Payload::DeadLetter(r), "payload") => r.payload = bytes,
                _ => {}
            }
        }
        Ok(payload)
    }
}
