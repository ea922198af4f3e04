//! Flexible job-shop solver: model, OR-Library parser, lower bounds, multi-threaded tabu search and an independent plan verifier.
//!
//! Entry points: [`parse_orlib`], [`solve`], [`verify`], [`schedule_cli_json`].

mod bounds;
mod construct;
pub mod dispatch;
mod graph;
mod model;
mod orlib;
mod repair;
mod search;
mod solve;
mod verify;

use std::time::Duration;

pub use model::{
    weighted_tardiness, FixedOperation, Instance, Job, Objective, Operation, Schedule, ScheduledOp,
    SolverError, Unavailability,
};
pub use orlib::parse_orlib;
pub use repair::schedule_from_sequences;
pub use solve::{solve, Solution, SolveParams, SolveStats};
pub use verify::verify;

/// Reads an OR-Library instance, minimises its makespan, and returns the JSON document of the
/// `twinline schedule --format json` command:
/// `{"makespan", "lower_bound", "time_to_best_ms", "starts": [[start per op of job 0], ...],
///   "optimal", "solver_time_ms", "iterations"}`.
pub fn schedule_cli_json(
    instance_path: &str,
    time_limit_secs: f64,
    threads: usize,
    seed: u64,
) -> Result<serde_json::Value, SolverError> {
    let text = std::fs::read_to_string(instance_path).map_err(|e| SolverError::Io {
        path: instance_path.to_string(),
        message: e.to_string(),
    })?;
    let inst = parse_orlib(&text)?;
    let limit = if time_limit_secs.is_finite() && time_limit_secs > 0.0 {
        time_limit_secs
    } else {
        0.0
    };
    let params = SolveParams {
        time_limit: Duration::from_secs_f64(limit),
        threads,
        seed,
        ..SolveParams::default()
    };
    solution_json(&inst, &params)
}

/// A valid lower bound on the makespan of every feasible plan of `inst`.
pub fn makespan_lower_bound(inst: &Instance) -> Result<i64, SolverError> {
    inst.validate()?;
    let p = graph::Problem::new(inst, Objective::Makespan);
    Ok(bounds::makespan_lower_bound(&p))
}

/// The CLI JSON document (see [`schedule_cli_json`]) of a plan built by a dispatching method
/// (a rule or the learned policy) rather than the solver: `iterations` counts the decisions,
/// `time_to_best_ms` equals `solver_time_ms`, `restarts` is 0, `initial_makespan` is the
/// makespan. Checked with [`verify`] before it is rendered.
pub fn dispatch_json(
    inst: &Instance,
    schedule: &Schedule,
    decisions: u64,
    elapsed_ms: u64,
) -> Result<serde_json::Value, SolverError> {
    let makespan = verify(inst, schedule).map_err(|reason| SolverError::PlanRejected { reason })?;
    let lower_bound = makespan_lower_bound(inst)?;
    Ok(serde_json::json!({
        "makespan": makespan,
        "lower_bound": lower_bound,
        "time_to_best_ms": elapsed_ms,
        "starts": starts(schedule),
        "optimal": makespan == lower_bound,
        "solver_time_ms": elapsed_ms,
        "iterations": decisions,
        "restarts": 0,
        "initial_makespan": makespan,
    }))
}

/// Solves `inst` with `params` and renders the CLI JSON document (see [`schedule_cli_json`]).
pub fn solution_json(
    inst: &Instance,
    params: &SolveParams,
) -> Result<serde_json::Value, SolverError> {
    let sol = solve(inst, params)?;
    Ok(serde_json::json!({
        "makespan": sol.makespan,
        "lower_bound": sol.lower_bound,
        "time_to_best_ms": sol.time_to_best_ms,
        "starts": starts(&sol.schedule),
        "optimal": sol.optimal,
        "solver_time_ms": sol.stats.solver_time_ms,
        "iterations": sol.stats.iterations,
        "restarts": sol.stats.restarts,
        "initial_makespan": sol.stats.initial_makespan,
    }))
}

/// `starts[j][k]`: start of operation `k` of job `j` (the CLI document's `starts`).
fn starts(schedule: &Schedule) -> Vec<Vec<i64>> {
    schedule
        .jobs
        .iter()
        .map(|ops| ops.iter().map(|o| o.start).collect())
        .collect()
}
