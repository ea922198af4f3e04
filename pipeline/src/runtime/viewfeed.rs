//! The view feeder: tails every topic that has a view and applies its records to the DataFusion
//! views in batches, so queries never rescan the log.
//!
//! Views live in memory; on start the feeder folds the log from its first retained record, which
//! makes a restarted process's views equal to a clean replay's.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use twinline_log::{EventLog, ReadBatch};
use twinline_queries::api::{DetectHub, DetectOutcome};
use twinline_queries::views::{ViewEvent, Views};
use twinline_schemas::{Codec, Payload, Topic};

/// Topics folded into views (images are too large to keep and have no view).
pub const VIEW_TOPICS: [Topic; 9] = [
    Topic::SensorReadings,
    Topic::JobEvents,
    Topic::MachineEvents,
    Topic::Defects,
    Topic::TwinState,
    Topic::FailurePredictions,
    Topic::MaintenanceRequests,
    Topic::ScheduleChanges,
    Topic::DeadLetters,
];

pub struct ViewFeeder {
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    views: Arc<Views>,
    positions: Vec<(Topic, u32, u64)>,
    batch: ReadBatch,
    payloads: Vec<(u32, u64, Payload)>,
    /// Records applied so far (for readiness and benchmarks).
    pub applied: Arc<AtomicU64>,
    /// Input-topic records applied so far.
    pub applied_inputs: Arc<AtomicU64>,
    /// Uploads waiting for their defect (`POST /api/v1/vision/detect`).
    pub detect: Option<Arc<DetectHub>>,
}

impl ViewFeeder {
    pub fn new(
        log: Arc<dyn EventLog>,
        codec: Arc<Codec>,
        views: Arc<Views>,
    ) -> Result<Self, twinline_log::LogError> {
        let mut positions = Vec::new();
        for t in VIEW_TOPICS {
            for p in 0..log.partitions(t.name())? {
                positions.push((t, p, log.start_offset(t.name(), p)?));
            }
        }
        Ok(ViewFeeder {
            log,
            codec,
            views,
            positions,
            batch: ReadBatch::new(),
            payloads: Vec::new(),
            applied: Arc::new(AtomicU64::new(0)),
            applied_inputs: Arc::new(AtomicU64::new(0)),
            detect: None,
        })
    }

    /// A feeder of `topics` only, from their current ends: an API-only instance tails
    /// `defects` this way to answer uploads, keeping nothing of the log's past.
    pub fn tail(
        log: Arc<dyn EventLog>,
        codec: Arc<Codec>,
        views: Arc<Views>,
        topics: &[Topic],
    ) -> Result<Self, twinline_log::LogError> {
        let mut feeder = ViewFeeder::new(log, codec, views)?;
        feeder.positions.retain(|(t, _, _)| topics.contains(t));
        for (t, p, from) in &mut feeder.positions {
            *from = feeder.log.end_offset(t.name(), *p)?;
        }
        Ok(feeder)
    }

    /// One pass over every partition; returns the number of records applied.
    pub fn poll(&mut self, max_bytes: usize) -> Result<usize, twinline_log::LogError> {
        let mut total = 0;
        // Uploads are answered after the whole pass, so the twin state their defect caused
        // (appended with it) is in the views when the client reads them next.
        let mut answers: Vec<(String, DetectOutcome)> = Vec::new();
        for i in 0..self.positions.len() {
            let (topic, partition, from) = self.positions[i];
            // One read per partition and pass, no end lookup (on Kafka an end is a broker round
            // trip per partition). A partition that ends below our position (an embedded task
            // truncated its outputs on recovery, in another process) reads as empty until what
            // it truncated is derived again, byte for byte.
            let any =
                self.log
                    .read_tail(topic.name(), partition, from, max_bytes, &mut self.batch)?;
            if !any {
                // Offsets that hold no record (Kafka transaction markers) are stepped over.
                if let Some(next) = self.batch.next_offset().filter(|n| *n > from) {
                    self.positions[i].2 = next;
                }
                continue;
            }
            self.payloads.clear();
            let next = self.batch.next_offset().unwrap_or(from).max(from);
            for r in self.batch.iter() {
                // Undecodable records are dead-lettered by their task; the view skips them.
                if let Ok(p) = self.codec.decode(topic, r.value) {
                    if let (Payload::Defect(d), Some(hub)) = (&p, &self.detect) {
                        if let (Some(id), true) = (&d.request_id, hub.any_waiting()) {
                            let processing_time_us = r
                                .headers
                                .get(twinline_processors::vision::HEADER_PROCESSING_TIME_US)
                                .and_then(|v| std::str::from_utf8(v).ok())
                                .and_then(|v| v.parse().ok());
                            answers.push((
                                id.clone(),
                                DetectOutcome {
                                    defect: d.clone(),
                                    processing_time_us,
                                },
                            ));
                        }
                    }
                    self.payloads.push((partition, r.offset, p));
                }
            }
            self.positions[i].2 = next;
            let events: Vec<ViewEvent<'_>> = self
                .payloads
                .iter()
                .map(|(partition, offset, payload)| ViewEvent {
                    topic,
                    partition: *partition,
                    offset: *offset,
                    payload,
                })
                .collect();
            self.views.apply(&events);
            total += events.len();
            if topic.is_input() {
                self.applied_inputs
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
            }
        }
        self.applied.fetch_add(total as u64, Ordering::Relaxed);
        if let Some(hub) = &self.detect {
            for (id, outcome) in answers {
                hub.complete(&id, outcome);
            }
        }
        Ok(total)
    }

    /// Keep polling until `stop`; `caught_up` is raised the first time a pass finds nothing new.
    pub fn run(mut self, stop: Arc<AtomicBool>, caught_up: Arc<AtomicBool>) -> anyhow::Result<()> {
        let mut idle = Duration::from_micros(500);
        let mut retry = super::RetryBackoff::default();
        while !stop.load(Ordering::Relaxed) {
            let n = match self.poll(4 << 20).map_err(anyhow::Error::from) {
                Ok(n) => n,
                Err(e) if super::transient(&e) => {
                    retry.failed("reading the log for the views", &e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            retry.ok();
            if n == 0 {
                caught_up.store(true, Ordering::Release);
                std::thread::sleep(idle);
                idle = (idle * 2).min(Duration::from_millis(20));
            } else {
                idle = Duration::from_micros(500);
            }
        }
        Ok(())
    }

    /// Poll until a pass finds nothing new.
    pub fn catch_up(&mut self) -> Result<(), twinline_log::LogError> {
        while self.poll(4 << 20)? > 0 {}
        Ok(())
    }
}
