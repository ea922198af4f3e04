//! The served-state poller of an API-only instance (`run --api-only`): reads the current rows of
//! the Cassandra tables a pipeline serves, re-reads the recent history of each machine whose
//! twin state or prediction changed, and loads the result into the API's model. The instance
//! keeps no state of its own: what it shows is what Cassandra holds at the last poll.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use tracing::{debug, info_span};
use twinline_queries::views::{ServedState, Views};
use twinline_schemas::{FailurePrediction, Payload, Record, TwinState};
use twinline_sinks::cassandra::{CassandraError, CassandraSink, HistoryStream};

/// History reads in flight at once.
const HISTORY_READS: usize = 16;

/// A machine's recent records, and the event id of the current row they were read for.
struct Recent<T> {
    current_id: String,
    records: Vec<T>,
}

pub struct ServedPoller {
    sink: CassandraSink,
    rt: tokio::runtime::Runtime,
    views: Arc<Views>,
    history: usize,
    interval: Duration,
    twins: BTreeMap<String, Recent<TwinState>>,
    predictions: BTreeMap<String, Recent<FailurePrediction>>,
    last: Option<ServedState>,
}

impl ServedPoller {
    pub fn new(
        sink: CassandraSink,
        rt: tokio::runtime::Runtime,
        views: Arc<Views>,
        interval: Duration,
    ) -> Self {
        let history = views.config().history_per_machine;
        ServedPoller {
            sink,
            rt,
            views,
            history,
            interval,
            twins: BTreeMap::new(),
            predictions: BTreeMap::new(),
            last: None,
        }
    }

    /// One read of the tables; returns whether the API's model changed.
    pub fn poll(&mut self) -> Result<bool, CassandraError> {
        let rows = self.rt.block_on(self.sink.read_served())?;
        // With no history kept per machine, the current rows are all the model shows.
        let (sink, n) = (&self.sink, self.history);
        if n > 0 {
            let reads: Vec<_> = stale(&rows.twins, &self.twins)
                .chain(stale(&rows.predictions, &self.predictions))
                .collect();
            let fetched: Vec<(HistoryStream, String, String, Vec<Payload>)> =
                self.rt.block_on(async {
                    stream::iter(reads.into_iter().map(|(s, m, id)| async move {
                        let records = sink.read_recent(s, &m, n).await?;
                        Ok::<_, CassandraError>((s, m, id, records))
                    }))
                    .buffer_unordered(HISTORY_READS)
                    .try_collect()
                    .await
                })?;
            for (s, machine, current_id, records) in fetched {
                match s {
                    HistoryStream::Twin => remember(&mut self.twins, machine, current_id, records),
                    HistoryStream::Prediction => {
                        remember(&mut self.predictions, machine, current_id, records)
                    }
                }
            }
        }
        let state = ServedState {
            machines: merge(rows.twins, &self.twins),
            predictions: merge(rows.predictions, &self.predictions),
            open_requests: rows.open_requests,
            schedule: rows.schedule,
        };
        if self.last.as_ref() == Some(&state) {
            return Ok(false);
        }
        self.views.load_served(&state);
        self.last = Some(state);
        Ok(true)
    }

    /// Polls every `interval` until `stop`. `ready` is raised after the first successful read; a
    /// failed read is retried with backoff (the model keeps its last state meanwhile).
    pub fn run(mut self, stop: Arc<AtomicBool>, ready: Arc<AtomicBool>) -> anyhow::Result<()> {
        let _span = info_span!("served").entered();
        let mut retry = super::RetryBackoff::default();
        while !stop.load(Ordering::Acquire) {
            match self.poll() {
                Ok(changed) => {
                    retry.ok();
                    ready.store(true, Ordering::Release);
                    if changed {
                        debug!("served state changed");
                    }
                    std::thread::sleep(self.interval);
                }
                Err(e) => retry.failed(
                    "reading the served state from Cassandra",
                    &anyhow::Error::from(e),
                ),
            }
        }
        Ok(())
    }
}

/// A per-machine record whose current row is served with its recent history.
trait ServedRecord: Record {
    const STREAM: HistoryStream;
    fn machine_id(&self) -> &str;
    fn event_id(&self) -> &str;
}

impl ServedRecord for TwinState {
    const STREAM: HistoryStream = HistoryStream::Twin;
    fn machine_id(&self) -> &str {
        &self.machine_id
    }
    fn event_id(&self) -> &str {
        &self.event_id
    }
}

impl ServedRecord for FailurePrediction {
    const STREAM: HistoryStream = HistoryStream::Prediction;
    fn machine_id(&self) -> &str {
        &self.machine_id
    }
    fn event_id(&self) -> &str {
        &self.event_id
    }
}

/// The history reads due: machines whose current row is not the one their history was read for.
fn stale<'a, T: ServedRecord>(
    rows: &'a [T],
    cache: &'a BTreeMap<String, Recent<T>>,
) -> impl Iterator<Item = (HistoryStream, String, String)> + 'a {
    rows.iter()
        .filter(|r| {
            cache
                .get(r.machine_id())
                .is_none_or(|c| c.current_id != r.event_id())
        })
        .map(|r| {
            (
                T::STREAM,
                r.machine_id().to_owned(),
                r.event_id().to_owned(),
            )
        })
}

fn remember<T: ServedRecord>(
    cache: &mut BTreeMap<String, Recent<T>>,
    machine: String,
    current_id: String,
    records: Vec<Payload>,
) {
    let records = records.into_iter().filter_map(T::from_payload).collect();
    cache.insert(
        machine,
        Recent {
            current_id,
            records,
        },
    );
}

/// Each current row with its history (none when no history is kept: the cache stays empty).
/// The history tables are written before the current rows, so a history may already hold a
/// record newer than the row read a moment earlier: its newest record is then the current state
/// (the next poll sees the row move and re-reads).
fn merge<T: ServedRecord>(rows: Vec<T>, cache: &BTreeMap<String, Recent<T>>) -> Vec<(T, Vec<T>)> {
    rows.into_iter()
        .map(|row| {
            let history = cache
                .get(row.machine_id())
                .map_or(&[][..], |c| &c.records[..]);
            let current = history.last().cloned().unwrap_or(row);
            (current, history.to_vec())
        })
        .collect()
}
