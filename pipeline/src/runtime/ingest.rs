//! Producers' path into the log: encode payloads in the wire format and append them, batched per
//! partition, with the partition chosen from the key exactly as Kafka's default partitioner does.

use std::collections::BTreeMap;
use std::sync::Arc;

use twinline_log::{EventLog, NewRecord};
use twinline_schemas::{Codec, Payload, Topic};

use super::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0} is a derived topic; only input topics accept events from producers")]
    DerivedTopic(&'static str),
    #[error("encode: {0}")]
    Encode(String),
    #[error("log: {0}")]
    Log(#[from] twinline_log::LogError),
}

/// Where an ingested record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landed {
    pub topic: Topic,
    pub partition: u32,
    pub offset: u64,
}

/// Encoded records of one partition: the bytes, and per record (key start, value start, value
/// end, timestamp).
type Scratch = (Vec<u8>, Vec<(usize, usize, usize, i64)>);

pub struct Ingestor {
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    metrics: Arc<Metrics>,
    /// Reused buffers per (topic, partition).
    scratch: BTreeMap<(Topic, u32), Scratch>,
}

impl Ingestor {
    pub fn new(log: Arc<dyn EventLog>, codec: Arc<Codec>, metrics: Arc<Metrics>) -> Self {
        Ingestor {
            log,
            codec,
            metrics,
            scratch: BTreeMap::new(),
        }
    }

    /// Append a batch of input events. Order is kept within each partition. Returns where the
    /// first event of each partition's batch landed when `want_positions`; otherwise empty.
    pub fn ingest(&mut self, events: &[Payload]) -> Result<Vec<Landed>, IngestError> {
        for buf in self.scratch.values_mut() {
            buf.0.clear();
            buf.1.clear();
        }
        for e in events {
            let topic = e.topic();
            if !topic.is_input() {
                return Err(IngestError::DerivedTopic(topic.name()));
            }
            let key = e.key();
            let partition = self.log.partition_for(topic.name(), key.as_bytes())?;
            let (data, recs) = self.scratch.entry((topic, partition)).or_default();
            let k0 = data.len();
            data.extend_from_slice(key.as_bytes());
            let v0 = data.len();
            self.codec
                .encode(e, data)
                .map_err(|err| IngestError::Encode(err.to_string()))?;
            recs.push((k0, v0, data.len(), e.event_time()));
        }
        let mut landed = Vec::new();
        for ((topic, partition), (data, recs)) in &self.scratch {
            if recs.is_empty() {
                continue;
            }
            let batch: Vec<NewRecord<'_>> = recs
                .iter()
                .map(|&(k0, v0, v1, ts)| NewRecord {
                    key: &data[k0..v0],
                    value: &data[v0..v1],
                    timestamp: ts,
                    origin: None,
                    headers: &[],
                })
                .collect();
            let r = self.log.append(topic.name(), *partition, &batch)?;
            self.metrics.record_ingested(*topic, batch.len() as u64);
            landed.push(Landed {
                topic: *topic,
                partition: *partition,
                offset: r.base_offset,
            });
        }
        Ok(landed)
    }
}
