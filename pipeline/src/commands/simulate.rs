//! `twinline simulate`: run the plant simulator into the event log (no processing).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use twinline_schemas::Payload;

use crate::config::Config;
use crate::runtime::ingest::Ingestor;
use crate::runtime::metrics::Metrics;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long)]
    pub machines: Option<usize>,
    /// Event-time span to simulate, e.g. 2h, 30m, 7d.
    #[arg(long, default_value = "2h")]
    pub duration: String,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Pace the simulation to wall time instead of running flat out.
    #[arg(long)]
    pub realtime: bool,
    /// Confluent-compatible schema registry to register the schemas with and take ids from
    /// (default from config `distributed.schema_registry`: the data directory's own).
    #[arg(long, env = "TWINLINE_SCHEMA_REGISTRY")]
    pub schema_registry: Option<String>,
    /// Apache Kafka bootstrap servers: produce the simulated inputs to Kafka instead of
    /// the embedded log. Needs
    /// `--schema-registry`. Default from config `distributed.kafka`
    /// (`TWINLINE_DISTRIBUTED__KAFKA`).
    #[arg(long)]
    pub kafka: Option<String>,
    /// Prefix of every Kafka topic, transactional id and group (default from config
    /// `distributed.topic_prefix`: none).
    #[arg(long)]
    pub topic_prefix: Option<String>,
}

pub fn run(mut cfg: Config, args: SimulateArgs) -> Result<()> {
    if let Some(url) = &args.schema_registry {
        cfg.distributed.schema_registry = url.clone();
    }
    if let Some(k) = &args.kafka {
        cfg.distributed.kafka = k.clone();
    }
    if let Some(p) = &args.topic_prefix {
        cfg.distributed.topic_prefix = p.clone();
    }
    let dir = args.data.clone().unwrap_or_else(|| cfg.data.dir.clone());
    let store = Store::open(&dir, &cfg)?;
    let sim_cfg = super::run::sim_options(&cfg, args.machines, args.seed, Some(&args.duration))?;
    let stats = simulate_into(&store, sim_cfg, args.realtime, true)?;
    eprintln!(
        "simulated {} events in {:.2}s ({:.0} events/s) into {}",
        stats.events,
        stats.wall.as_secs_f64(),
        stats.events as f64 / stats.wall.as_secs_f64().max(1e-9),
        dir.display()
    );
    Ok(())
}

pub struct SimStats {
    pub events: u64,
    pub wall: Duration,
}

/// Drive the simulator to completion, appending to the store's log.
pub fn simulate_into(
    store: &Store,
    sim_cfg: twinline_sim::SimConfig,
    realtime: bool,
    progress: bool,
) -> Result<SimStats> {
    let start_ms = sim_cfg.start_time_ms;
    let span = sim_cfg.duration_ms.max(1);
    let mut sim = twinline_sim::Simulator::new(sim_cfg).context("simulator config")?;
    let mut ingestor = Ingestor::new(
        store.log_dyn(),
        store.codec.clone(),
        Arc::new(Metrics::new()),
    );
    let pb = progress.then(|| super::progress_bar(span / 1000, "simulated seconds"));
    let wall = Instant::now();
    let mut buf: Vec<Payload> = Vec::with_capacity(8192);
    let mut events = 0u64;
    loop {
        buf.clear();
        let more = sim.next_batch(8192, &mut buf);
        if let Some(last) = buf.last() {
            let t = (last.event_time() - start_ms).max(0);
            if realtime {
                let due = Duration::from_millis(t as u64);
                if let Some(wait) = due.checked_sub(wall.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            if let Some(pb) = &pb {
                pb.set_position(t as u64 / 1000);
            }
        }
        ingestor
            .ingest(&buf)
            .context("appending simulated events")?;
        events += buf.len() as u64;
        if !more {
            break;
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(SimStats {
        events,
        wall: wall.elapsed(),
    })
}
