//! Scheduling routes: `GET /api/v1/scheduling/schedule` (the current plan, from the views) and
//! `POST /api/v1/scheduling/optimize` (solve a submitted job-shop problem with the solver) and
//! `POST /api/v1/scheduling/rl/predict` (plan it at once with the learned dispatching policy).
//!
//! `optimize` accepts the seed's simple form (`jobs` with `job_id`, `processing_time`,
//! `priority`: one operation per job, on any machine of `machines`) and the richer form (jobs with
//! `operations`, each listing its `eligible` machines and times, plus release and due dates and
//! machine unavailability). Times are plain integers in the caller's unit. Malformed or
//! infeasible problems answer 422 with the reason.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use twinline_schemas::ScheduleChange;
use twinline_solver::dispatch::PolicyPlan;
use twinline_solver::{Instance, Job, Objective, Operation, SolveParams, Unavailability};

use super::{ApiError, ApiState, Role};
use crate::time::rfc3339_ms;

/// Longest time limit a request may ask for.
pub const MAX_TIME_LIMIT_MS: u64 = 60_000;
/// Default time limit (the solver's default).
pub const DEFAULT_TIME_LIMIT_MS: u64 = 10_000;
/// Most solver threads a request may ask for.
pub const MAX_THREADS: usize = 8;
/// Largest problem accepted, in operations.
pub const MAX_OPERATIONS: usize = 20_000;
/// Largest problem accepted, in (operation, eligible machine) choices: the starting plans cost
/// about operations x jobs x choices before the time limit is checked.
pub const MAX_CHOICES: usize = 100_000;
/// Most machines a problem may name.
pub const MAX_MACHINES: usize = 1_000;

/// The JSON document of a plan (`GET /api/v1/scheduling/schedule` and the WebSocket `schedule`
/// message).
pub fn schedule_json(c: &ScheduleChange) -> Value {
    let operations: Vec<Value> = c
        .plan
        .iter()
        .map(|p| {
            json!({
                "job_id": p.job_id,
                "operation_index": p.operation_index,
                "machine_id": p.machine_id,
                "start": rfc3339_ms(p.start),
                "end": rfc3339_ms(p.end),
                "started": p.started,
            })
        })
        .collect();
    json!({
        "plan_version": c.plan_version,
        "planned_at": rfc3339_ms(c.event_time),
        "reason": c.reason,
        "event_id": c.event_id,
        "source": {"topic": c.source.topic, "partition": c.source.partition, "offset": c.source.offset},
        "makespan_ms": c.makespan_ms,
        "objective": c.objective,
        "moved_operations": c.moves.len(),
        "operations": operations,
    })
}

pub async fn schedule(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Role::Read)?;
    match state.views.schedule() {
        Some(c) => Ok(Json(schedule_json(&c))),
        None => Err(ApiError::not_found(
            "no_plan",
            "no plan yet: the scheduler has not planned any job (no job-events, or scheduling is disabled)",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptimizeRequest {
    jobs: Vec<JobIn>,
    /// Machines of the simple form (a job without `operations` may run on any of them); default:
    /// the machines the twin knows.
    #[serde(default)]
    machines: Option<Vec<String>>,
    #[serde(default)]
    unavailability: Vec<WindowIn>,
    #[serde(default)]
    objective: Option<String>,
    #[serde(default)]
    time_limit_ms: Option<u64>,
    #[serde(default)]
    threads: Option<usize>,
    #[serde(default)]
    seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobIn {
    job_id: String,
    /// Simple form: one operation of this length.
    #[serde(default)]
    processing_time: Option<i64>,
    /// Simple form: pin the operation to one machine.
    #[serde(default)]
    machine_id: Option<String>,
    #[serde(default)]
    operations: Option<Vec<OperationIn>>,
    /// Weight in the weighted-tardiness objective (default 1).
    #[serde(default)]
    priority: Option<f64>,
    #[serde(default)]
    release_time: Option<i64>,
    #[serde(default)]
    due_date: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationIn {
    eligible: Vec<EligibleIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EligibleIn {
    machine_id: String,
    processing_time: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowIn {
    machine_id: String,
    start: i64,
    end: i64,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_problem", detail)
}

/// The solver instance of a request, its machine names, and the solve parameters.
fn build(
    req: OptimizeRequest,
    known_machines: Vec<String>,
) -> Result<(Instance, Vec<String>, SolveParams), ApiError> {
    if req.jobs.is_empty() {
        return Err(invalid("jobs is empty"));
    }
    let mut machines: Vec<String> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut machine = |id: &str| -> usize {
        if let Some(i) = index.get(id) {
            return *i;
        }
        machines.push(id.to_string());
        index.insert(id.to_string(), machines.len() - 1);
        machines.len() - 1
    };
    let pool: Vec<String> = req.machines.clone().unwrap_or(known_machines);
    if pool.len() > MAX_MACHINES {
        return Err(invalid(format!("more than {MAX_MACHINES} machines")));
    }
    if pool.iter().enumerate().any(|(i, m)| pool[..i].contains(m)) {
        return Err(invalid("machines lists a machine twice"));
    }
    let mut seen = BTreeMap::new();
    let mut jobs = Vec::with_capacity(req.jobs.len());
    let mut total_ops = 0usize;
    let mut total_choices = 0usize;
    for (j, job) in req.jobs.iter().enumerate() {
        if job.job_id.is_empty() {
            return Err(invalid(format!("jobs[{j}]: job_id is empty")));
        }
        if seen.insert(job.job_id.clone(), j).is_some() {
            return Err(invalid(format!(
                "jobs[{j}]: duplicate job_id {:?}",
                job.job_id
            )));
        }
        let operations: Vec<Operation> = match (&job.operations, job.processing_time) {
            (Some(_), Some(_)) => {
                return Err(invalid(format!(
                    "job {}: give either processing_time or operations, not both",
                    job.job_id
                )))
            }
            (None, None) => {
                return Err(invalid(format!(
                    "job {}: processing_time or operations is required",
                    job.job_id
                )))
            }
            (None, Some(p)) => {
                let eligible: Vec<(usize, i64)> = match &job.machine_id {
                    Some(m) => vec![(machine(m), p)],
                    None if pool.is_empty() => {
                        return Err(invalid(
                            "no machines: give `machines` (or `machine_id` per job); the twin knows none yet",
                        ))
                    }
                    None => pool.iter().map(|m| (machine(m), p)).collect(),
                };
                vec![Operation { eligible }]
            }
            (Some(ops), None) => {
                if ops.is_empty() {
                    return Err(invalid(format!("job {}: operations is empty", job.job_id)));
                }
                ops.iter()
                    .map(|o| Operation {
                        eligible: o
                            .eligible
                            .iter()
                            .map(|e| (machine(&e.machine_id), e.processing_time))
                            .collect(),
                    })
                    .collect()
            }
        };
        total_ops += operations.len();
        if total_ops > MAX_OPERATIONS {
            return Err(invalid(format!("more than {MAX_OPERATIONS} operations")));
        }
        for (k, op) in operations.iter().enumerate() {
            total_choices += op.eligible.len();
            let twice = op
                .eligible
                .iter()
                .enumerate()
                .any(|(i, e)| op.eligible[..i].iter().any(|p| p.0 == e.0));
            if twice {
                return Err(invalid(format!(
                    "job {} operation {k}: a machine is listed twice",
                    job.job_id
                )));
            }
        }
        if total_choices > MAX_CHOICES {
            return Err(invalid(format!(
                "more than {MAX_CHOICES} (operation, machine) choices"
            )));
        }
        let weight = job.priority.unwrap_or(1.0);
        jobs.push(Job {
            id: job.job_id.clone(),
            operations,
            release: job.release_time.unwrap_or(0),
            due: job.due_date,
            weight,
        });
    }
    let unavailability: Vec<Unavailability> = req
        .unavailability
        .iter()
        .map(|w| Unavailability {
            machine: machine(&w.machine_id),
            start: w.start,
            end: w.end,
        })
        .collect();
    if machines.len() > MAX_MACHINES {
        return Err(invalid(format!("more than {MAX_MACHINES} machines")));
    }
    let objective = match req.objective.as_deref() {
        None | Some("makespan") => Objective::Makespan,
        Some("weighted_tardiness") => Objective::WeightedTardiness,
        Some(other) => {
            return Err(invalid(format!(
                "objective must be makespan or weighted_tardiness, got {other:?}"
            )))
        }
    };
    let limit = req.time_limit_ms.unwrap_or(DEFAULT_TIME_LIMIT_MS);
    if limit == 0 || limit > MAX_TIME_LIMIT_MS {
        return Err(invalid(format!(
            "time_limit_ms must be in 1..={MAX_TIME_LIMIT_MS}"
        )));
    }
    let threads = req.threads.unwrap_or(2);
    if threads == 0 || threads > MAX_THREADS {
        return Err(invalid(format!("threads must be in 1..={MAX_THREADS}")));
    }
    let inst = Instance {
        machines: machines.len(),
        jobs,
        unavailability,
        fixed: Vec::new(),
    };
    inst.validate().map_err(|e| invalid(e.to_string()))?;
    let params = SolveParams {
        time_limit: Duration::from_millis(limit),
        threads,
        seed: req.seed.unwrap_or(0),
        objective,
        initial: None,
        max_iterations: None,
    };
    Ok((inst, machines, params))
}

pub async fn optimize(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Role::Read)?;
    let req: OptimizeRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::unprocessable("malformed_problem", e.to_string()))?;
    let known: Vec<String> = state
        .views
        .factory_state()
        .machines
        .iter()
        .map(|m| m.machine_id.clone())
        .collect();
    let (inst, machines, params) = build(req, known)?;
    let permit = state
        .solver_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "solver_busy",
                "every solver slot is busy; retry later",
            )
        })?;
    let objective = match params.objective {
        Objective::Makespan => "makespan",
        Objective::WeightedTardiness => "weighted_tardiness",
    };
    let inst = Arc::new(inst);
    let solved = {
        let inst = inst.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            twinline_solver::solve(&inst, &params)
        })
        .await
        .map_err(|e| ApiError::internal("solver_failed", e.to_string()))?
    };
    let sol = solved.map_err(|e| ApiError::unprocessable("infeasible", e.to_string()))?;
    let schedule = plan_rows(&inst, &machines, &sol.schedule);
    Ok(Json(json!({
        "schedule": schedule,
        "makespan": sol.makespan,
        "solver_time_ms": sol.stats.solver_time_ms,
        "optimal": sol.optimal,
        "lower_bound": sol.lower_bound,
        // (makespan - lower bound) / lower bound: how far from optimal the plan can be at most.
        "gap_to_lower_bound": (sol.lower_bound > 0)
            .then(|| (sol.makespan - sol.lower_bound) as f64 / sol.lower_bound as f64),
        "objective": objective,
        "objective_value": sol.objective_value,
        "time_to_best_ms": sol.time_to_best_ms,
    })))
}

/// Every operation of `plan` as `{job_id, operation_index, machine_id, start, end}`, ordered by
/// start, then machine.
fn plan_rows(inst: &Instance, machines: &[String], plan: &twinline_solver::Schedule) -> Vec<Value> {
    let mut rows = Vec::with_capacity(inst.num_operations());
    for (j, ops) in plan.jobs.iter().enumerate() {
        for (k, o) in ops.iter().enumerate() {
            rows.push(json!({
                "job_id": inst.jobs[j].id,
                "operation_index": k,
                "machine_id": machines[o.machine],
                "start": o.start,
                "end": o.end,
            }));
        }
    }
    rows.sort_by(|a, b| {
        (a["start"].as_i64(), a["machine_id"].as_str())
            .cmp(&(b["start"].as_i64(), b["machine_id"].as_str()))
    });
    rows
}

/// Why a dispatching policy could not plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The instance is not one the environment accepts (the caller's input).
    #[error("{0}")]
    Instance(#[from] twinline_solver::SolverError),
    /// The model failed (the server's fault).
    #[error("dispatching policy failed: {0}")]
    Model(String),
}

/// A learned dispatching policy the API plans with (`POST /api/v1/scheduling/rl/predict`); the
/// binary supplies the ONNX policy of `models/rl`.
pub trait DispatchPlanner: Send + Sync + 'static {
    /// Plans `inst` with `rollouts` rollouts (1 = greedy; more = the best of that many, the first
    /// greedy and the others sampled from the policy with `seed`).
    fn plan(&self, inst: &Instance, rollouts: usize, seed: u64) -> Result<PolicyPlan, PlanError>;
    /// The model's name and version.
    fn model(&self) -> (String, String);
}

/// Most rollouts a request may ask for.
pub const MAX_ROLLOUTS: usize = 256;
/// Most operations x rollouts one request may cost (each rollout visits every operation once).
pub const MAX_ROLLOUT_OPERATIONS: usize = 1_000_000;

/// The twin's statuses; in the last three a machine takes no work.
const STATUSES: [&str; 6] = [
    "IDLE",
    "RUNNING",
    "WARNING",
    "ERROR",
    "MAINTENANCE",
    "OFFLINE",
];
const DOWN_STATUSES: [&str; 3] = ["ERROR", "MAINTENANCE", "OFFLINE"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RlRequest {
    jobs: Vec<JobIn>,
    /// The factory state: machines by id, or with their status and when they are free. Default:
    /// the machines the twin knows, with their current status.
    #[serde(default)]
    machines: Option<Vec<MachineIn>>,
    #[serde(default)]
    unavailability: Vec<WindowIn>,
    /// The current time in the caller's unit (default 0): nothing starts earlier.
    #[serde(default)]
    now: Option<i64>,
    #[serde(default)]
    rollouts: Option<usize>,
    #[serde(default)]
    seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MachineIn {
    Id(String),
    State(MachineStateIn),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineStateIn {
    machine_id: String,
    /// IDLE, RUNNING, WARNING, ERROR, MAINTENANCE or OFFLINE (default IDLE).
    #[serde(default)]
    status: Option<String>,
    /// Busy (or down) until this time; a down machine without it takes no work at all.
    #[serde(default)]
    available_at: Option<i64>,
}

/// An RL request as a solver instance: only the listed machines exist; down machines leave the
/// eligible lists (or block until they are back), busy machines block until they are free,
/// nothing starts before `now`. Returns the instance, its machine names, rollouts, seed, now.
fn build_rl(
    req: RlRequest,
    twin: Vec<(String, &'static str)>,
) -> Result<(Instance, Vec<String>, usize, u64, i64), ApiError> {
    let now = req.now.unwrap_or(0);
    let rollouts = req.rollouts.unwrap_or(1);
    if rollouts == 0 || rollouts > MAX_ROLLOUTS {
        return Err(invalid(format!("rollouts must be in 1..={MAX_ROLLOUTS}")));
    }
    let states: Vec<MachineStateIn> = match req.machines {
        Some(ms) => ms
            .into_iter()
            .map(|m| match m {
                MachineIn::Id(machine_id) => MachineStateIn {
                    machine_id,
                    status: None,
                    available_at: None,
                },
                MachineIn::State(s) => s,
            })
            .collect(),
        None => twin
            .into_iter()
            .map(|(machine_id, status)| MachineStateIn {
                machine_id,
                status: Some(status.to_string()),
                available_at: None,
            })
            .collect(),
    };
    if states.is_empty() {
        return Err(invalid(
            "no machines: give `machines`; the twin knows none yet",
        ));
    }
    let mut listed = BTreeMap::new();
    let mut pool = Vec::with_capacity(states.len());
    let mut gone: BTreeMap<String, String> = BTreeMap::new();
    let mut windows = req.unavailability;
    for s in states {
        let status = s.status.as_deref().unwrap_or("IDLE").to_ascii_uppercase();
        if !STATUSES.contains(&status.as_str()) {
            return Err(invalid(format!(
                "machine {}: status {status:?} is not one of {}",
                s.machine_id,
                STATUSES.join(", ")
            )));
        }
        if listed.insert(s.machine_id.clone(), ()).is_some() {
            return Err(invalid(format!("machines lists {} twice", s.machine_id)));
        }
        let down = DOWN_STATUSES.contains(&status.as_str());
        match (down, s.available_at) {
            (true, None) => {
                gone.insert(s.machine_id, status);
                continue;
            }
            (_, Some(at)) if at > now => windows.push(WindowIn {
                machine_id: s.machine_id.clone(),
                start: now,
                end: at,
            }),
            _ => {}
        }
        pool.push(s.machine_id);
    }
    let known = |m: &str, what: &str| -> Result<(), ApiError> {
        if listed.contains_key(m) {
            Ok(())
        } else {
            Err(invalid(format!(
                "{what}: machine {m} is not among the machines"
            )))
        }
    };
    for w in &windows {
        known(&w.machine_id, "unavailability")?;
    }
    let mut jobs = req.jobs;
    for job in &mut jobs {
        job.release_time = Some(job.release_time.unwrap_or(now).max(now));
        let down = |m: &str| gone.get(m).map(|s| format!("machine {m} is {s}"));
        if let Some(m) = &job.machine_id {
            known(m, &format!("job {}", job.job_id))?;
            if let Some(reason) = down(m) {
                return Err(invalid(format!("job {}: {reason}", job.job_id)));
            }
        }
        if let Some(ops) = &mut job.operations {
            for (k, op) in ops.iter_mut().enumerate() {
                for e in &op.eligible {
                    known(&e.machine_id, &format!("job {} operation {k}", job.job_id))?;
                }
                let before: Vec<String> =
                    op.eligible.iter().map(|e| e.machine_id.clone()).collect();
                op.eligible.retain(|e| !gone.contains_key(&e.machine_id));
                if op.eligible.is_empty() && !before.is_empty() {
                    return Err(invalid(format!(
                        "job {} operation {k}: every eligible machine is down ({})",
                        job.job_id,
                        before
                            .iter()
                            .filter_map(|m| down(m))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
    }
    let seed = req.seed.unwrap_or(0);
    let opt = OptimizeRequest {
        jobs,
        machines: Some(pool),
        unavailability: windows,
        objective: None,
        time_limit_ms: None,
        threads: None,
        seed: Some(seed),
    };
    let (inst, machines, _) = build(opt, Vec::new())?;
    if inst.num_operations().saturating_mul(rollouts) > MAX_ROLLOUT_OPERATIONS {
        return Err(invalid(format!(
            "{} operations x {rollouts} rollouts is more than {MAX_ROLLOUT_OPERATIONS}: ask for fewer rollouts",
            inst.num_operations()
        )));
    }
    Ok((inst, machines, rollouts, seed, now))
}

/// `POST /api/v1/scheduling/rl/predict`: the learned dispatching policy's plan for the waiting
/// jobs on the machines as they are now, and the operation each machine should take next.
pub async fn rl_predict(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, Role::Read)?;
    let planner = state.dispatch_planner.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_model",
            "no dispatching policy is loaded (models/rl/policy.onnx, or ONNX Runtime, missing at start)",
        )
    })?;
    let req: RlRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::unprocessable("malformed_problem", e.to_string()))?;
    let twin: Vec<(String, &'static str)> = state
        .views
        .factory_state()
        .machines
        .iter()
        .map(|m| (m.machine_id.clone(), m.status))
        .collect();
    let (inst, machines, rollouts, seed, now) = build_rl(req, twin)?;
    let permit = state
        .policy_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "policy_busy",
                "the dispatching policy is planning another request; retry later",
            )
        })?;
    let inst = Arc::new(inst);
    let planned = {
        let (inst, planner) = (inst.clone(), planner.clone());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let t0 = std::time::Instant::now();
            planner
                .plan(&inst, rollouts, seed)
                .map(|p| (p, t0.elapsed().as_secs_f64() * 1e3))
        })
        .await
        .map_err(|e| ApiError::internal("policy_failed", e.to_string()))?
    };
    let (plan, inference_ms) = planned.map_err(|e| match e {
        PlanError::Instance(e) => ApiError::unprocessable("infeasible", e.to_string()),
        PlanError::Model(m) => ApiError::internal("policy_failed", m),
    })?;
    // Checked by the independent verifier before it is served, as every other plan.
    twinline_solver::verify(&inst, &plan.schedule).map_err(|e| {
        ApiError::internal(
            "policy_failed",
            format!("plan rejected by the verifier: {e}"),
        )
    })?;
    let lower_bound = twinline_solver::makespan_lower_bound(&inst)
        .map_err(|e| ApiError::unprocessable("infeasible", e.to_string()))?;
    let schedule = plan_rows(&inst, &machines, &plan.schedule);
    // The first operation planned on each machine (rows are ordered by start).
    let mut seen = std::collections::BTreeSet::new();
    let assignments: Vec<&Value> = schedule
        .iter()
        .filter(|r| seen.insert(r["machine_id"].as_str().unwrap_or_default().to_string()))
        .collect();
    let (name, version) = planner.model();
    Ok(Json(json!({
        "assignments": assignments,
        "schedule": schedule,
        "makespan": plan.makespan,
        "lower_bound": lower_bound,
        // Both count from `now`: (makespan - lower bound) / (lower bound - now).
        "gap_to_lower_bound": (lower_bound > now)
            .then(|| (plan.makespan - lower_bound) as f64 / (lower_bound - now) as f64),
        "method": "rl",
        "model": {"name": name, "version": version},
        "rollouts": plan.rollouts,
        "decisions": plan.decisions,
        "inference_time_ms": inference_ms,
    })))
}
