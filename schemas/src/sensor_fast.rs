//! Hand-written Avro codec for the current `SensorReading` schema, the busiest topic.
//!
//! Used by `Codec` only while the embedded `sensor-readings.avsc` has exactly the Parsing
//! Canonical Form below (checked once at `Codec::new`); if the schema changes, the codec falls
//! back to serde_avro_fast and a test flags that this file needs updating. A proptest checks that
//! both produce identical bytes and values.

use crate::error::DecodeError;
use crate::records::{SensorKind, SensorReading};

/// Parsing Canonical Form (as apache-avro 0.22 renders it) of the schema this module implements.
pub(crate) const CANONICAL: &str = r#"{"name":"io.twinline.SensorReading","type":"record","fields":[{"name":"machine_id","type":"string"},{"name":"sensor","type":{"name":"io.twinline.SensorKind","type":"enum","symbols":["TEMPERATURE","VIBRATION","PRESSURE","SPEED"]}},{"name":"value","type":"double"},{"name":"unit","type":"string"},{"name":"event_time","type":{"type":"long"}}]}"#;

fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    write_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn encode(r: &SensorReading, out: &mut Vec<u8>) {
    out.reserve(r.machine_id.len() + r.unit.len() + 24);
    write_str(out, &r.machine_id);
    write_long(out, r.sensor as i64);
    out.extend_from_slice(&r.value.to_le_bytes());
    write_str(out, &r.unit);
    write_long(out, r.event_time);
}

fn eof() -> DecodeError {
    DecodeError::Undecodable("unexpected end of the Avro body".to_string())
}

fn read_long(buf: &mut &[u8]) -> Result<i64, DecodeError> {
    let mut z: u64 = 0;
    let mut shift = 0u32;
    loop {
        let (&b, rest) = buf.split_first().ok_or_else(eof)?;
        *buf = rest;
        if shift > 63 {
            return Err(DecodeError::Undecodable(
                "varint longer than 10 bytes".to_string(),
            ));
        }
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
        shift += 7;
    }
}

fn read_string(buf: &mut &[u8], field: &str) -> Result<String, DecodeError> {
    let len = read_long(buf)?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= buf.len())
        .ok_or_else(|| {
            DecodeError::Undecodable(format!("{field}: string length {len} out of range"))
        })?;
    let (s, rest) = buf.split_at(len);
    *buf = rest;
    std::str::from_utf8(s)
        .map(str::to_owned)
        .map_err(|e| DecodeError::Undecodable(format!("{field}: {e}")))
}

pub(crate) fn decode(body: &[u8]) -> Result<SensorReading, DecodeError> {
    let mut buf = body;
    let machine_id = read_string(&mut buf, "machine_id")?;
    let sensor = match read_long(&mut buf)? {
        0 => SensorKind::Temperature,
        1 => SensorKind::Vibration,
        2 => SensorKind::Pressure,
        3 => SensorKind::Speed,
        i => {
            return Err(DecodeError::Undecodable(format!(
                "sensor: enum index {i} out of range"
            )))
        }
    };
    let (value, rest) = buf.split_first_chunk::<8>().ok_or_else(eof)?;
    let value = f64::from_le_bytes(*value);
    buf = rest;
    let unit = read_string(&mut buf, "unit")?;
    let event_time = read_long(&mut buf)?;
    if !buf.is_empty() {
        return Err(DecodeError::Undecodable(format!(
            "{} trailing bytes after the record",
            buf.len()
        )));
    }
    Ok(SensorReading {
        machine_id,
        sensor,
        value,
        unit,
        event_time,
    })
}
