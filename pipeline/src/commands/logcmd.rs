//! `twinline log`: look inside the event log (one JSON object per record, decoded).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::json;
use twinline_log::ReadBatch;
use twinline_schemas::Topic;

use crate::config::Config;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Print every record of a topic as one JSON object per line.
    Dump {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        topic: String,
        /// Only this partition.
        #[arg(long)]
        partition: Option<u32>,
        /// Start at this offset.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// At most this many records per partition.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Topics, partitions and offsets.
    Topics {
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

pub fn run(cfg: Config, cmd: LogCommand) -> Result<()> {
    match cmd {
        LogCommand::Topics { data } => {
            let store = Store::open_read_only(&data.unwrap_or_else(|| cfg.data.dir.clone()))?;
            for t in Topic::ALL {
                for p in 0..store.log.partitions(t.name())? {
                    println!(
                        "{}\t{}\tstart={}\tend={}",
                        t.name(),
                        p,
                        store.log.start_offset(t.name(), p)?,
                        store.log.end_offset(t.name(), p)?
                    );
                }
            }
            Ok(())
        }
        LogCommand::Dump {
            data,
            topic,
            partition,
            from,
            limit,
        } => {
            let store = Store::open_read_only(&data.unwrap_or_else(|| cfg.data.dir.clone()))?;
            let Some(t) = Topic::from_name(&topic) else {
                bail!(
                    "unknown topic `{topic}`; topics: {}",
                    Topic::ALL.map(|t| t.name()).join(", ")
                )
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let parts: Vec<u32> = match partition {
                Some(p) => vec![p],
                None => (0..store.log.partitions(t.name())?).collect(),
            };
            let mut batch = ReadBatch::new();
            for p in parts {
                let mut off = from.max(store.log.start_offset(t.name(), p)?);
                let end = store.log.end_offset(t.name(), p)?;
                let mut n = 0u64;
                'p: while off < end {
                    store.log.read(t.name(), p, off, 4 << 20, &mut batch)?;
                    if batch.is_empty() {
                        break;
                    }
                    for r in batch.iter() {
                        off = r.offset + 1;
                        let value = match store.codec.decode(t, r.value) {
                            Ok(payload) => payload.to_json(),
                            Err(e) => json!({"undecodable": e.to_string(), "len": r.value.len()}),
                        };
                        let headers: serde_json::Map<String, serde_json::Value> = r
                            .headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), json!(String::from_utf8_lossy(v))))
                            .collect();
                        let line = json!({
                            "topic": t.name(), "partition": p, "offset": r.offset, "origin": r.origin,
                            "timestamp": r.timestamp, "key": String::from_utf8_lossy(r.key),
                            "headers": headers, "value": value,
                        });
                        if writeln!(out, "{line}").is_err() {
                            return Ok(()); // reader went away (e.g. `| head`)
                        }
                        n += 1;
                        if limit.is_some_and(|l| n >= l) {
                            break 'p;
                        }
                    }
                }
            }
            Ok(())
        }
    }
}
