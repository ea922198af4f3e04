//! The Cassandra feeder: tails `twin-state`, `failure-predictions`, `maintenance-requests` and
//! `schedule-changes` from the positions it committed in the log (group `cassandra-sink`),
//! writes each stretch to the [`CassandraSink`] and commits the positions only once Cassandra
//! acknowledged every row. A failed write is retried with backoff (the rows are idempotent
//! upserts); on stop it catches up with the log first, so a stopped pipeline's Cassandra tables
//! hold every derived record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracing::{info_span, warn};
use twinline_log::{EventLog, ReadBatch};
use twinline_schemas::{Codec, Topic};
use twinline_sinks::cassandra::{CassandraSink, SinkBatch};

/// Consumer group name of the sink's positions in the log.
pub const GROUP: &str = "cassandra-sink";

/// The topics the sink serves.
pub const TOPICS: [Topic; 4] = [
    Topic::TwinState,
    Topic::FailurePredictions,
    Topic::MaintenanceRequests,
    Topic::ScheduleChanges,
];

pub struct CassandraFeeder {
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    sink: CassandraSink,
    rt: tokio::runtime::Runtime,
    partitions: Vec<(Topic, u32)>,
    read: ReadBatch,
}

impl CassandraFeeder {
    pub fn new(
        log: Arc<dyn EventLog>,
        codec: Arc<Codec>,
        sink: CassandraSink,
        rt: tokio::runtime::Runtime,
    ) -> anyhow::Result<Self> {
        let mut partitions = Vec::new();
        for t in TOPICS {
            for p in 0..log.partitions(t.name())? {
                partitions.push((t, p));
            }
        }
        Ok(CassandraFeeder {
            log,
            codec,
            sink,
            rt,
            partitions,
            read: ReadBatch::new(),
        })
    }

    /// Reads what is new in every partition (up to `max_bytes` each), writes it, commits the
    /// positions. Returns the records read. A failed write is retried with backoff, unless
    /// `stopping`: then the error is returned (positions stay, nothing is lost).
    pub fn poll(&mut self, max_bytes: usize, stopping: bool) -> anyhow::Result<usize> {
        let mut read = 0;
        let mut batch = SinkBatch::default();
        let mut advanced = Vec::new();
        for &(topic, p) in &self.partitions {
            let name = topic.name();
            let from = self.log.position(GROUP, name, p)?.unwrap_or(0);
            if !super::read_new(&*self.log, topic, p, from, max_bytes, &mut self.read)? {
                continue;
            }
            let mut next = from;
            for r in self.read.iter() {
                next = r.offset + 1;
                read += 1;
                // Undecodable records are dead-lettered by their task.
                if let Ok(payload) = self.codec.decode(topic, r.value) {
                    batch.push(&payload, r.offset);
                }
            }
            if next > from {
                advanced.push((name, p, next));
            }
        }
        if advanced.is_empty() {
            return Ok(0);
        }
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.rt.block_on(self.sink.write(&batch)) {
                Ok(_) => break,
                Err(e) if stopping => return Err(e.into()),
                Err(e) => {
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "Cassandra write failed; retrying the batch");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        for (name, p, next) in advanced {
            self.log
                .commit_position(GROUP, name, p, next)
                .with_context(|| {
                    format!("committing the Cassandra sink's position in {name}/{p}")
                })?;
        }
        Ok(read)
    }

    /// Feed until `stop`, then catch up. `caught_up` is raised the first time a pass finds
    /// nothing new.
    pub fn run(mut self, stop: Arc<AtomicBool>, caught_up: Arc<AtomicBool>) -> anyhow::Result<()> {
        let _span = info_span!("cassandra").entered();
        let mut idle = super::IdleBackoff::default();
        let mut retry = super::RetryBackoff::default();
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let n = match self.poll(4 << 20, stopping) {
                Ok(n) => n,
                Err(e) if super::transient(&e) => {
                    retry.failed("reading the log for Cassandra", &e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            retry.ok();
            if n == 0 {
                if stopping {
                    return Ok(());
                }
                caught_up.store(true, Ordering::Release);
                idle.idle();
            } else {
                idle.busy();
            }
        }
    }
}
