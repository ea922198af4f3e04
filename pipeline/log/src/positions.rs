//! Durable consumer positions: one small file per (group, topic, partition) under
//! `<root>/_positions/<group>/<topic>.<partition>`, replaced atomically (temp, fsync, rename,
//! fsync directory).
//!
//! File content: `u64` offset little-endian, then CRC32C of those 8 bytes, so a damaged file is
//! reported instead of silently read as a wrong position.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};

pub(crate) const POSITIONS_DIR: &str = "_positions";

/// Group names become directory names: bytes outside `[A-Za-z0-9_-]` are written as `%XX`, so any
/// non-empty group name is accepted and two names never share a directory.
pub(crate) fn encode_group(group: &str) -> Result<String> {
    if group.is_empty() {
        return Err(LogError::InvalidName {
            kind: "group",
            name: group.into(),
            reason: "empty",
        });
    }
    if group.len() > 200 {
        return Err(LogError::InvalidName {
            kind: "group",
            name: group.into(),
            reason: "longer than 200 bytes",
        });
    }
    let mut out = String::with_capacity(group.len());
    for b in group.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

pub(crate) fn position_path(
    root: &Path,
    group: &str,
    topic: &str,
    partition: u32,
) -> Result<PathBuf> {
    Ok(root
        .join(POSITIONS_DIR)
        .join(encode_group(group)?)
        .join(format!("{topic}.{partition}")))
}

pub(crate) fn write(path: &Path, offset: u64) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| LogError::InvalidArgument(format!("no parent for {}", path.display())))?;
    fs::create_dir_all(dir).map_err(|e| LogError::io("creating", dir, e))?;
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..8]);
    bytes[8..].copy_from_slice(&crc.to_le_bytes());
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| LogError::io("creating", &tmp, e))?;
    f.write_all(&bytes)
        .and_then(|_| f.sync_data())
        .map_err(|e| LogError::io("writing", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| LogError::io("renaming", &tmp, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("syncing directory", dir, e))
}

pub(crate) fn read(path: &Path) -> Result<Option<u64>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io("reading", path, e)),
    };
    let corrupt = |reason: &str| LogError::Corrupt {
        path: path.to_owned(),
        position: 0,
        reason: reason.to_owned(),
    };
    let arr: [u8; 12] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("position file is not 12 bytes"))?;
    let mut off = [0u8; 8];
    off.copy_from_slice(&arr[..8]);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&arr[8..]);
    if crc32c::crc32c(&off) != u32::from_le_bytes(crc) {
        return Err(corrupt("position file crc mismatch"));
    }
    Ok(Some(u64::from_le_bytes(off)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_encoding_is_injective_and_path_safe() {
        let names = ["a", "a.b", "a%2Eb", "../x", "task/3", "ü", "a-b_c"];
        let encoded: Vec<String> = names.iter().map(|n| encode_group(n).unwrap()).collect();
        for (i, a) in encoded.iter().enumerate() {
            assert!(!a.contains('/') && !a.contains('.'), "{a}");
            for b in &encoded[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(encode_group("").is_err());
    }
}
