//! The history feeder: tails every topic from the history manifest's positions, hands the
//! decoded records to the [`HistoryWriter`] and flushes when it is due; on stop it catches up
//! with the log and flushes the rest, so a stopped pipeline's history holds every record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info_span, warn};
use twinline_log::{EventLog, ReadBatch};
use twinline_schemas::{Codec, Topic};
use twinline_sinks::history::HistoryWriter;

pub struct HistoryFeeder {
    log: Arc<dyn EventLog>,
    codec: Arc<Codec>,
    writer: HistoryWriter,
    partitions: Vec<(Topic, u32)>,
    batch: ReadBatch,
}

impl HistoryFeeder {
    pub fn new(
        log: Arc<dyn EventLog>,
        codec: Arc<Codec>,
        writer: HistoryWriter,
    ) -> Result<Self, twinline_log::LogError> {
        let mut partitions = Vec::new();
        for t in Topic::ALL {
            for p in 0..log.partitions(t.name())? {
                partitions.push((t, p));
            }
        }
        Ok(HistoryFeeder {
            log,
            codec,
            writer,
            partitions,
            batch: ReadBatch::new(),
        })
    }

    /// One pass over every partition; returns the records handed to the writer.
    pub fn poll(&mut self, max_bytes: usize) -> anyhow::Result<usize> {
        let mut total = 0;
        for &(topic, p) in &self.partitions {
            let from = self.writer.position(topic, p);
            if !super::read_new(&*self.log, topic, p, from, max_bytes, &mut self.batch)? {
                continue;
            }
            let mut next = from;
            for r in self.batch.iter() {
                next = r.offset + 1;
                // Undecodable records are dead-lettered by their task (and so reach the
                // history as dead letters).
                if let Ok(payload) = self.codec.decode(topic, r.value) {
                    self.writer.append(topic, p, r.offset, r.origin, &payload);
                    total += 1;
                }
            }
            self.writer.advance(topic, p, next);
        }
        Ok(total)
    }

    /// Feed until `stop`, then catch up and flush. `caught_up` is raised the first time a pass
    /// finds nothing new.
    pub fn run(mut self, stop: Arc<AtomicBool>, caught_up: Arc<AtomicBool>) -> anyhow::Result<()> {
        let _span = info_span!("history").entered();
        let mut idle = super::IdleBackoff::default();
        let mut retry = super::RetryBackoff::default();
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let n = match self.poll(4 << 20) {
                Ok(n) => n,
                Err(e) if super::transient(&e) => {
                    retry.failed("reading the log for the history", &e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            retry.ok();
            if self.writer.flush_due() || (n == 0 && stopping) {
                if let Err(e) = self.writer.flush() {
                    // Nothing is lost: the positions stay where the last commit left them.
                    warn!(error = %e, "history flush failed; retrying");
                    if stopping {
                        return Err(e.into());
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
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
