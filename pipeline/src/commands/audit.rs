//! `twinline audit`: print the chain of source events behind a derived event, back to the input.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::json;
use twinline_log::ReadBatch;
use twinline_schemas::{Payload, Topic};

use crate::config::Config;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A derived event id, e.g. `twin-state:machine-events/2/1534/0`.
    pub event_id: String,
}

/// `<derived topic>:<source topic>/<partition>/<offset>/<n>` -> parts.
pub fn parse_event_id(id: &str) -> Result<(Topic, Topic, u32, u64)> {
    let (derived, rest) = id
        .split_once(':')
        .ok_or_else(|| anyhow!("event id `{id}` has no `:`"))?;
    let derived =
        Topic::from_name(derived).ok_or_else(|| anyhow!("unknown topic `{derived}` in `{id}`"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != 4 {
        bail!("event id `{id}` must look like <topic>:<source topic>/<partition>/<offset>/<n>");
    }
    let src =
        Topic::from_name(parts[0]).ok_or_else(|| anyhow!("unknown source topic `{}`", parts[0]))?;
    let partition = parts[1].parse().context("partition")?;
    let offset = parts[2].parse().context("offset")?;
    Ok((derived, src, partition, offset))
}

pub fn run(cfg: Config, args: AuditArgs) -> Result<()> {
    let store = Store::open_read_only(&args.data.clone().unwrap_or_else(|| cfg.data.dir.clone()))?;
    let chain = audit_chain(&store, &args.event_id)?;
    for (i, step) in chain.iter().enumerate() {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"step": i, "record": step}))?
        );
    }
    Ok(())
}

/// The derived event itself, then each source, ending with an input record.
pub fn audit_chain(store: &Store, event_id: &str) -> Result<Vec<serde_json::Value>> {
    let (derived, _, partition, _) = parse_event_id(event_id)?;
    let (offset, payload) = find_by_event_id(store, derived, partition, event_id)?
        .ok_or_else(|| anyhow!("no event `{event_id}` in {}/{partition}", derived.name()))?;
    let mut chain = vec![describe(derived, partition, offset, &payload)];
    let mut current = payload;
    for _ in 0..64 {
        let Some(src) = current.source().cloned() else {
            break;
        };
        let t = Topic::from_name(&src.topic)
            .ok_or_else(|| anyhow!("unknown source topic {}", src.topic))?;
        let p = read_one(store, t, src.partition as u32, src.offset as u64)?.ok_or_else(|| {
            anyhow!(
                "source {}/{}/{} is gone (retention?)",
                src.topic,
                src.partition,
                src.offset
            )
        })?;
        chain.push(describe(t, src.partition as u32, src.offset as u64, &p));
        current = p;
    }
    Ok(chain)
}

fn describe(t: Topic, p: u32, offset: u64, payload: &Payload) -> serde_json::Value {
    json!({"topic": t.name(), "partition": p, "offset": offset, "event": payload.to_json()})
}

fn read_one(store: &Store, t: Topic, p: u32, offset: u64) -> Result<Option<Payload>> {
    let mut batch = ReadBatch::new();
    store.log.read(t.name(), p, offset, 1, &mut batch)?;
    match batch.iter().next() {
        Some(r) if r.offset == offset => Ok(Some(store.codec.decode(t, r.value)?)),
        _ => Ok(None),
    }
}

fn find_by_event_id(store: &Store, t: Topic, p: u32, id: &str) -> Result<Option<(u64, Payload)>> {
    let mut batch = ReadBatch::new();
    let mut off = store.log.start_offset(t.name(), p)?;
    let end = store.log.end_offset(t.name(), p)?;
    while off < end {
        store.log.read(t.name(), p, off, 4 << 20, &mut batch)?;
        if batch.is_empty() {
            break;
        }
        for r in batch.iter() {
            off = r.offset + 1;
            if let Ok(payload) = store.codec.decode(t, r.value) {
                if payload.event_id() == Some(id) {
                    return Ok(Some((r.offset, payload)));
                }
            }
        }
    }
    Ok(None)
}
