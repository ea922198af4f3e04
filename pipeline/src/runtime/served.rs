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
use twinline_schemas::{FailurePrediction, Payload, TwinState};
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
        let twin_reads: Vec<(String, String)> = rows
            .twins
            .iter()
            .filter(|t| {
                self.twins
                    .get(&t.machine_id)
                    .is_none_or(|r| r.current_id != t.event_id)
            })
            .map(|t| (t.machine_id.clone(), t.event_id.clone()))
            .collect();
        let prediction_reads: Vec<(String, String)> = rows
            .predictions
            .iter()
            .filter(|p| {
                self.predictions
                    .get(&p.machine_id)
                    .is_none_or(|r| r.current_id != p.event_id)
            })
            .map(|p| (p.machine_id.clone(), p.event_id.clone()))
            .collect();
        let (sink, n) = (&self.sink, self.history);
        let reads = twin_reads
            .into_iter()
            .map(|(m, id)| (HistoryStream::Twin, m, id))
            .chain(
                prediction_reads
                    .into_iter()
                    .map(|(m, id)| (HistoryStream::Prediction, m, id)),
            );
        let fetched: Vec<(HistoryStream, String, String, Vec<Payload>)> =
            self.rt.block_on(async {
                stream::iter(reads.map(|(s, m, id)| async move {
                    let records = sink.read_recent(s, &m, n.max(1)).await?;
                    Ok::<_, CassandraError>((s, m, id, records))
                }))
                .buffer_unordered(HISTORY_READS)
                .try_collect()
                .await
            })?;
        for (s, machine, current_id, records) in fetched {
            match s {
                HistoryStream::Twin => {
                    let records = records
                        .into_iter()
                        .filter_map(|p| match p {
                            Payload::TwinState(t) => Some(t),
                            _ => None,
                        })
                        .collect();
                    self.twins.insert(
                        machine,
                        Recent {
                            current_id,
                            records,
                        },
                    );
                }
                HistoryStream::Prediction => {
                    let records = records
                        .into_iter()
                        .filter_map(|p| match p {
                            Payload::FailurePrediction(x) => Some(x),
                            _ => None,
                        })
                        .collect();
                    self.predictions.insert(
                        machine,
                        Recent {
                            current_id,
                            records,
                        },
                    );
                }
            }
        }
        // The history tables are written before the current rows: a history may already hold a
        // record newer than the current row read a moment earlier. Its newest record is then the
        // current state (the next poll sees the current row move and re-reads).
        let bound = self.history;
        let machines = rows
            .twins
            .into_iter()
            .map(|t| {
                let recent = self.twins.get(&t.machine_id).map(|r| &r.records[..]);
                let history = if bound == 0 {
                    &[][..]
                } else {
                    recent.unwrap_or(&[])
                };
                let current = history.last().cloned().unwrap_or(t);
                (current, history.to_vec())
            })
            .collect();
        let predictions = rows
            .predictions
            .into_iter()
            .map(|p| {
                let recent = self.predictions.get(&p.machine_id).map(|r| &r.records[..]);
                let history = if bound == 0 {
                    &[][..]
                } else {
                    recent.unwrap_or(&[])
                };
                let latest = history.last().cloned().unwrap_or(p);
                (latest, history.to_vec())
            })
            .collect();
        let state = ServedState {
            machines,
            predictions,
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
