//! `twinline run`: processors, views and the read API over a data directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use clap::Args;
use tracing::info;

use crate::config::Config;
use crate::embedded::{EmbeddedPipeline, SimOptions, StartOptions};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Data directory (default from config: ./data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Also run the plant simulator, feeding the log live.
    #[arg(long)]
    pub simulate: bool,
    /// Address of the read API (default from config: 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Process every input present (and what the simulator produces), take a final checkpoint, exit 0.
    #[arg(long)]
    pub until_caught_up: bool,
    /// Simulator: number of machines.
    #[arg(long)]
    pub machines: Option<usize>,
    /// Simulator: seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulator: event-time duration to simulate (e.g. 2h); default runs for a week of plant time.
    #[arg(long)]
    pub duration: Option<String>,
    /// Simulator: run flat out instead of paced to wall time (the default for --simulate without
    /// --until-caught-up is paced, so the dashboard shows a live plant).
    #[arg(long)]
    pub fast: bool,
    /// Simulator pacing: event-time seconds per wall second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Simulator events per append (default 256 paced, 4096 with --fast or --until-caught-up).
    /// Never changes what is derived (origins follow the simulator's order); for tests and
    /// benchmarks.
    #[arg(long)]
    pub ingest_batch: Option<usize>,
    /// Serve the views over the Postgres wire protocol here (psql, Grafana, BI tools;
    /// read-only, passwords are API tokens). Default from config `sql.pg_listen` (off).
    #[arg(long)]
    pub pg_listen: Option<SocketAddr>,
    /// Serve the views over Arrow Flight SQL here (ADBC, pyarrow). Default from config
    /// `sql.flight_listen` (off).
    #[arg(long)]
    pub flight_listen: Option<SocketAddr>,
    /// Directory with the built dashboard (defaults to queries/web/dist next to the binary's source).
    #[arg(long)]
    pub web_dir: Option<PathBuf>,
    /// Confluent-compatible schema registry (e.g. `twinline registry`) to register every schema
    /// with at startup and resolve schema ids through (default from config
    /// `distributed.schema_registry`: the data directory's own registry).
    #[arg(long, env = "TWINLINE_SCHEMA_REGISTRY")]
    pub schema_registry: Option<String>,
    /// Apache Kafka bootstrap servers: read inputs from and write derived events to Kafka
    /// (exactly once, through transactions) instead of the embedded log. Needs
    /// `--schema-registry`. Default from config `distributed.kafka`
    /// (`TWINLINE_DISTRIBUTED__KAFKA`).
    #[arg(long)]
    pub kafka: Option<String>,
    /// Prefix of every Kafka topic, transactional id and group (default from config
    /// `distributed.topic_prefix`: none).
    #[arg(long)]
    pub topic_prefix: Option<String>,
    /// With `--kafka`: this instance's stable name in the task group (config
    /// `distributed.instance_id`). Restarted under the same name, it takes its task slots back at
    /// once; every instance sharing the topics needs its own name.
    #[arg(long)]
    pub instance_id: Option<String>,
    /// Scylla/Cassandra contact points (comma-separated `host:port`) to write the served state
    /// to: current twin state, failure predictions, schedule, day-bucketed twin-state history
    /// (default from config `distributed.scylla`: none).
    #[arg(long, env = "TWINLINE_SCYLLA")]
    pub scylla: Option<String>,
    /// Serve the read API from the Cassandra tables of `--scylla` (written there by the pipeline
    /// instances) and run no processors and no views: an API instance with no state of its own.
    /// Writes (ingest, image uploads) go to `--kafka`; both are needed. Config
    /// `distributed.api_only`.
    #[arg(long, conflicts_with_all = ["simulate", "until_caught_up"])]
    pub api_only: bool,
}

pub fn sim_options(
    cfg: &Config,
    machines: Option<usize>,
    seed: Option<u64>,
    duration: Option<&str>,
) -> Result<twinline_sim::SimConfig> {
    let mut s = cfg.simulator.clone();
    if let Some(m) = machines {
        s.machines = m;
    }
    if let Some(seed) = seed {
        s.seed = seed;
    }
    if let Some(d) = duration {
        s.duration_ms = super::parse_duration_ms(d)? as u64;
    }
    if s.image_library.is_none() {
        // The vision model's held-out image library makes the cameras' images real inputs for
        // the defect model; without it the simulator draws procedural surfaces.
        let simset = cfg.models.dir.join("vision").join("simset");
        if simset.join("labels.json").is_file() {
            s.image_library = Some(simset);
        }
    }
    Ok(s)
}

pub fn run(mut cfg: Config, args: RunArgs) -> Result<()> {
    if let Some(url) = &args.schema_registry {
        cfg.distributed.schema_registry = url.clone();
    }
    if let Some(hosts) = &args.scylla {
        cfg.distributed.scylla = hosts.clone();
    }
    if let Some(k) = &args.kafka {
        cfg.distributed.kafka = k.clone();
    }
    if let Some(p) = &args.topic_prefix {
        cfg.distributed.topic_prefix = p.clone();
    }
    if let Some(i) = &args.instance_id {
        cfg.distributed.instance_id = i.clone();
    }
    if args.api_only {
        cfg.distributed.api_only = true;
    }
    if cfg.distributed.api_only && (args.simulate || args.until_caught_up) {
        anyhow::bail!("an API-only instance (distributed.api_only) runs no simulator and no tasks: drop --simulate and --until-caught-up");
    }
    let dir = args.data.clone().unwrap_or_else(|| cfg.data.dir.clone());
    let simulate = if args.simulate {
        let mut config = sim_options(&cfg, args.machines, args.seed, args.duration.as_deref())?;
        if args.duration.is_none() && !args.until_caught_up {
            config.duration_ms = 0; // a live plant: runs until stopped
        }
        Some(SimOptions {
            config,
            realtime: !args.fast && !args.until_caught_up,
            speed: args.speed,
            ingest_batch: args.ingest_batch,
        })
    } else {
        None
    };
    let serve_api = !args.until_caught_up || args.listen.is_some();
    let pipeline = EmbeddedPipeline::start(
        &cfg,
        &dir,
        StartOptions {
            simulate,
            until_caught_up: args.until_caught_up,
            factory: None,
            views: serve_api,
            history: true,
        },
    )?;
    if !serve_api {
        pipeline.wait()?;
        info!("caught up; exiting");
        return Ok(());
    }
    let listen = args.listen.unwrap_or(cfg.api.listen);
    let mut api_cfg = super::api_config(&cfg);
    api_cfg.web_dir = args.web_dir.clone().or_else(default_web_dir);
    let mut state =
        twinline_queries::api::ApiState::new(pipeline.views.clone(), pipeline.backend(), api_cfg)?;
    if let Some(planner) = crate::dispatch::PolicyPlanner::from_config(&cfg) {
        state = state.with_dispatch_planner(planner);
    }
    twinline_sinks::history::register(
        &state.engine,
        pipeline.history.clone(),
        pipeline.store.log_dyn(),
        pipeline.store.codec.clone(),
    )?;
    let pg_listen = listen_addr(args.pg_listen, &cfg.sql.pg_listen, "sql.pg_listen")?;
    let flight_listen = listen_addr(
        args.flight_listen,
        &cfg.sql.flight_listen,
        "sql.flight_listen",
    )?;
    let _pg = match pg_listen {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding {addr} (--pg-listen)"))?;
            let server = twinline_queries::pg::PgServer::spawn(
                listener,
                &state.engine,
                twinline_queries::pg::PgConfig {
                    tokens: state.config.tokens.clone(),
                    read_requires_token: state.config.read_requires_token,
                },
            )?;
            info!(addr = %server.local_addr(), "Postgres wire protocol: psql -h {} -p {}", server.local_addr().ip(), server.local_addr().port());
            Some(server)
        }
        None => None,
    };
    let _flight = match flight_listen {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding {addr} (--flight-listen)"))?;
            let server = twinline_queries::flight::FlightServer::spawn(
                listener,
                &state.engine,
                twinline_queries::flight::FlightConfig {
                    tokens: state.config.tokens.clone(),
                    read_requires_token: state.config.read_requires_token,
                },
            )?;
            info!(addr = %server.local_addr(), "Arrow Flight SQL: grpc://{}", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let control = pipeline.control.clone();
    let until = args.until_caught_up;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
        info!(%listen, data = %dir.display(), "twinline is serving: http://{listen}/");
        let app = twinline_queries::api::app(state);
        let ctl = control.clone();
        let shutdown = async move {
            // One listener for the whole run: a new `ctrl_c()` per turn of the loop only sees
            // signals sent after it subscribed, so a Ctrl-C arriving between two turns was lost
            // (seen once: a pipeline that never stopped after SIGINT, with its handler installed).
            let ctrl_c = tokio::signal::ctrl_c();
            tokio::pin!(ctrl_c);
            loop {
                tokio::select! {
                    _ = &mut ctrl_c => break,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                        let done = if ctl.grouped.load(Ordering::Acquire) {
                            ctl.tasks_done.load(Ordering::Acquire)
                        } else {
                            ctl.producers_done.load(Ordering::Acquire)
                                && ctl.tasks_caught_up.load(Ordering::Acquire) >= ctl.checkpoint_served.len() as u64
                        };
                        if until && done {
                            break;
                        }
                    }
                }
            }
        };
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await.context("serving the API")
    })?;
    info!("shutting down: final checkpoints");
    pipeline.shutdown()
}

/// `queries/web/dist` in the source tree, if it was built.
fn default_web_dir() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("queries/web/dist"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../queries/web/dist"),
    ];
    candidates
        .into_iter()
        .find(|p| p.join("index.html").exists())
}

/// The address from the flag, else from the config key (empty = off).
fn listen_addr(
    flag: Option<SocketAddr>,
    configured: &str,
    key: &str,
) -> Result<Option<SocketAddr>> {
    match flag {
        Some(a) => Ok(Some(a)),
        None if configured.is_empty() => Ok(None),
        None => Ok(Some(configured.parse().with_context(|| key.to_string())?)),
    }
}
