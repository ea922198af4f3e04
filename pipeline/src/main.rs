//! The `twinline` binary: command-line parsing and dispatch to the commands in `twinline::commands`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use twinline::commands;

#[derive(Parser)]
#[command(
    name = "twinline",
    version,
    about = "Factory digital twin: an event-sourced stream-processing pipeline"
)]
struct Cli {
    /// Configuration file (TOML). Defaults are built in; TWINLINE_<SECTION>__<KEY> variables override.
    #[arg(long, global = true, env = "TWINLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `twinline=debug`.
    #[arg(long, global = true, default_value = "info", env = "TWINLINE_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the processors, the views and the read API.
    Run(commands::run::RunArgs),
    /// Run the plant simulator into the event log.
    Simulate(commands::simulate::SimulateArgs),
    /// Re-derive everything from the input topics into a fresh directory.
    Replay(commands::replay::ReplayArgs),
    /// Run read-only SQL over the views of a data directory.
    Query(commands::query::QueryArgs),
    /// Print the chain of source events behind a derived event.
    Audit(commands::audit::AuditArgs),
    /// Inspect the event log.
    Log {
        #[command(subcommand)]
        command: commands::logcmd::LogCommand,
    },
    /// Solve a job-shop instance (OR-Library format) and print the plan as JSON.
    Schedule(commands::schedule::ScheduleArgs),
    /// Benchmarks of the embedded pipeline; prints a table.
    Bench(commands::bench::BenchArgs),
    /// Run the defect model on one PNG or JPEG file and print the result as JSON.
    Detect(commands::detect::DetectArgs),
    /// Serve a Confluent-compatible schema registry kept in a Kafka topic.
    Registry(commands::registry::RegistryArgs),
    /// Print the effective configuration (secrets redacted).
    Config,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    twinline::telemetry::init(&cli.log);
    let cfg = twinline::config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Run(a) => commands::run::run(cfg, a),
        Command::Simulate(a) => commands::simulate::run(cfg, a),
        Command::Replay(a) => commands::replay::run(cfg, a),
        Command::Query(a) => commands::query::run(cfg, a),
        Command::Audit(a) => commands::audit::run(cfg, a),
        Command::Log { command } => commands::logcmd::run(cfg, command),
        Command::Schedule(a) => commands::schedule::run(cfg, a),
        Command::Bench(a) => commands::bench::run(cfg, a),
        Command::Detect(a) => commands::detect::run(cfg, a),
        Command::Registry(a) => commands::registry::run(cfg, a),
        Command::Config => {
            print!("{}", cfg.redacted_toml());
            Ok(())
        }
    }
}
