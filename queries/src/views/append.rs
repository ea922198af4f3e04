//! The append-only view: rows go into Arrow builders, full builders become immutable
//! `RecordBatch`es, and the oldest batches are dropped once the table holds more than its
//! retention (`max_rows`). Snapshots share the finished batches and copy only the open one.

use std::collections::VecDeque;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use twinline_schemas::Topic;

use super::columns::ColumnSet;
use super::{View, ViewEvent};

/// How one table turns events into rows.
pub trait AppendRows: ColumnSet {
    /// Appends the rows for `event` (zero when the event is not for this table, several for
    /// events that carry lists) and returns how many it appended.
    fn append(&mut self, event: &ViewEvent<'_>) -> usize;
}

/// A bounded, append-only table over one or more topics.
pub struct AppendView<C: AppendRows> {
    name: String,
    topics: Vec<Topic>,
    schema: SchemaRef,
    open: C,
    finished: VecDeque<RecordBatch>,
    finished_rows: usize,
    batch_rows: usize,
    max_rows: usize,
    dropped_rows: u64,
}

impl<C: AppendRows> AppendView<C> {
    /// `batch_rows`: rows per finished batch (at least 1); `max_rows`: retention. The table keeps
    /// whole batches, so after a drop it holds between `max_rows - batch_rows` and `max_rows`
    /// rows (plus the open batch's rows beyond that until it is finished).
    pub fn new(
        name: impl Into<String>,
        topics: &[Topic],
        batch_rows: usize,
        max_rows: usize,
    ) -> Self {
        let batch_rows = batch_rows.max(1);
        AppendView {
            name: name.into(),
            topics: topics.to_vec(),
            schema: C::schema(),
            open: C::with_capacity(batch_rows),
            finished: VecDeque::new(),
            finished_rows: 0,
            batch_rows,
            max_rows,
            dropped_rows: 0,
        }
    }

    /// Rows dropped by retention since the table was created.
    pub fn dropped_rows(&self) -> u64 {
        self.dropped_rows
    }

    fn seal_open_batch(&mut self) {
        let columns = self.open.finish_all();
        match RecordBatch::try_new(self.schema.clone(), columns) {
            Ok(batch) => {
                self.finished_rows += batch.num_rows();
                self.finished.push_back(batch);
            }
            // Only a column-count or type mismatch between `columns!` and the builders can fail
            // here, a programming error that tests catch; the rows are lost rather than the process.
            Err(e) => tracing::error!(table = %self.name, error = %e, "cannot finish view batch"),
        }
        self.open = C::with_capacity(self.batch_rows);
        while self.finished_rows + self.open.rows() > self.max_rows {
            match self.finished.pop_front() {
                Some(old) => {
                    self.finished_rows -= old.num_rows();
                    self.dropped_rows += old.num_rows() as u64;
                }
                None => break,
            }
        }
    }
}

impl<C: AppendRows> View for AppendView<C> {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn topics(&self) -> &[Topic] {
        &self.topics
    }

    fn apply(&mut self, events: &[ViewEvent<'_>]) {
        for event in events {
            if self.open.append(event) > 0 && self.open.rows() >= self.batch_rows {
                self.seal_open_batch();
            }
        }
    }

    fn snapshot(&mut self) -> Vec<RecordBatch> {
        let mut out: Vec<RecordBatch> = self.finished.iter().cloned().collect();
        if self.open.rows() > 0 {
            match RecordBatch::try_new(self.schema.clone(), self.open.finish_cloned_all()) {
                Ok(batch) => out.push(batch),
                Err(e) => {
                    tracing::error!(table = %self.name, error = %e, "cannot snapshot open batch")
                }
            }
        }
        out
    }

    fn num_rows(&self) -> usize {
        self.finished_rows + self.open.rows()
    }
}
