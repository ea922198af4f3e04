//! Task checkpoints: processor state, input offsets and output ends, written atomically as one file.
//!
//! Layout: `TLCK` magic, u32 header length, JSON header, then each processor's state blob as
//! u64 length + bytes, then a CRC32C of everything before it. A checkpoint is replaced by writing a
//! temporary file, fsyncing it, renaming it over the old one and fsyncing the directory, so a crash
//! at any point leaves either the old or the new checkpoint, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"TLCK";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicPartitionOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    pub version: u32,
    pub task: String,
    /// Next offset to read, per input partition.
    pub inputs: Vec<TopicPartitionOffset>,
    /// End offset (next offset to write) of every output partition the task owns.
    pub outputs: Vec<TopicPartitionOffset>,
    pub watermark: i64,
    pub last_tick: i64,
    pub events_processed: u64,
    pub processors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub header: CheckpointHeader,
    pub states: Vec<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint i/o at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("checkpoint header serializes");
        let mut out =
            Vec::with_capacity(header.len() + 64 + self.states.iter().map(Vec::len).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for s in &self.states {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
        let corrupt = |reason: &str| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        if bytes.len() < 12 || &bytes[..4] != MAGIC {
            return Err(corrupt("bad magic or too short"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_le_bytes(crc.try_into().map_err(|_| corrupt("crc"))?);
        if crc32c::crc32c(body) != crc {
            return Err(corrupt("crc mismatch"));
        }
        let hlen = u32::from_le_bytes(
            body[4..8]
                .try_into()
                .map_err(|_| corrupt("header length"))?,
        ) as usize;
        let hend = 8usize
            .checked_add(hlen)
            .filter(|&e| e <= body.len())
            .ok_or_else(|| corrupt("header length"))?;
        let header: CheckpointHeader =
            serde_json::from_slice(&body[8..hend]).map_err(|e| corrupt(&format!("header: {e}")))?;
        let mut states = Vec::with_capacity(header.processors.len());
        let mut pos = hend;
        for _ in 0..header.processors.len() {
            let len_end = pos
                .checked_add(8)
                .filter(|&e| e <= body.len())
                .ok_or_else(|| corrupt("state length"))?;
            let len = u64::from_le_bytes(
                body[pos..len_end]
                    .try_into()
                    .map_err(|_| corrupt("state length"))?,
            ) as usize;
            let end = len_end
                .checked_add(len)
                .filter(|&e| e <= body.len())
                .ok_or_else(|| corrupt("state"))?;
            states.push(body[len_end..end].to_vec());
            pos = end;
        }
        if pos != body.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Checkpoint { header, states })
    }

    /// Atomically replace the checkpoint at `path`.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = path.with_extension("ckpt.tmp");
        {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io(&tmp))?;
            f.write_all(&self.encode()).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, path).map_err(io(path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(())
    }

    pub fn read(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        match fs::read(path) {
            Ok(bytes) => Checkpoint::decode(&bytes, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CheckpointError::Io {
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            header: CheckpointHeader {
                version: 1,
                task: "partition-3".into(),
                inputs: vec![TopicPartitionOffset {
                    topic: "sensor-readings".into(),
                    partition: 3,
                    offset: 42,
                }],
                outputs: vec![TopicPartitionOffset {
                    topic: "twin-state".into(),
                    partition: 3,
                    offset: 7,
                }],
                watermark: 1_000,
                last_tick: 1,
                events_processed: 43,
                processors: vec!["twin".into(), "vision".into()],
            },
            states: vec![b"abc".to_vec(), vec![]],
        }
    }

    #[test]
    fn round_trip_and_atomic_replace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.ckpt");
        assert_eq!(Checkpoint::read(&p).unwrap(), None);
        let c = sample();
        c.write(&p).unwrap();
        assert_eq!(Checkpoint::read(&p).unwrap(), Some(c.clone()));
        let mut c2 = c.clone();
        c2.header.events_processed = 99;
        c2.write(&p).unwrap();
        assert_eq!(
            Checkpoint::read(&p)
                .unwrap()
                .unwrap()
                .header
                .events_processed,
            99
        );
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(
                Checkpoint::decode(&b, Path::new("x")).is_err(),
                "flip at {i} undetected"
            );
        }
        assert!(Checkpoint::decode(&bytes[..bytes.len() - 1], Path::new("x")).is_err());
    }
}
