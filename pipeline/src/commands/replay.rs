//! `twinline replay`: copy the input topics (as of a time) into a fresh directory and re-derive
//! everything there. Input records are copied verbatim, origin included, so the merge order and
//! every derived byte equal the original run's. The source is a data directory or, with
//! `--kafka`, the input topics of a Kafka pipeline (with the origins its sequencer gave them):
//! an embedded re-derivation of a distributed run, byte for byte.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use twinline_log::{EventLog, NewRecord, ReadBatch};
use twinline_schemas::Topic;

use crate::config::Config;
use crate::embedded::{EmbeddedPipeline, StartOptions};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The data directory to replay (not with `--kafka`).
    #[arg(long, required_unless_present = "kafka")]
    pub data: Option<PathBuf>,
    /// Replay the input topics of the pipeline on this Kafka instead (needs `--schema-registry`;
    /// the re-derived log goes to `--out`, embedded).
    #[arg(long)]
    pub kafka: Option<String>,
    /// Topic prefix of that pipeline (as `run --topic-prefix`).
    #[arg(long)]
    pub topic_prefix: Option<String>,
    /// The schema registry of that pipeline (as `run --schema-registry`).
    #[arg(long, env = "TWINLINE_SCHEMA_REGISTRY")]
    pub schema_registry: Option<String>,
    /// A fresh directory for the re-derived log (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Replay the inputs up to this event time (RFC 3339): ingestion is cut at the first input
    /// record later than it.
    #[arg(long)]
    pub until: Option<String>,
}

pub struct ReplayStats {
    pub input_records: u64,
    pub copy: Duration,
    pub derive: Duration,
}

pub fn run(mut cfg: Config, args: ReplayArgs) -> Result<()> {
    if let Some(k) = &args.kafka {
        cfg.distributed.kafka = k.clone();
    }
    if let Some(p) = &args.topic_prefix {
        cfg.distributed.topic_prefix = p.clone();
    }
    if let Some(r) = &args.schema_registry {
        cfg.distributed.schema_registry = r.clone();
    }
    let data = args.data.clone().unwrap_or_default();
    let until = args
        .until
        .as_deref()
        .map(super::parse_time_ms)
        .transpose()?;
    let stats = replay(&cfg, &data, &args.out, until, true)?;
    let total = stats.copy + stats.derive;
    eprintln!(
        "replayed {} input records into {} in {:.2}s (copy {:.2}s, derive {:.2}s: {:.0} events/s)",
        stats.input_records,
        args.out.display(),
        total.as_secs_f64(),
        stats.copy.as_secs_f64(),
        stats.derive.as_secs_f64(),
        stats.input_records as f64 / stats.derive.as_secs_f64().max(1e-9)
    );
    Ok(())
}

pub fn replay(
    cfg: &Config,
    src_dir: &Path,
    out: &Path,
    until_ms: Option<i64>,
    progress: bool,
) -> Result<ReplayStats> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        bail!(
            "{} is not empty; replay needs a fresh directory",
            out.display()
        );
    }
    let (src_log, src_partitions): (std::sync::Arc<dyn EventLog>, u32) =
        match crate::store::open_kafka(cfg)? {
            Some(k) => {
                let n = k
                    .partitions(Topic::SensorReadings.name())
                    .context("the pipeline's input topics")?;
                // Input records get their origins from the sequencer of a running `twinline
                // run`; the replay copies those that have one.
                let (tx, rx) = std::sync::mpsc::channel();
                let waiter = k.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(waiter.wait_inputs_sequenced());
                });
                match rx.recv_timeout(Duration::from_secs(10)) {
                    Ok(r) => r.context("waiting for the inputs to be sequenced")?,
                    Err(_) => eprintln!(
                        "warning: some committed input records have no origin yet (is a `twinline run` \
                         on these topics running? its sequencer gives them one); replaying those that have"
                    ),
                }
                (k, n)
            }
            None => {
                let src = Store::open_read_only(src_dir)?;
                // Same schema ids as the source, so the wire-format bytes are identical.
                std::fs::create_dir_all(out.join("registry"))?;
                let reg = src_dir.join("registry").join("registry.json");
                if reg.exists() {
                    std::fs::copy(&reg, out.join("registry").join("registry.json"))
                        .context("copying the schema registry")?;
                }
                (src.log.clone(), src.partitions)
            }
        };
    let mut cfg = cfg.clone();
    cfg.log.partitions = src_partitions;
    // The re-derivation is embedded (a remote registry stays: the records carry its ids).
    cfg.distributed.kafka.clear();
    let copy_started = Instant::now();
    let input_records;
    {
        let dst = Store::open(out, &cfg)?;
        let cut = match until_ms {
            Some(t) => twinline_sinks::history::cut_origin(&*src_log, t.saturating_add(1))?,
            None => u64::MAX,
        };
        input_records = copy_inputs(&*src_log, &*dst.log, cut, progress)?;
        for t in Topic::ALL.into_iter().filter(|t| t.is_input()) {
            for p in 0..dst.log.partitions(t.name())? {
                dst.log.sync(t.name(), p)?;
            }
        }
    }
    let copy = copy_started.elapsed();
    let derive_started = Instant::now();
    let pipeline = EmbeddedPipeline::start(
        &cfg,
        out,
        StartOptions {
            simulate: None,
            until_caught_up: true,
            factory: None,
            views: false,
            history: false,
        },
    )?;
    pipeline.wait()?;
    Ok(ReplayStats {
        input_records,
        copy,
        derive: derive_started.elapsed(),
    })
}

fn copy_inputs(src: &dyn EventLog, dst: &dyn EventLog, cut: u64, progress: bool) -> Result<u64> {
    let inputs: Vec<Topic> = Topic::ALL.into_iter().filter(|t| t.is_input()).collect();
    let mut total_len = 0;
    for t in &inputs {
        for p in 0..src.partitions(t.name())? {
            total_len += src.end_offset(t.name(), p)? - src.start_offset(t.name(), p)?;
        }
    }
    let pb = progress.then(|| super::progress_bar(total_len, "copying input records"));
    let mut batch = ReadBatch::new();
    let mut copied = 0u64;
    for t in inputs {
        for p in 0..src.partitions(t.name())? {
            let mut off = src.start_offset(t.name(), p)?;
            let end = src.end_offset(t.name(), p)?;
            let mut empty_since: Option<Instant> = None;
            'part: while off < end {
                src.read(t.name(), p, off, 4 << 20, &mut batch)?;
                if batch.is_empty() && batch.next_offset().is_some_and(|n| n > off) {
                    // Only offsets without records (transaction markers) were left.
                    off = batch.next_offset().unwrap_or(off);
                    continue;
                }
                if batch.is_empty() {
                    // A remote log may answer before its first fetch arrives: retry a while.
                    let since = *empty_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(30) {
                        bail!(
                            "{}/{p}: no records at offset {off} below the end {end}",
                            t.name()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                empty_since = None;
                let headers: Vec<Vec<(&str, &[u8])>> =
                    batch.iter().map(|r| r.headers.iter().collect()).collect();
                let mut recs = Vec::with_capacity(batch.len());
                let mut offsets = Vec::with_capacity(batch.len());
                let mut stop = false;
                // Records keep their source offsets, so provenance (topic, partition, offset)
                // does; offsets without records (transaction markers, aborted records,
                // compaction, retention) stay without records in the copy.
                for (r, h) in batch.iter().zip(&headers) {
                    off = r.offset + 1;
                    if r.origin >= cut {
                        stop = true;
                        break;
                    }
                    offsets.push(r.offset);
                    recs.push(NewRecord {
                        key: r.key,
                        value: r.value,
                        timestamp: r.timestamp,
                        origin: Some(r.origin),
                        headers: h,
                    });
                }
                if !recs.is_empty() {
                    dst.append_at(t.name(), p, &offsets, &recs)?;
                    copied += recs.len() as u64;
                    if let Some(pb) = &pb {
                        pb.inc(recs.len() as u64);
                    }
                }
                if stop {
                    break 'part;
                }
            }
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(copied)
}
