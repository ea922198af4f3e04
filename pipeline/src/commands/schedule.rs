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
    /// Method: `solver` (default; tabu search within the time limit), `rl` (the learned
    /// dispatching policy, `<models.dir>/rl/policy.onnx`), or a classic dispatching rule over the
    /// same decisions as the policy: `spt`, `mwkr`, `mopnr`, `fdd-mwkr`.
    #[arg(long, default_value = "solver")]
    pub method: String,
    /// With `--method rl`: rollouts of the policy in one batch; the first is greedy, the others
    /// sample from the policy (seeded by `--seed`), and the shortest plan is printed. 1 = greedy.
    #[arg(long, default_value_t = DEFAULT_ROLLOUTS)]
    pub rollouts: usize,
    /// With `--method rl`: folder of `policy.onnx` and `policy.json` (default `<models.dir>/rl`).
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

/// Default rollouts of `--method rl` (see the model card for the time and gap per setting).
pub const DEFAULT_ROLLOUTS: usize = 128;

/// Plans `inst` with a dispatching rule or the learned policy and renders the CLI JSON.
fn dispatch(
    cfg: &Config,
    args: &ScheduleArgs,
    inst: &twinline_solver::Instance,
) -> Result<serde_json::Value> {
    use twinline_solver::dispatch::{policy_schedule, rule_schedule, Decode, DispatchRule};
    // Planning time only: loading ONNX Runtime and the policy is not part of it.
    let mut t0 = std::time::Instant::now();
    let (schedule, decisions, extra) = if args.method == "rl" {
        let dir = args
            .policy
            .clone()
            .unwrap_or_else(|| cfg.models.policy_dir());
        let threads = args.threads.max(1);
        let mut policy = twinline_processors::dispatch::PolicyScorer::load(
            &dir,
            cfg.models.library().as_deref(),
            threads,
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load the dispatching policy from {}: {e}",
                dir.display()
            )
        })?;
        t0 = std::time::Instant::now();
        let decode = Decode::for_rollouts(args.rollouts, args.seed);
        let plan = policy_schedule(inst, &mut policy, decode)??;
        let meta = policy.meta();
        let extra = serde_json::json!({
            "method": "rl",
            "model": meta.name,
            "model_version": meta.version,
            "rollouts": plan.rollouts,
        });
        (plan.schedule, plan.decisions as u64, extra)
    } else {
        let rule = DispatchRule::parse(&args.method).ok_or_else(|| {
            anyhow::anyhow!(
                "--method {} is not available; methods: {METHODS}",
                args.method
            )
        })?;
        let (schedule, _) = rule_schedule(inst, rule)?;
        (schedule, 0, serde_json::json!({"method": rule.name()}))
    };
    let ms = t0.elapsed().as_millis() as u64;
    let mut v = twinline_solver::dispatch_json(inst, &schedule, decisions, ms)?;
    if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    Ok(v)
}

const METHODS: &str = "solver, rl, spt, mwkr, mopnr, fdd-mwkr";

/// The OR-Library instance in `path`.
fn read_instance(path: &std::path::Path) -> Result<twinline_solver::Instance> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(twinline_solver::parse_orlib(&text)?)
}

pub fn run(cfg: Config, args: ScheduleArgs) -> Result<()> {
    if args.format != "json" {
        bail!("--format {} is not supported; use json", args.format);
    }
    if args.method != "solver" {
        let inst = read_instance(&args.instance)?;
        let v = dispatch(&cfg, &args, &inst)?;
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    let v = match args.max_iterations {
        None => twinline_solver::schedule_cli_json(
            &args.instance.to_string_lossy(),
            args.time_limit,
            args.threads,
            args.seed,
        )?,
        Some(n) => {
            let inst = read_instance(&args.instance)?;
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
