//! Origin markers: how the sequencer records, in the `_twinline-origins` topic, which input
//! records get which origins, and the index every instance rebuilds from those markers.
//!
//! A marker says: "the records of input partition `t/p` at Kafka offsets `[from, to)` get origins
//! `base + (offset - from)`", for several ranges, one after the other. Ranges of one partition
//! are contiguous (`from` of the next = `to` of the previous). The origins of one marker follow
//! the previous marker's, so the markers' order in their single partition is the origin order.
//!
//! Encoding (big-endian): `TLSQ`, `u8` version 1, `u64` base, `u32` n, then n times
//! (`u16` topic index in [`crate::KafkaConfig::input_topics`], `u32` partition, `u64` from,
//! `u64` to).

use std::collections::HashMap;

const MAGIC: &[u8; 4] = b"TLSQ";

/// One range of a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub topic: u16,
    pub partition: u32,
    pub from: u64,
    pub to: u64,
}

/// A decoded marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub base: u64,
    pub ranges: Vec<Range>,
}

impl Marker {
    /// One past the last origin this marker assigns.
    pub fn end(&self) -> u64 {
        self.base + self.ranges.iter().map(|r| r.to - r.from).sum::<u64>()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17 + self.ranges.len() * 22);
        out.extend_from_slice(MAGIC);
        out.push(1);
        out.extend_from_slice(&self.base.to_be_bytes());
        out.extend_from_slice(&(self.ranges.len() as u32).to_be_bytes());
        for r in &self.ranges {
            out.extend_from_slice(&r.topic.to_be_bytes());
            out.extend_from_slice(&r.partition.to_be_bytes());
            out.extend_from_slice(&r.from.to_be_bytes());
            out.extend_from_slice(&r.to.to_be_bytes());
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Marker, String> {
        let take = |at: usize, n: usize| -> Result<&[u8], String> {
            b.get(at..at + n)
                .ok_or_else(|| format!("marker truncated at byte {at}"))
        };
        if take(0, 4)? != MAGIC || take(4, 1)?[0] != 1 {
            return Err("not an origin marker (magic or version)".into());
        }
        let u64_at = |at| take(at, 8).map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes")));
        let base = u64_at(5)?;
        let n = u32::from_be_bytes(take(13, 4)?.try_into().expect("4 bytes")) as usize;
        let mut ranges = Vec::with_capacity(n.min(1 << 16));
        let mut at = 17;
        for _ in 0..n {
            let topic = u16::from_be_bytes(take(at, 2)?.try_into().expect("2 bytes"));
            let partition = u32::from_be_bytes(take(at + 2, 4)?.try_into().expect("4 bytes"));
            let from = u64_at(at + 6)?;
            let to = u64_at(at + 14)?;
            if to < from {
                return Err(format!("range [{from}, {to}) is reversed"));
            }
            ranges.push(Range {
                topic,
                partition,
                from,
                to,
            });
            at += 22;
        }
        if at != b.len() {
            return Err("trailing bytes after the ranges".into());
        }
        Ok(Marker { base, ranges })
    }
}

/// A sequenced range of one partition: `(from, to, base)`.
type Span = (u64, u64, u64);

/// Per input partition, the ranges sequenced so far, sorted by `from`.
#[derive(Debug, Default)]
pub struct OriginIndex {
    ranges: HashMap<(u16, u32), Vec<Span>>,
    /// One past the last origin assigned (the next marker's base).
    end: u64,
    /// Markers applied.
    pub markers: u64,
}

impl OriginIndex {
    pub fn new() -> Self {
        OriginIndex {
            end: 1,
            ..Default::default()
        }
    }

    /// Adds a marker read from the topic. Markers whose base is not the index's end are skipped
    /// (a marker of a fenced sequencer that lost a race can only be an aborted one, which a
    /// read_committed reader never sees; this is a second line of defence).
    pub fn apply(&mut self, m: &Marker) -> bool {
        if m.base != self.end {
            return false;
        }
        let mut base = m.base;
        for r in &m.ranges {
            let v = self.ranges.entry((r.topic, r.partition)).or_default();
            if let Some(&(_, to, _)) = v.last() {
                if r.from != to {
                    tracing::warn!(
                        topic = r.topic,
                        partition = r.partition,
                        from = r.from,
                        expected = to,
                        "origin marker range does not follow the previous one"
                    );
                }
            }
            if r.to > r.from {
                v.push((r.from, r.to, base));
            }
            base += r.to - r.from;
        }
        self.end = base;
        self.markers += 1;
        true
    }

    /// The largest origin assigned so far (0 when none).
    pub fn committed(&self) -> u64 {
        self.end - 1
    }

    /// The next marker's base.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// One past the last sequenced Kafka offset of the partition (0 when none).
    pub fn sequenced_end(&self, topic: u16, partition: u32) -> u64 {
        self.ranges
            .get(&(topic, partition))
            .and_then(|v| v.last())
            .map_or(0, |r| r.1)
    }

    /// The origin of the record at `offset`, if sequenced.
    pub fn origin(&self, topic: u16, partition: u32, offset: u64) -> Option<u64> {
        let v = self.ranges.get(&(topic, partition))?;
        let i = v.partition_point(|r| r.1 <= offset);
        let &(from, to, base) = v.get(i)?;
        (from <= offset && offset < to).then(|| base + (offset - from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_assign_origins_in_order() {
        let m = Marker {
            base: 1,
            ranges: vec![
                Range {
                    topic: 0,
                    partition: 1,
                    from: 0,
                    to: 3,
                },
                Range {
                    topic: 2,
                    partition: 0,
                    from: 10,
                    to: 12,
                },
            ],
        };
        let d = Marker::decode(&m.encode()).unwrap();
        assert_eq!(d, m);
        assert_eq!(m.end(), 6);
        let mut ix = OriginIndex::new();
        assert!(ix.apply(&m));
        assert_eq!(ix.committed(), 5);
        assert_eq!(ix.origin(0, 1, 0), Some(1));
        assert_eq!(ix.origin(0, 1, 2), Some(3));
        assert_eq!(ix.origin(0, 1, 3), None);
        assert_eq!(ix.origin(2, 0, 11), Some(5));
        assert_eq!(ix.sequenced_end(2, 0), 12);
        // A marker that does not follow is refused.
        assert!(!ix.apply(&m));
        let next = Marker {
            base: 6,
            ranges: vec![Range {
                topic: 0,
                partition: 1,
                from: 3,
                to: 5,
            }],
        };
        assert!(ix.apply(&next));
        assert_eq!(ix.origin(0, 1, 4), Some(7));
        assert!(Marker::decode(b"nope").is_err());
        let mut bad = m.encode();
        bad.push(0);
        assert!(Marker::decode(&bad).is_err());
    }
}
