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
    let v = twinline_solver::schedule_cli_json(
        &args.instance.to_string_lossy(),
        args.time_limit,
        args.threads,
        args.seed,
    )?;
    println!("{}", serde_json::to_string(&v)?);
    Ok(())
}
