//! The record frame (one layout shared by the writer, recovery and readers) and the read-side types
//! `RecordRef`, `Headers` and `ReadBatch`, which borrow from one reusable buffer.
//!
//! Frame layout (all integers little-endian), see the FORMAT section of the crate docs:
//!
//! ```text
//! u32 len            bytes after this field (crc + body)
//! u32 crc            CRC32C of [len field ++ body]
//! body:
//!   u64 offset
//!   i64 timestamp    event time, Unix ms
//!   u64 origin
//!   u32 key_len
//!   u32 value_len
//!   u16 header_count
//!   key, value
//!   header_count x (u16 name_len, name (UTF-8), u32 value_len, value)
//! ```

/// Size of `len` + `crc`.
pub(crate) const FRAME_PREFIX: usize = 8;
/// Fixed part of the body: offset, timestamp, origin, key_len, value_len, header_count.
pub(crate) const BODY_FIXED: usize = 8 + 8 + 8 + 4 + 4 + 2;
/// Smallest possible frame (empty key, value, no headers).
pub(crate) const MIN_FRAME: usize = FRAME_PREFIX + BODY_FIXED;
/// Hard ceiling on a frame size accepted by readers and recovery, independent of configuration,
/// so a garbage length can never make us allocate more than this.
pub(crate) const MAX_FRAME: usize = 1 << 30;

/// A record to append.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    /// Record key (machine id, job id, ...). Used by `partition_for`.
    pub key: &'a [u8],
    /// Record value (Confluent wire format in twinline, opaque here).
    pub value: &'a [u8],
    /// Event time in Unix milliseconds.
    pub timestamp: i64,
    /// `None`: the log stamps the next global origin. `Some(o)`: keep `o` (derived records, replay).
    pub origin: Option<u64>,
    /// Diagnostic headers, stored verbatim.
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl<'a> NewRecord<'a> {
    /// A record with no headers whose origin the log assigns.
    pub fn new(key: &'a [u8], value: &'a [u8], timestamp: i64) -> Self {
        NewRecord {
            key,
            value,
            timestamp,
            origin: None,
            headers: &[],
        }
    }

    /// The same record carrying a given origin.
    pub fn with_origin(mut self, origin: u64) -> Self {
        self.origin = Some(origin);
        self
    }

    /// The same record with headers.
    pub fn with_headers(mut self, headers: &'a [(&'a str, &'a [u8])]) -> Self {
        self.headers = headers;
        self
    }

    /// Bytes this record occupies in a segment file (frame included).
    pub fn encoded_len(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| 2 + name.len() + 4 + value.len())
            .sum();
        MIN_FRAME + self.key.len() + self.value.len() + headers
    }

    /// Checks the field lengths fit the frame's length fields.
    pub(crate) fn check_lengths(&self) -> Result<(), String> {
        if self.key.len() > u32::MAX as usize || self.value.len() > u32::MAX as usize {
            return Err("key or value longer than u32::MAX".into());
        }
        if self.headers.len() > u16::MAX as usize {
            return Err(format!(
                "{} headers, at most {}",
                self.headers.len(),
                u16::MAX
            ));
        }
        for (name, value) in self.headers {
            if name.len() > u16::MAX as usize || value.len() > u32::MAX as usize {
                return Err(format!("header {name:?} too long"));
            }
        }
        Ok(())
    }
}

/// Appends one encoded frame to `buf`. Lengths must have passed `check_lengths`.
pub(crate) fn encode_into(buf: &mut Vec<u8>, offset: u64, origin: u64, rec: &NewRecord<'_>) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_PREFIX]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&rec.timestamp.to_le_bytes());
    buf.extend_from_slice(&origin.to_le_bytes());
    buf.extend_from_slice(&(rec.key.len() as u32).to_le_bytes());
    buf.extend_from_slice(&(rec.value.len() as u32).to_le_bytes());
    buf.extend_from_slice(&(rec.headers.len() as u16).to_le_bytes());
    buf.extend_from_slice(rec.key);
    buf.extend_from_slice(rec.value);
    for (name, value) in rec.headers {
        buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
        buf.extend_from_slice(value);
    }
    let len = (buf.len() - start - 4) as u32;
    let len_bytes = len.to_le_bytes();
    buf[start..start + 4].copy_from_slice(&len_bytes);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), &buf[start + FRAME_PREFIX..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Outcome of validating the frame at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameCheck {
    /// A valid frame of `total` bytes.
    Complete { total: usize },
    /// Not enough bytes; `needed` is the full frame size when the length field was readable.
    Incomplete { needed: Option<usize> },
    /// The bytes cannot be a valid frame.
    Bad(&'static str),
}

#[inline]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
#[inline]
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Validates the frame at the start of `buf`: length sanity, CRC, and that the inner lengths add up
/// exactly to the frame (so `RecordRef::parse` can slice without further checks).
pub(crate) fn check_frame(buf: &[u8]) -> FrameCheck {
    if buf.len() < 4 {
        return FrameCheck::Incomplete { needed: None };
    }
    let len = u32_at(buf, 0) as usize;
    if len < MIN_FRAME - 4 {
        return FrameCheck::Bad("frame length below the minimum");
    }
    if len > MAX_FRAME {
        return FrameCheck::Bad("frame length above the maximum");
    }
    let total = len + 4;
    if buf.len() < total {
        return FrameCheck::Incomplete {
            needed: Some(total),
        };
    }
    let frame = &buf[..total];
    let stored = u32_at(frame, 4);
    let computed = crc32c::crc32c_append(crc32c::crc32c(&frame[..4]), &frame[FRAME_PREFIX..]);
    if stored != computed {
        return FrameCheck::Bad("crc mismatch");
    }
    let key_len = u32_at(frame, 32) as usize;
    let value_len = u32_at(frame, 36) as usize;
    let header_count = u16_at(frame, 40) as usize;
    let mut at = MIN_FRAME;
    at = match at
        .checked_add(key_len)
        .and_then(|a| a.checked_add(value_len))
    {
        Some(a) if a <= total => a,
        _ => return FrameCheck::Bad("key/value lengths exceed the frame"),
    };
    for _ in 0..header_count {
        if at + 2 > total {
            return FrameCheck::Bad("header exceeds the frame");
        }
        let name_len = u16_at(frame, at) as usize;
        at += 2;
        if at + name_len + 4 > total {
            return FrameCheck::Bad("header exceeds the frame");
        }
        if std::str::from_utf8(&frame[at..at + name_len]).is_err() {
            return FrameCheck::Bad("header name is not UTF-8");
        }
        at += name_len;
        let value_len = u32_at(frame, at) as usize;
        at += 4;
        at = match at.checked_add(value_len) {
            Some(a) if a <= total => a,
            _ => return FrameCheck::Bad("header exceeds the frame"),
        };
    }
    if at != total {
        return FrameCheck::Bad("trailing bytes inside the frame");
    }
    FrameCheck::Complete { total }
}

/// Offset, timestamp and origin of a validated frame, without building a `RecordRef`.
#[inline]
pub(crate) fn frame_fixed(frame: &[u8]) -> (u64, i64, u64) {
    (
        u64_at(frame, 8),
        u64_at(frame, 16) as i64,
        u64_at(frame, 24),
    )
}

/// A record read from the log, borrowing from a `ReadBatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Position in the partition.
    pub offset: u64,
    /// Event time, Unix ms.
    pub timestamp: i64,
    /// Global origin (see ARCHITECTURE.md "Determinism: the origin order").
    pub origin: u64,
    /// Key bytes.
    pub key: &'a [u8],
    /// Value bytes.
    pub value: &'a [u8],
    /// Headers, decoded lazily.
    pub headers: Headers<'a>,
}

impl<'a> RecordRef<'a> {
    /// Parses a frame that `check_frame` accepted.
    #[inline]
    pub(crate) fn parse(frame: &'a [u8]) -> Self {
        let (offset, timestamp, origin) = frame_fixed(frame);
        let key_len = u32_at(frame, 32) as usize;
        let value_len = u32_at(frame, 36) as usize;
        let count = u16_at(frame, 40);
        let key_end = MIN_FRAME + key_len;
        let value_end = key_end + value_len;
        RecordRef {
            offset,
            timestamp,
            origin,
            key: &frame[MIN_FRAME..key_end],
            value: &frame[key_end..value_end],
            headers: Headers {
                raw: &frame[value_end..],
                count,
            },
        }
    }
}

/// The headers of a `RecordRef` (validated when the record was read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    raw: &'a [u8],
    count: u16,
}

impl<'a> Headers<'a> {
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.count as usize
    }
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Iterates `(name, value)` in stored order.
    pub fn iter(&self) -> HeadersIter<'a> {
        HeadersIter {
            raw: self.raw,
            left: self.count,
        }
    }
    /// The value of the first header with this name.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl<'a> IntoIterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = HeadersIter<'a>;
    fn into_iter(self) -> HeadersIter<'a> {
        self.iter()
    }
}

/// Iterator over `Headers`.
#[derive(Debug, Clone)]
pub struct HeadersIter<'a> {
    raw: &'a [u8],
    left: u16,
}

impl<'a> Iterator for HeadersIter<'a> {
    type Item = (&'a str, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        // Layout was validated by `check_frame` (lengths in bounds, names UTF-8); the `get`s only
        // guard against a logic error and end the iteration instead of panicking.
        let name_len = u16::from_le_bytes([*self.raw.first()?, *self.raw.get(1)?]) as usize;
        let name = std::str::from_utf8(self.raw.get(2..2 + name_len)?).ok()?;
        let at = 2 + name_len;
        let len_bytes = self.raw.get(at..at + 4)?;
        let value_len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let value = self.raw.get(at + 4..at + 4 + value_len)?;
        self.raw = &self.raw[at + 4 + value_len..];
        self.left -= 1;
        Some((name, value))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

/// A batch of records read from one partition: one contiguous byte buffer and the start of each
/// record in it. Reuse one `ReadBatch` across `read` calls: the buffers keep their capacity, so a
/// steady-state read allocates nothing.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub(crate) buf: Vec<u8>,
    /// Start of each returned frame in `buf` (frames are contiguous; the end of frame i is the
    /// start of frame i+1, or `end`).
    pub(crate) starts: Vec<usize>,
    pub(crate) end: usize,
    /// Set by backends whose offsets may hold no record (Kafka: transaction markers, aborted
    /// records): where the next read should start, past everything this read covered.
    pub(crate) next: Option<u64>,
}

impl ReadBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch whose buffer can hold `bytes` without reallocating.
    pub fn with_capacity(bytes: usize) -> Self {
        ReadBatch {
            buf: Vec::with_capacity(bytes),
            starts: Vec::with_capacity(bytes / 64),
            end: 0,
            next: None,
        }
    }

    /// Empties the batch, keeping its buffers' capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.starts.clear();
        self.end = 0;
        self.next = None;
    }

    /// Sets where the next read should start when the backend knows it lies past the last record
    /// returned (backends only; see [`ReadBatch::next_offset`]).
    pub fn set_next_offset(&mut self, next: u64) {
        self.next = Some(next);
    }

    /// Appends one record with the given offset and origin (for backends that do not read frames
    /// from segments, such as Kafka). Offsets must increase along the batch.
    pub fn push(&mut self, offset: u64, origin: u64, rec: &NewRecord<'_>) -> Result<(), String> {
        rec.check_lengths()?;
        debug_assert!(self.last_offset().is_none_or(|o| o < offset));
        self.buf.truncate(self.end);
        self.starts.push(self.end);
        encode_into(&mut self.buf, offset, origin, rec);
        self.end = self.buf.len();
        Ok(())
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when the read returned nothing (the reader is at the end of the partition).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Encoded bytes of the returned records.
    pub fn byte_len(&self) -> usize {
        match self.starts.first() {
            Some(&s) => self.end - s,
            None => 0,
        }
    }

    /// Record `i`.
    pub fn get(&self, i: usize) -> Option<RecordRef<'_>> {
        let start = *self.starts.get(i)?;
        let end = self.starts.get(i + 1).copied().unwrap_or(self.end);
        Some(RecordRef::parse(&self.buf[start..end]))
    }

    /// Offset of the first record.
    pub fn first_offset(&self) -> Option<u64> {
        self.get(0).map(|r| r.offset)
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> Option<u64> {
        self.len()
            .checked_sub(1)
            .and_then(|i| self.get(i))
            .map(|r| r.offset)
    }

    /// The offset to read from next: one past the last record, or further when the backend
    /// stepped over offsets that hold no record (Kafka's transaction markers, aborted records);
    /// `None` if empty and nothing was stepped over.
    pub fn next_offset(&self) -> Option<u64> {
        let after_last = self.last_offset().map(|o| o + 1);
        match (after_last, self.next) {
            (Some(a), Some(n)) => Some(a.max(n)),
            (a, n) => a.or(n),
        }
    }

    /// Iterates the records in offset order.
    pub fn iter(&self) -> ReadBatchIter<'_> {
        ReadBatchIter { batch: self, i: 0 }
    }
}

impl<'a> IntoIterator for &'a ReadBatch {
    type Item = RecordRef<'a>;
    type IntoIter = ReadBatchIter<'a>;
    fn into_iter(self) -> ReadBatchIter<'a> {
        self.iter()
    }
}

/// Iterator over a `ReadBatch`.
#[derive(Debug, Clone)]
pub struct ReadBatchIter<'a> {
    batch: &'a ReadBatch,
    i: usize,
}

impl<'a> Iterator for ReadBatchIter<'a> {
    type Item = RecordRef<'a>;
    #[inline]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        let r = self.batch.get(self.i)?;
        self.i += 1;
        Some(r)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.batch.len() - self.i;
        (n, Some(n))
    }
}

impl ExactSizeIterator for ReadBatchIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_crc_detects_flips() {
        let headers: [(&str, &[u8]); 2] = [("inference-us", b"1234"), ("ü", b"")];
        let rec =
            NewRecord::new(b"m-01", b"\x00\x00\x00\x00\x07payload", -5).with_headers(&headers);
        let mut buf = Vec::new();
        encode_into(&mut buf, 42, 7, &rec);
        assert_eq!(buf.len(), rec.encoded_len());
        assert_eq!(check_frame(&buf), FrameCheck::Complete { total: buf.len() });
        let r = RecordRef::parse(&buf);
        assert_eq!((r.offset, r.timestamp, r.origin), (42, -5, 7));
        assert_eq!(r.key, b"m-01");
        assert_eq!(r.value, rec.value);
        let got: Vec<_> = r.headers.iter().collect();
        assert_eq!(got, headers.to_vec());
        assert_eq!(r.headers.get("ü"), Some(&b""[..]));
        // Every single-bit flip anywhere in the frame must be rejected (or change the length so the
        // frame becomes incomplete), never accepted as a different record.
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                assert!(
                    !matches!(check_frame(&b), FrameCheck::Complete { .. }),
                    "flip at byte {i} bit {bit} accepted"
                );
            }
        }
        // Every strict prefix is incomplete, not bad and not complete.
        for n in 0..buf.len() {
            assert!(matches!(
                check_frame(&buf[..n]),
                FrameCheck::Incomplete { .. }
            ));
        }
    }
}
