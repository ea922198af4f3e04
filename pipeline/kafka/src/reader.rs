//! A reading thread's view of Kafka: one `read_committed` consumer per thread (its messages
//! sorted into one buffer per partition it reads), and the cursor state that turns Kafka messages into `ReadBatch` records
//! (origins of input records from the index, logical offsets of derived records).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use twinline_log::{LogError, NewRecord, ReadBatch, Result};

use crate::{broker, header_u64, Inner, ORIGIN_HEADER, SEQ_HEADER};

/// A record taken from a queue that could not be returned yet (past the sequenced end, or past
/// the read's byte budget). Its key and value are ranges of the cursor's arena (no allocation
/// per record); headers other than twinline's are rare and kept as they come.
struct Pending {
    offset: u64,
    origin: u64,
    timestamp: i64,
    key: (usize, usize),
    value: (usize, usize),
    headers: Vec<(String, Vec<u8>)>,
}

struct Cursor {
    /// The offset (Kafka's for inputs, logical for derived topics) the next delivered record is
    /// expected at: a read from elsewhere seeks. `None` after a probe moved the queue.
    expected: Option<u64>,
    /// The smallest offset (Kafka's for inputs, logical for derived topics) the next buffered
    /// record may have: after a seek to Kafka offset `k` for logical offset `k`, records with a
    /// smaller logical offset are skipped; after that, each buffered record raises it.
    floor: u64,
    /// The Kafka offset after the last message buffered (or the one last sought). A message
    /// below it means the consumer went back (librdkafka reset its position, for example to
    /// the earliest offset after a broker restart): it is dropped and the consumer sought back.
    kafka_next: u64,
    /// The consumer went back in this partition during the current fill.
    rewound: bool,
    /// A record was buffered since the last seek.
    took: bool,
    /// Derived topics: the next buffered record must have logical offset `floor` exactly
    /// (logical offsets are consecutive, and a seek lands at or before the sought record). Off
    /// for the scans that look for a partition's first or last record.
    strict: bool,
    pending: VecDeque<Pending>,
    /// Keys and values of `pending`, back to back.
    arena: Vec<u8>,
}

impl Cursor {
    fn clear(&mut self) {
        self.pending.clear();
        self.arena.clear();
    }

    /// Drops the arena's consumed prefix once it is most of the arena (or everything).
    fn compact(&mut self) {
        let Some(first) = self.pending.front().map(|f| f.key.0) else {
            self.arena.clear();
            return;
        };
        if first > (1 << 20) && first * 2 > self.arena.len() {
            self.arena.drain(..first);
            for f in &mut self.pending {
                f.key = (f.key.0 - first, f.key.1 - first);
                f.value = (f.value.0 - first, f.value.1 - first);
            }
        }
    }
}

pub(crate) struct Reader {
    inner: Arc<Inner>,
    consumer: Arc<BaseConsumer>,
    cursors: HashMap<(String, u32), Cursor>,
    /// Full topic name -> name without the prefix (for sorting messages into cursors).
    names: HashMap<String, String>,
}

fn copy_headers(m: &BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    m.headers()
        .map(|h| {
            h.iter()
                .filter(|h| h.key != ORIGIN_HEADER && h.key != SEQ_HEADER)
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

impl Reader {
    pub(crate) fn new(inner: Arc<Inner>) -> Result<Reader> {
        let consumer: BaseConsumer = inner
            .reader_config("twinline-reader")
            .create()
            .map_err(|e| broker("creating a reader", e))?;
        Ok(Reader {
            inner,
            consumer: Arc::new(consumer),
            cursors: HashMap::new(),
            names: HashMap::new(),
        })
    }

    fn cursor(&mut self, topic: &str, p: u32, kafka_from: u64) -> Result<&mut Cursor> {
        let key = (topic.to_string(), p);
        if !self.cursors.contains_key(&key) {
            let full = self.inner.topic(topic);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&full, p as i32, Offset::Offset(kafka_from as i64))
                .map_err(|e| broker("assigning", e))?;
            self.consumer
                .incremental_assign(&tpl)
                .map_err(|e| broker(format!("assigning {full}/{p}"), e))?;
            self.names.insert(full, topic.to_string());
            self.cursors.insert(
                key.clone(),
                Cursor {
                    expected: Some(kafka_from),
                    floor: kafka_from,
                    kafka_next: kafka_from,
                    rewound: false,
                    took: false,
                    strict: true,
                    pending: VecDeque::new(),
                    arena: Vec::new(),
                },
            );
        }
        Ok(self.cursors.get_mut(&key).expect("inserted"))
    }

    fn seek(
        &mut self,
        topic: &str,
        p: u32,
        kafka_offset: u64,
        logical: u64,
        strict: bool,
    ) -> Result<()> {
        let full = self.inner.topic(topic);
        self.seek_consumer(&full, p, kafka_offset)?;
        let c = self
            .cursors
            .get_mut(&(topic.to_string(), p))
            .expect("cursor exists");
        c.clear();
        c.expected = Some(logical);
        c.floor = logical;
        c.kafka_next = kafka_offset;
        c.rewound = false;
        c.took = false;
        c.strict = strict;
        Ok(())
    }

    /// Moves the consumer's position in `full/p` (what is buffered stays).
    fn seek_consumer(&self, full: &str, p: u32, kafka_offset: u64) -> Result<()> {
        let timeout = self.inner.cfg.timeout;
        // A seek right after assignment can fail while the fetcher starts: retry briefly.
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .consumer
                .seek(full, p as i32, Offset::Offset(kafka_offset as i64), timeout)
            {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, topic = %full, p, "seek failed; retrying");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(broker(format!("seeking {full}/{p} to {kafka_offset}"), e)),
            }
        }
        Ok(())
    }

    /// Moves what the consumer has fetched into the cursors' buffers: up to `max` messages,
    /// waiting up to `wait` for the first. Returns how many were taken.
    fn fill(&mut self, wait: Duration, max: usize) -> Result<usize> {
        let mut n = 0;
        let mut wait = wait;
        while n < max {
            let m = match self.consumer.poll(wait) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) => {
                    // Broker connection errors repeat on every poll while a broker is away
                    // (librdkafka logs them itself); the reader just polls again.
                    tracing::debug!(error = %e, "kafka reader event");
                    continue;
                }
                Some(Ok(m)) => m,
            };
            wait = Duration::ZERO;
            n += 1;
            let Some(name) = self.names.get(m.topic()) else {
                continue;
            };
            let p = m.partition() as u32;
            let derived = self.inner.input_rank(name).is_none();
            let Some(c) = self.cursors.get_mut(&(name.clone(), p)) else {
                continue;
            };
            let kafka_offset = m.offset().max(0) as u64;
            if kafka_offset < c.kafka_next {
                if !c.rewound {
                    tracing::warn!(
                        topic = m.topic(),
                        p,
                        offset = kafka_offset,
                        expected = c.kafka_next,
                        "the consumer went back in a partition; seeking to where it was"
                    );
                }
                c.rewound = true;
                continue;
            }
            let (offset, origin) = if derived {
                let (Some(seq), Some(origin)) =
                    (header_u64(&m, SEQ_HEADER), header_u64(&m, ORIGIN_HEADER))
                else {
                    tracing::warn!(
                        topic = m.topic(),
                        p,
                        offset = m.offset(),
                        "record on a derived topic without twinline's headers skipped"
                    );
                    continue;
                };
                if seq < c.floor {
                    if c.took {
                        // After a record with a larger logical offset: two committed
                        // transactions wrote the same records. Never skipped quietly.
                        return Err(LogError::Corrupt {
                            path: m.topic().into(),
                            position: kafka_offset,
                            reason: format!(
                                "partition {p}: logical offset {seq} follows {} (derived records \
                                 committed twice)",
                                c.floor - 1
                            ),
                        });
                    }
                    // Before the sought logical offset (Kafka offsets are never below it).
                    continue;
                }
                if c.strict && seq > c.floor {
                    return Err(LogError::Corrupt {
                        path: m.topic().into(),
                        position: kafka_offset,
                        reason: format!(
                            "partition {p}: logical offset {seq} where {} was expected (a \
                             committed record was not delivered)",
                            c.floor
                        ),
                    });
                }
                (seq, origin)
            } else {
                (kafka_offset, 0)
            };
            c.floor = offset + 1;
            c.kafka_next = kafka_offset + 1;
            c.took = true;
            let mut put = |bytes: &[u8]| {
                let at = c.arena.len();
                c.arena.extend_from_slice(bytes);
                (at, c.arena.len())
            };
            let key = put(m.key().unwrap_or_default());
            let value = put(m.payload().unwrap_or_default());
            let headers = if m
                .headers()
                .is_some_and(|h| h.count() > usize::from(derived) * 2)
            {
                copy_headers(&m)
            } else {
                Vec::new()
            };
            c.pending.push_back(Pending {
                offset,
                origin,
                timestamp: m.timestamp().to_millis().unwrap_or(0),
                key,
                value,
                headers,
            });
        }
        // Put back the consumer where it went back from (what is buffered stays valid).
        let rewound: Vec<(String, u32, u64)> = self
            .cursors
            .iter_mut()
            .filter(|(_, c)| c.rewound)
            .map(|((t, p), c)| {
                c.rewound = false;
                (t.clone(), *p, c.kafka_next)
            })
            .collect();
        for (t, p, at) in rewound {
            self.seek_consumer(&self.inner.topic(&t), p, at)?;
        }
        Ok(n)
    }

    pub(crate) fn read(
        &mut self,
        topic: &str,
        p: u32,
        from: u64,
        max_bytes: usize,
        batch: &mut ReadBatch,
    ) -> Result<()> {
        batch.clear();
        let rank = self.inner.input_rank(topic);
        self.cursor(topic, p, from)?;
        let c = self.cursors.get(&(topic.to_string(), p)).expect("cursor");
        let seeked = c.expected != Some(from);
        if seeked {
            // Logical offsets are never above Kafka offsets: seek there and skip forward.
            self.seek(topic, p, from, from, true)?;
        }
        let limit = match rank {
            Some(r) => self.inner.index.read().sequenced_end(r, p),
            None => u64::MAX,
        };
        // Wait a little for the first record only when records are known to be there.
        let wait = if seeked || (rank.is_some() && from < limit) {
            Duration::from_millis(20)
        } else {
            Duration::ZERO
        };
        let key = (topic.to_string(), p);
        if self.cursors[&key].pending.is_empty() {
            self.fill(wait, 100_000)?;
        }
        let inner = self.inner.clone();
        // One look at the index per read, not per record.
        let ix = rank.map(|_| inner.index.read());
        let c = self.cursors.get_mut(&key).expect("cursor");
        while let Some(f) = c.pending.front() {
            if f.offset >= limit || (!batch.is_empty() && batch.byte_len() >= max_bytes) {
                break;
            }
            let hdrs: Vec<(&str, &[u8])> = f
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            let rec = NewRecord {
                key: &c.arena[f.key.0..f.key.1],
                value: &c.arena[f.value.0..f.value.1],
                timestamp: f.timestamp,
                origin: None,
                headers: &hdrs,
            };
            let origin = match (rank, &ix) {
                (Some(r), Some(ix)) => ix.origin(r, p, f.offset).unwrap_or(0),
                _ => f.origin,
            };
            batch.push(f.offset, origin, &rec).map_err(|e| {
                LogError::InvalidArgument(format!("record at {topic}/{p}/{}: {e}", f.offset))
            })?;
            c.expected = Some(f.offset + 1);
            c.pending.pop_front();
        }
        c.compact();
        if rank.is_some() && batch.is_empty() && c.pending.is_empty() {
            // Nothing to return: the offsets up to the consumer's position (below the sequenced
            // end) hold no record (transaction markers, aborted records). Say so, so the reader
            // can count the partition as read to its end.
            let full = self.inner.topic(topic);
            if let Some(pos) = crate::position_of(&self.consumer, &full, p) {
                let next = (pos.max(0) as u64).min(limit);
                let c = self.cursors.get_mut(&key).expect("cursor");
                if c.expected.is_some_and(|e| next > e) {
                    c.expected = Some(next);
                    batch.set_next_offset(next);
                }
            }
        }
        Ok(())
    }

    /// Kafka position of this reader in `topic/p` (past transaction markers), if known.
    fn kafka_position(&self, full: &str, p: u32) -> Option<i64> {
        crate::position_of(&self.consumer, full, p)
    }

    /// The logical end of a derived partition: one past the last committed record's logical
    /// offset. Exact when this reader has consumed up to the last stable offset; otherwise
    /// found by reading the partition's tail.
    pub(crate) fn derived_end(&mut self, topic: &str, p: u32) -> Result<u64> {
        let full = self.inner.topic(topic);
        if let Some(c) = self.cursors.get(&(topic.to_string(), p)) {
            if let (Some(expected), Some(last)) = (c.expected, c.pending.back()) {
                return Ok(expected.max(last.offset + 1));
            }
        }
        let (low, high) = self.inner.watermarks(&self.consumer, &full, p)?;
        if high <= 0 || high <= low {
            return Ok(self
                .cursors
                .get(&(topic.to_string(), p))
                .and_then(|c| c.expected)
                .unwrap_or(0));
        }
        if let Some(expected) = self
            .cursors
            .get(&(topic.to_string(), p))
            .and_then(|c| c.expected)
        {
            return Ok(match self.kafka_position(&full, p) {
                Some(pos) if pos >= high => expected,
                // More is committed than this reader has taken (or its position is not known
                // yet, right after a seek): at least one more record, or only transaction
                // markers, which the next read steps over. Exact once the reader has caught up.
                _ => expected + 1,
            });
        }
        self.probe_end(topic, p, low, high)
    }

    /// Reads from Kafka offset `from` until the reader's position reaches `high` (or a record is
    /// buffered, with `first_only`), leaving what it read in the cursor's buffer.
    fn scan(&mut self, topic: &str, p: u32, from: u64, high: i64, first_only: bool) -> Result<()> {
        let full = self.inner.topic(topic);
        self.cursor(topic, p, from)?;
        self.seek(topic, p, from, 0, false)?;
        let key = (topic.to_string(), p);
        let deadline = Instant::now() + self.inner.cfg.timeout;
        loop {
            self.fill(Duration::from_millis(20), 100_000)?;
            if first_only && !self.cursors[&key].pending.is_empty() {
                return Ok(());
            }
            if self.kafka_position(&full, p).is_some_and(|pos| pos >= high) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(broker(
                    format!("reading {full}/{p} up to {high}"),
                    "timed out",
                ));
            }
        }
    }

    /// Reads the tail of a derived partition to find its logical end.
    fn probe_end(&mut self, topic: &str, p: u32, low: i64, high: i64) -> Result<u64> {
        let mut window = 64i64;
        let key = (topic.to_string(), p);
        loop {
            let start = (high - window).max(low) as u64;
            self.scan(topic, p, start, high, false)?;
            let c = self.cursors.get_mut(&key).expect("cursor");
            let last = c.pending.back().map(|f| f.offset);
            c.clear();
            c.expected = None;
            match last {
                Some(seq) => return Ok(seq + 1),
                None if start as i64 <= low => return Ok(0),
                None => window *= 8,
            }
        }
    }

    pub(crate) fn start_offset(&mut self, topic: &str, p: u32) -> Result<u64> {
        let full = self.inner.topic(topic);
        let (low, high) = self.inner.watermarks(&self.consumer, &full, p)?;
        if self.inner.input_rank(topic).is_some() || low <= 0 || high <= low {
            return Ok(low.max(0) as u64);
        }
        // Derived: the logical offset of the first retained record.
        Ok(self.first_seq_at(topic, p, low as u64, high)?.unwrap_or(0))
    }

    fn first_seq_at(&mut self, topic: &str, p: u32, kafka: u64, high: i64) -> Result<Option<u64>> {
        self.scan(topic, p, kafka, high, true)?;
        let c = self
            .cursors
            .get_mut(&(topic.to_string(), p))
            .expect("cursor");
        let first = c.pending.front().map(|f| f.offset);
        c.clear();
        c.expected = None;
        Ok(first)
    }

    pub(crate) fn offset_for_timestamp(
        &mut self,
        topic: &str,
        p: u32,
        ts: i64,
    ) -> Result<Option<u64>> {
        let full = self.inner.topic(topic);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&full, p as i32, Offset::Offset(ts))
            .map_err(|e| broker("offsets for times", e))?;
        let got = self
            .consumer
            .offsets_for_times(tpl, self.inner.cfg.timeout)
            .map_err(|e| broker(format!("offsets for times of {full}/{p}"), e))?;
        let Some(Offset::Offset(k)) = got.elements().first().map(|e| e.offset()) else {
            return Ok(None);
        };
        if k < 0 {
            return Ok(None);
        }
        if self.inner.input_rank(topic).is_some() {
            return Ok(Some(k as u64));
        }
        let (_, high) = self.inner.watermarks(&self.consumer, &full, p)?;
        self.first_seq_at(topic, p, k as u64, high)
    }
}
