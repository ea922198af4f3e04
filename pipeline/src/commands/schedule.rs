//! `twinline schedule`: solve a job-shop instance and print the plan as JSON.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::config::Config;

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// Instance in the OR-Library job-shop format.
    #[arg(long)]
    pub instance: PathBuf,
    #[arg(long, default_value_t = 10.0)]
    pub time_limit: f64,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many search iterations per thread (as well as at the time limit): the plan
    /// is then the same on every run with the same seed and threads, whatever the machine's speed.
    #[arg(long)]
    pub max_iterations: Option<u64>,
    /// Output format (json).
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Method: the solver (default).
    #[arg(long, default_value = "solver")]
    pub method: String,
}

pub fn run(_cfg: Config, args: ScheduleArgs) -> Result<()> {
    if args.format != "json" {
        bail!("--format {} is not supported; use json", args.format);
    }
    if args.method != "solver" {
        bail!("--method {} is not available; methods: solver", args.method);
    }
    let v = match args.max_iterations {
        None => twinline_solver::schedule_cli_json(
            &args.instance.to_string_lossy(),
            args.time_limit,
            args.threads,
            args.seed,
        )?,
        Some(n) => {
            let path = args.instance.display().to_string();
            let text = std::fs::read_to_string(&args.instance)
                .map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))?;
            let inst = twinline_solver::parse_orlib(&text)?;
            if !(args.time_limit.is_finite() && args.time_limit > 0.0) {
                bail!("--time-limit must be a positive number of seconds");
            }
            let params = twinline_solver::SolveParams {
                time_limit: std::time::Duration::from_secs_f64(args.time_limit),
                threads: args.threads,
                seed: args.seed,
                max_iterations: Some(n),
                ..twinline_solver::SolveParams::default()
            };
            twinline_solver::solution_json(&inst, &params)?
        }
    };
    println!("{}", serde_json::to_string(&v)?);
    Ok(())
}
