//! Dynamic rescheduling: keeps the plant's production plan and re-optimizes the operations not yet
//! started when jobs arrive or end, maintenance is requested, or a machine goes down or comes back;
//! emits `schedule-changes` with the operations that moved and the complete new plan.
//!
//! Triggers and when they act, all in event time:
//! - **Disruptions** replan at once: a maintenance request opened or closed, a twin status change
//!   into or out of ERROR, MAINTENANCE or OFFLINE.
//! - **Routine** job events (SUBMITTED, CANCELLED, STARTED, COMPLETED) update the state at once and
//!   are batched into one replan when event time has passed `routine_interval_ms` since the last
//!   plan (checked on each event and watermark), so a busy plant does not replan per event.
//!
//! A replan builds a job-shop instance of the open jobs at the trigger time `t`: started
//! operations stay where they are (fixed; an overrunning one is assumed to end at `t`); the rest
//! start at `t` or later; a down machine is unavailable on `[t, t + down_estimate_ms)`; an open
//! maintenance request blocks its machine for `maintenance_duration_ms` from `t + lead(urgency)`.
//! The previous plan, re-timed for the new constraints (same machines, same order, new jobs
//! appended), is the search's starting point, and it is kept when the search finds nothing
//! strictly better: equal objective means the smallest change. Operations the search moved to
//! another machine are then tried back on their previous machine and left there when the
//! objective is no worse. The search is bounded by
//! iterations, never by time, so the plan is a function of the log (replays are byte-identical).
//!
//! Job events that make no sense (no operations, an operation without an eligible machine or
//! with one listed twice, a negative or over-a-year duration, times outside 1970..2255, a
//! progress event without operation index or machine) are dead-lettered by [`JobEventValidator`]
//! in the partition tasks, and skipped here. Progress events the state cannot use are skipped
//! too: an unknown job, an operation index beyond the routing, a repeated submission, a late
//! report of an earlier operation; an operation started on a machine its routing does not list
//! cannot be timed and counts as not started.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use twinline_models::ModelError;
use twinline_schemas::{
    JobEvent, JobEventKind, MachineStatus, MaintenanceAction, MaintenanceRequest, OperationMove,
    Payload, PlannedOperation, ScheduleChange, Topic, TwinState, Urgency, PLANT_KEY,
};
use twinline_solver::dispatch::{policy_schedule, CandidateScorer, Decode};
use twinline_solver::{
    schedule_from_sequences, solve, verify, FixedOperation, Instance, Job, Objective, Operation,
    SolveParams, Unavailability,
};

use crate::{Emitter, Event, EventTime, ProcessError, Processor};

const HOUR_MS: i64 = 3_600_000;
/// Longest operation accepted (a year): keeps every sum of plan times far from overflow.
const MAX_DURATION_MS: i64 = 366 * 24 * HOUR_MS;
/// Latest time accepted in a job event (year 2255), for the same reason.
const MAX_TIME_MS: i64 = 1 << 43;

/// What the rescheduler minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SchedulingObjective {
    #[default]
    Makespan,
    WeightedTardiness,
}

/// How long before a maintenance window starts, by the request's urgency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceLead {
    pub critical_ms: i64,
    pub high_ms: i64,
    pub medium_ms: i64,
    pub low_ms: i64,
}

impl Default for MaintenanceLead {
    fn default() -> Self {
        MaintenanceLead {
            critical_ms: 0,
            high_ms: 0,
            medium_ms: 24 * HOUR_MS,
            low_ms: 72 * HOUR_MS,
        }
    }
}

impl MaintenanceLead {
    fn of(&self, u: Urgency) -> i64 {
        match u {
            Urgency::Critical => self.critical_ms,
            Urgency::High => self.high_ms,
            Urgency::Medium => self.medium_ms,
            Urgency::Low => self.low_ms,
        }
    }
}

/// `[scheduling]` of the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Run the rescheduling processor.
    pub enabled: bool,
    pub objective: SchedulingObjective,
    /// Tabu-search iterations per thread of one replan (the work bound; no time limit, so the
    /// plan never depends on machine speed).
    pub max_iterations: u64,
    /// Search threads of one replan (the result depends on it: keep it fixed for replays).
    pub threads: usize,
    pub seed: u64,
    /// Routine job events are batched into one replan at most this often (event time).
    pub routine_interval_ms: i64,
    /// How long a machine that went down (ERROR, MAINTENANCE, OFFLINE) is assumed to stay down,
    /// counted from each replan while it is still down.
    pub down_estimate_ms: i64,
    /// Length of the window a maintenance request blocks its machine for.
    pub maintenance_duration_ms: i64,
    pub maintenance_lead: MaintenanceLead,
    /// Answer a disruption at once with the learned dispatching policy's plan (when one is
    /// attached with [`SchedulerProcessor::with_policy`]); the solver's improvement of it follows
    /// at the scheduler's next event or watermark tick.
    pub quick_plan: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled: true,
            objective: SchedulingObjective::Makespan,
            max_iterations: 2_000,
            threads: 1,
            seed: 0,
            routine_interval_ms: 5 * 60_000,
            down_estimate_ms: HOUR_MS,
            maintenance_duration_ms: 2 * HOUR_MS,
            maintenance_lead: MaintenanceLead::default(),
            quick_plan: false,
        }
    }
}

impl SchedulerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_iterations == 0 {
            return Err("max_iterations must be > 0".into());
        }
        if self.threads == 0 || self.threads > 64 {
            return Err("threads must be in 1..=64".into());
        }
        if self.routine_interval_ms < 0 {
            return Err("routine_interval_ms must be >= 0".into());
        }
        if self.down_estimate_ms <= 0 || self.maintenance_duration_ms <= 0 {
            return Err("down_estimate_ms and maintenance_duration_ms must be > 0".into());
        }
        let l = &self.maintenance_lead;
        if [l.critical_ms, l.high_ms, l.medium_ms, l.low_ms]
            .iter()
            .any(|x| *x < 0)
        {
            return Err("maintenance_lead values must be >= 0".into());
        }
        Ok(())
    }
}

/// Why a job event cannot be used by the scheduler, or `None` when it is fine.
pub fn job_event_problem(e: &JobEvent) -> Option<String> {
    if e.job_id.is_empty() {
        return Some("job_id is empty".into());
    }
    for (what, v) in [
        ("event_time", Some(e.event_time)),
        ("release_time", e.release_time),
        ("due_date", e.due_date),
    ] {
        if let Some(v) = v {
            if !(0..=MAX_TIME_MS).contains(&v) {
                return Some(format!("{what} {v} is outside 1970..=2255 (Unix ms)"));
            }
        }
    }
    match e.kind {
        JobEventKind::Submitted => {
            if e.operations.is_empty() {
                return Some(format!("job {} submitted without operations", e.job_id));
            }
            for (k, op) in e.operations.iter().enumerate() {
                if op.eligible.is_empty() {
                    return Some(format!(
                        "job {} operation {k} has no eligible machine",
                        e.job_id
                    ));
                }
                for (i, m) in op.eligible.iter().enumerate() {
                    if m.machine_id.is_empty() {
                        return Some(format!("job {} operation {k}: empty machine_id", e.job_id));
                    }
                    if m.duration_ms < 0 {
                        return Some(format!(
                            "job {} operation {k}: negative duration {} on {}",
                            e.job_id, m.duration_ms, m.machine_id
                        ));
                    }
                    if m.duration_ms > MAX_DURATION_MS {
                        return Some(format!(
                            "job {} operation {k}: duration {} ms on {} is over a year",
                            e.job_id, m.duration_ms, m.machine_id
                        ));
                    }
                    if op.eligible[..i]
                        .iter()
                        .any(|o| o.machine_id == m.machine_id)
                    {
                        return Some(format!(
                            "job {} operation {k}: machine {} listed twice",
                            e.job_id, m.machine_id
                        ));
                    }
                }
            }
            None
        }
        JobEventKind::Started | JobEventKind::Completed => match (e.operation_index, &e.machine_id)
        {
            (Some(i), Some(m)) if i >= 0 && !m.is_empty() => None,
            (Some(i), _) if i < 0 => Some(format!("negative operation_index {i}")),
            (None, _) => Some(format!("{:?} without operation_index", e.kind)),
            _ => Some(format!("{:?} without machine_id", e.kind)),
        },
        JobEventKind::Cancelled => None,
    }
}

/// Stateless check of `job-events` in the partition tasks: dead-letters events the scheduler
/// cannot use (see [`job_event_problem`]). It emits nothing.
#[derive(Debug, Default)]
pub struct JobEventValidator;

impl Processor for JobEventValidator {
    fn name(&self) -> &'static str {
        "job-validator"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::JobEvents]
    }

    fn on_event(&mut self, event: &Event<'_>, _out: &mut Emitter) -> Result<(), ProcessError> {
        if let Payload::JobEvent(e) = event.payload {
            if let Some(p) = job_event_problem(e) {
                return Err(ProcessError::BadInput(p));
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<u8>, ProcessError> {
        Ok(Vec::new())
    }

    fn restore(&mut self, _bytes: &[u8]) -> Result<(), ProcessError> {
        Ok(())
    }
}

/// An open job as the scheduler knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenJob {
    priority: i32,
    due: Option<i64>,
    release: i64,
    /// Per operation: `(machine, duration)` alternatives.
    ops: Vec<Vec<(String, i64)>>,
    /// First operation not completed.
    next_op: usize,
    /// The running operation `next_op`: machine and actual start.
    running: Option<(String, i64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct MachineInfo {
    /// Status that makes it unavailable, and since when.
    down: Option<(MachineStatus, i64)>,
    /// Open maintenance requests: request id -> (urgency, opened at).
    maintenance: BTreeMap<String, (Urgency, i64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct State {
    jobs: BTreeMap<String, OpenJob>,
    machines: BTreeMap<String, MachineInfo>,
    plan: Vec<PlannedOperation>,
    plan_version: i64,
    /// Event time of the last replan.
    planned_at: Option<i64>,
    /// Routine changes since the last replan: what happened, for the reason text.
    pending: BTreeMap<String, u32>,
    /// Largest event time seen.
    now: i64,
    /// A disruption answered by the dispatching policy, waiting for the solver: its reason.
    improve: Option<String>,
}

/// The rescheduling processor (one task over all partitions; see ARCHITECTURE.md).
pub struct SchedulerProcessor {
    cfg: SchedulerConfig,
    state: State,
    /// The learned dispatching policy for quick plans (see [`SchedulerConfig::quick_plan`]) and
    /// its name and version, which the quick plans' reasons carry.
    policy: Option<(Box<dyn DispatchScorer>, String)>,
}

/// A dispatching policy the scheduler can plan with at once (the ONNX policy of `models/rl`).
pub trait DispatchScorer: CandidateScorer<Error = ModelError> + Send {}
impl<T: CandidateScorer<Error = ModelError> + Send> DispatchScorer for T {}

const SNAPSHOT_VERSION: u32 = 1;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    state: &'a State,
}

#[derive(Deserialize)]
struct SnapshotOwned {
    version: u32,
    state: State,
}

fn is_down(s: MachineStatus) -> bool {
    matches!(
        s,
        MachineStatus::Error | MachineStatus::Maintenance | MachineStatus::Offline
    )
}

/// A built replan problem: the instance and how its indices map back to ids.
struct Built {
    inst: Instance,
    machines: Vec<String>,
    /// Per instance job: job id and the index of its first operation in the job.
    jobs: Vec<(String, usize)>,
    /// Per instance job: actual start of its running (fixed) operation.
    running_start: Vec<Option<i64>>,
}

impl SchedulerProcessor {
    pub fn new(cfg: SchedulerConfig) -> Result<Self, String> {
        cfg.validate()?;
        Ok(SchedulerProcessor {
            cfg,
            state: State::default(),
            policy: None,
        })
    }

    /// Attaches the dispatching policy used for quick plans when `quick_plan` is set. Its plans
    /// must be a function of its inputs (ONNX Runtime on one CPU thread, greedy decoding), or
    /// replays would differ.
    pub fn with_policy(
        mut self,
        policy: Box<dyn DispatchScorer>,
        label: impl Into<String>,
    ) -> Self {
        self.policy = Some((policy, label.into()));
        self
    }

    /// The current plan (for tests and benchmarks).
    pub fn plan(&self) -> &[PlannedOperation] {
        &self.state.plan
    }

    pub fn open_jobs(&self) -> usize {
        self.state.jobs.len()
    }

    fn machine(&mut self, id: &str) -> &mut MachineInfo {
        if !self.state.machines.contains_key(id) {
            self.state
                .machines
                .insert(id.to_string(), MachineInfo::default());
        }
        self.state.machines.get_mut(id).expect("inserted above")
    }

    fn note(&mut self, what: &str) {
        *self.state.pending.entry(what.to_string()).or_insert(0) += 1;
    }

    /// Applies a job event; returns true when it changed anything.
    fn on_job(&mut self, e: &JobEvent) -> bool {
        if job_event_problem(e).is_some() {
            return false;
        }
        match e.kind {
            JobEventKind::Submitted => {
                if self.state.jobs.contains_key(&e.job_id) {
                    return false; // a repeat: the job's progress stays
                }
                for op in &e.operations {
                    for m in &op.eligible {
                        self.machine(&m.machine_id);
                    }
                }
                let job = OpenJob {
                    priority: e.priority,
                    due: e.due_date,
                    release: e.release_time.unwrap_or(e.event_time),
                    ops: e
                        .operations
                        .iter()
                        .map(|o| {
                            o.eligible
                                .iter()
                                .map(|m| (m.machine_id.clone(), m.duration_ms))
                                .collect()
                        })
                        .collect(),
                    next_op: 0,
                    running: None,
                };
                self.state.jobs.insert(e.job_id.clone(), job);
                self.note("submitted");
                true
            }
            JobEventKind::Cancelled => {
                let known = self.state.jobs.remove(&e.job_id).is_some();
                if known {
                    self.note("cancelled");
                }
                known
            }
            JobEventKind::Started | JobEventKind::Completed => {
                let (Some(k), Some(m)) = (e.operation_index, e.machine_id.as_deref()) else {
                    return false;
                };
                let k = k as usize;
                let Some(job) = self.state.jobs.get_mut(&e.job_id) else {
                    return false; // submitted before the log we can see
                };
                if k >= job.ops.len() {
                    return false;
                }
                let duration_known = job.ops[k].iter().any(|(mm, _)| mm == m);
                // Late or repeated reports of earlier operations do not move progress back.
                if k < job.next_op {
                    return false;
                }
                if e.kind == JobEventKind::Started {
                    job.next_op = k;
                    // An operation started on a machine its routing does not list cannot be
                    // timed; it is treated as not started.
                    job.running = duration_known.then(|| (m.to_string(), e.event_time));
                    self.machine(m);
                    self.note("started");
                } else {
                    job.next_op = k + 1;
                    job.running = None;
                    if job.next_op >= job.ops.len() {
                        self.state.jobs.remove(&e.job_id);
                    }
                    self.note("completed");
                }
                true
            }
        }
    }

    /// Builds the instance of the open jobs at time `t`.
    fn build(&self, t: i64) -> Built {
        let machines: Vec<String> = self.state.machines.keys().cloned().collect();
        let index: BTreeMap<&str, usize> = machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), i))
            .collect();
        let mut jobs = Vec::new();
        let mut ids = Vec::new();
        let mut running_start = Vec::new();
        let mut fixed = Vec::new();
        // Fixed operations' busy intervals per machine, to keep windows and other fixed work clear.
        let mut busy_until: Vec<i64> = vec![i64::MIN; machines.len()];
        for (id, job) in &self.state.jobs {
            if job.next_op >= job.ops.len() {
                continue;
            }
            let j = jobs.len();
            let operations: Vec<Operation> = job.ops[job.next_op..]
                .iter()
                .map(|alts| Operation {
                    eligible: alts.iter().map(|(m, d)| (index[m.as_str()], *d)).collect(),
                })
                .collect();
            let mut release = job.release.max(t);
            let mut rs = None;
            if let Some((m, s)) = &job.running {
                let mi = index[m.as_str()];
                let d = operations[0]
                    .eligible
                    .iter()
                    .find(|e| e.0 == mi)
                    .map_or(0, |e| e.1);
                // An overrunning operation is assumed to end now; a machine already holding
                // fixed work takes this one after it (inconsistent reports must not make the
                // instance infeasible).
                let start = (*s).max(t.saturating_sub(d)).max(busy_until[mi]);
                busy_until[mi] = start.saturating_add(d);
                fixed.push(FixedOperation {
                    job: j,
                    op: 0,
                    machine: mi,
                    start,
                });
                release = start;
                rs = Some(*s);
            }
            jobs.push(Job {
                id: id.clone(),
                operations,
                release,
                due: job.due,
                weight: f64::from(job.priority.max(0)),
            });
            ids.push((id.clone(), job.next_op));
            running_start.push(rs);
        }
        let mut unavailability = Vec::new();
        for (mi, info) in self.state.machines.values().enumerate() {
            let mut windows: Vec<(i64, i64)> = Vec::new();
            if info.down.is_some() {
                windows.push((t, t.saturating_add(self.cfg.down_estimate_ms)));
            }
            for (urgency, opened) in info.maintenance.values() {
                // Counted from when the request opened, not from each replan.
                let s = t.max(opened.saturating_add(self.cfg.maintenance_lead.of(*urgency)));
                windows.push((s, s.saturating_add(self.cfg.maintenance_duration_ms)));
            }
            for (s, e) in windows {
                // Running work finishes first: the window starts when the machine is free and
                // keeps its length.
                let len = (e - s).max(1);
                let s = s.max(busy_until[mi]);
                let e = s.saturating_add(len);
                unavailability.push(Unavailability {
                    machine: mi,
                    start: s,
                    end: e,
                });
            }
        }
        Built {
            inst: Instance {
                machines: machines.len(),
                jobs,
                unavailability,
                fixed,
            },
            machines,
            jobs: ids,
            running_start,
        }
    }

    /// Machine sequences of the previous plan for `b`'s free operations, with operations it did
    /// not plan (new jobs) appended on their shortest machine, job by job.
    fn previous_sequences(&self, b: &Built) -> Vec<Vec<(usize, usize)>> {
        let mut pos: BTreeMap<(&str, i32), (&str, i64)> = BTreeMap::new();
        for p in self.state.plan.iter().filter(|p| !p.started) {
            pos.insert((&p.job_id, p.operation_index), (&p.machine_id, p.start));
        }
        let index: BTreeMap<&str, usize> = b
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), i))
            .collect();
        let mut keyed: Vec<Vec<(i64, usize, usize)>> = vec![Vec::new(); b.machines.len()];
        let mut appended: Vec<Vec<(usize, usize)>> = vec![Vec::new(); b.machines.len()];
        for (j, (id, first)) in b.jobs.iter().enumerate() {
            let fixed = usize::from(b.running_start[j].is_some());
            for (k, op) in b.inst.jobs[j].operations.iter().enumerate().skip(fixed) {
                let placed = pos
                    .get(&(id.as_str(), (first + k) as i32))
                    .and_then(|(m, s)| index.get(m).map(|mi| (*mi, *s)))
                    .filter(|(mi, _)| op.eligible.iter().any(|e| e.0 == *mi));
                match placed {
                    Some((mi, s)) => keyed[mi].push((s, j, k)),
                    None => {
                        let best = op
                            .eligible
                            .iter()
                            .min_by_key(|e| (e.1, e.0))
                            .map_or(0, |e| e.0);
                        appended[best].push((j, k));
                    }
                }
            }
        }
        keyed
            .into_iter()
            .zip(appended)
            .map(|(mut v, tail)| {
                v.sort_unstable();
                v.into_iter().map(|(_, j, k)| (j, k)).chain(tail).collect()
            })
            .collect()
    }

    /// Moves operations that the search put on another machine back to their machine in the
    /// previous plan (at the place their previous start gives them), one at a time, keeping each
    /// return that leaves the objective no worse. Deterministic: candidates in previous-start
    /// order, each checked by re-timing the sequences and verifying the plan.
    fn settle(
        &self,
        b: &Built,
        mut schedule: twinline_solver::Schedule,
        value: &dyn Fn(&twinline_solver::Schedule) -> f64,
    ) -> twinline_solver::Schedule {
        let index: BTreeMap<&str, usize> = b
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), i))
            .collect();
        let by_id: BTreeMap<(&str, i32), (usize, i64)> = self
            .state
            .plan
            .iter()
            .filter(|p| !p.started)
            .filter_map(|p| {
                let mi = *index.get(p.machine_id.as_str())?;
                Some(((p.job_id.as_str(), p.operation_index), (mi, p.start)))
            })
            .collect();
        // Free operations moved to another machine, with their previous machine and start.
        let mut candidates: Vec<(i64, usize, usize, usize)> = Vec::new();
        for (j, (id, first)) in b.jobs.iter().enumerate() {
            let fixed = usize::from(b.running_start[j].is_some());
            for k in fixed..schedule.jobs[j].len() {
                let Some(&(pm, ps)) = by_id.get(&(id.as_str(), (first + k) as i32)) else {
                    continue;
                };
                let eligible = b.inst.jobs[j].operations[k]
                    .eligible
                    .iter()
                    .any(|e| e.0 == pm);
                if schedule.jobs[j][k].machine != pm && eligible {
                    candidates.push((ps, j, k, pm));
                }
            }
        }
        if candidates.is_empty() {
            return schedule;
        }
        candidates.sort_unstable();
        let sequences = |s: &twinline_solver::Schedule| -> Vec<Vec<(usize, usize)>> {
            let mut seqs: Vec<Vec<(i64, usize, usize)>> = vec![Vec::new(); b.machines.len()];
            for (j, ops) in s.jobs.iter().enumerate() {
                let fixed = usize::from(b.running_start[j].is_some());
                for (k, o) in ops.iter().enumerate().skip(fixed) {
                    seqs[o.machine].push((o.start, j, k));
                }
            }
            seqs.into_iter()
                .map(|mut v| {
                    v.sort_unstable();
                    v.into_iter().map(|(_, j, k)| (j, k)).collect()
                })
                .collect()
        };
        let mut best = value(&schedule);
        for (ps, j, k, pm) in candidates {
            let mut seqs = sequences(&schedule);
            let from = schedule.jobs[j][k].machine;
            seqs[from].retain(|&(jj, kk)| (jj, kk) != (j, k));
            let at = seqs[pm]
                .iter()
                .position(|&(jj, kk)| schedule.jobs[jj][kk].start >= ps)
                .unwrap_or(seqs[pm].len());
            seqs[pm].insert(at, (j, k));
            if let Ok(s) = schedule_from_sequences(&b.inst, &seqs) {
                let v = value(&s);
                if v <= best && verify(&b.inst, &s).is_ok() {
                    best = v;
                    schedule = s;
                }
            }
        }
        schedule
    }

    /// Re-optimizes at event time `t` and returns the change, or `None` when there is nothing to
    /// plan and nothing was planned before.
    pub fn replan(
        &mut self,
        t: i64,
        reason: String,
    ) -> Result<Option<ScheduleChange>, ProcessError> {
        self.replan_with(t, reason, false)
    }

    /// As [`replan`](Self::replan); with `quick`, the dispatching policy plans instead of the
    /// solver (when a policy is attached).
    fn replan_with(
        &mut self,
        t: i64,
        reason: String,
        quick: bool,
    ) -> Result<Option<ScheduleChange>, ProcessError> {
        self.state.pending.clear();
        self.state.planned_at = Some(t);
        let b = self.build(t);
        if b.inst.jobs.is_empty() && self.state.plan.is_empty() {
            return Ok(None);
        }
        let objective = match self.cfg.objective {
            SchedulingObjective::Makespan => Objective::Makespan,
            SchedulingObjective::WeightedTardiness => Objective::WeightedTardiness,
        };
        // Makespan counts from the replan time, as `makespan_ms` does.
        let value = |s: &twinline_solver::Schedule| match objective {
            Objective::Makespan => (s.makespan() - t).max(0) as f64,
            Objective::WeightedTardiness => twinline_solver::weighted_tardiness(&b.inst, s),
        };
        let repaired = schedule_from_sequences(&b.inst, &self.previous_sequences(&b))
            .ok()
            .filter(|r| verify(&b.inst, r).is_ok());
        let version = self.state.plan_version + 1;
        if quick {
            if let Some(quick_plan) = self.policy_plan(&b, repaired.as_ref(), &value) {
                let schedule = self.settle(&b, quick_plan, &value);
                let label = self.policy.as_ref().map_or("", |p| p.1.as_str());
                let shown = format!("{reason} (dispatching policy {label}; the solver follows)");
                self.state.improve = Some(reason);
                return Ok(self.commit(&b, schedule, &value, t, shown, version));
            }
        }
        let params = SolveParams {
            // Bounded by iterations only: the plan must not depend on the machine's speed.
            time_limit: std::time::Duration::from_secs(3600),
            threads: self.cfg.threads,
            seed: self.cfg.seed ^ (version as u64),
            objective,
            initial: repaired.clone(),
            max_iterations: Some(self.cfg.max_iterations),
        };
        let solved = solve(&b.inst, &params).map_err(|e| {
            ProcessError::Internal(format!("scheduling instance rejected by the solver: {e}"))
        })?;
        // Every plan is checked against the instance before it is used (an independent
        // verifier); equal objective keeps the previous plan's placements (the smallest change).
        let solved_ok = verify(&b.inst, &solved.schedule);
        let schedule = match (repaired, solved_ok) {
            (Some(r), Ok(_)) if value(&r) <= value(&solved.schedule) => r,
            (_, Ok(_)) => solved.schedule,
            (Some(r), Err(e)) => {
                tracing::error!(error = %e, "solver plan failed verification; keeping the re-timed plan");
                r
            }
            (None, Err(e)) => {
                return Err(ProcessError::Internal(format!(
                    "no valid plan: the solver's plan fails verification: {e}"
                )))
            }
        };
        // Among plans of the same objective, fewer machine changes: send moved operations back
        // to their previous machine wherever that does not make the objective worse.
        let schedule = self.settle(&b, schedule, &value);
        Ok(self.commit(&b, schedule, &value, t, reason, version))
    }

    /// The policy's plan for `b` (greedy), or the re-timed previous plan when that is at least as
    /// good; `None` without a policy, or when the policy fails (the solver then plans at once).
    fn policy_plan(
        &mut self,
        b: &Built,
        repaired: Option<&twinline_solver::Schedule>,
        value: &dyn Fn(&twinline_solver::Schedule) -> f64,
    ) -> Option<twinline_solver::Schedule> {
        let policy = &mut self.policy.as_mut()?.0;
        let planned = match policy_schedule(&b.inst, policy.as_mut(), Decode::Greedy) {
            Ok(Ok(p)) => p.schedule,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "dispatching policy failed; the solver plans at once");
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "instance refused by the dispatching environment; the solver plans at once");
                return None;
            }
        };
        if let Err(e) = verify(&b.inst, &planned) {
            tracing::error!(error = %e, "dispatching policy plan failed verification; the solver plans at once");
            return None;
        }
        Some(match repaired {
            Some(r) if value(r) <= value(&planned) => r.clone(),
            _ => planned,
        })
    }

    /// Makes `schedule` the current plan (version `version`) and returns the change, or `None`
    /// when nothing differs from the current plan.
    fn commit(
        &mut self,
        b: &Built,
        schedule: twinline_solver::Schedule,
        value: &dyn Fn(&twinline_solver::Schedule) -> f64,
        t: i64,
        reason: String,
        version: i64,
    ) -> Option<ScheduleChange> {
        let objective_value = value(&schedule);
        let mut plan = Vec::with_capacity(b.inst.num_operations());
        for (j, ops) in schedule.jobs.iter().enumerate() {
            let (id, first) = &b.jobs[j];
            for (k, so) in ops.iter().enumerate() {
                let started = k == 0 && b.running_start[j].is_some();
                plan.push(PlannedOperation {
                    job_id: id.clone(),
                    operation_index: (first + k) as i32,
                    machine_id: b.machines[so.machine].clone(),
                    start: if started {
                        b.running_start[j].unwrap_or(so.start)
                    } else {
                        so.start
                    },
                    end: so.end,
                    started,
                });
            }
        }
        plan.sort_by(|a, b| {
            (&a.machine_id, a.start, &a.job_id, a.operation_index).cmp(&(
                &b.machine_id,
                b.start,
                &b.job_id,
                b.operation_index,
            ))
        });
        let previous: BTreeMap<(&str, i32), &PlannedOperation> = self
            .state
            .plan
            .iter()
            .map(|p| ((p.job_id.as_str(), p.operation_index), p))
            .collect();
        let moves: Vec<OperationMove> = plan
            .iter()
            .filter(|p| !p.started)
            .filter_map(|p| {
                let prev = previous.get(&(p.job_id.as_str(), p.operation_index));
                if let Some(q) = prev {
                    if !q.started && q.machine_id == p.machine_id && q.start == p.start {
                        return None;
                    }
                }
                Some(OperationMove {
                    job_id: p.job_id.clone(),
                    operation_index: p.operation_index,
                    machine_id: p.machine_id.clone(),
                    start: p.start,
                    end: p.end,
                    previous_machine_id: prev.filter(|q| !q.started).map(|q| q.machine_id.clone()),
                    previous_start: prev.filter(|q| !q.started).map(|q| q.start),
                })
            })
            .collect();
        let unchanged = moves.is_empty()
            && plan.len() == self.state.plan.len()
            && plan.iter().zip(&self.state.plan).all(|(a, b)| a == b);
        if unchanged {
            return None;
        }
        let makespan = plan.iter().map(|p| p.end).max().unwrap_or(t);
        self.state.plan_version = version;
        self.state.plan = plan.clone();
        Some(ScheduleChange {
            event_id: String::new(),
            source: Default::default(),
            event_time: t,
            plan_version: version,
            reason,
            makespan_ms: (makespan - t).max(0),
            objective: objective_value,
            moves,
            plan,
        })
    }

    fn emit_replan(
        &mut self,
        t: i64,
        reason: String,
        out: &mut Emitter,
    ) -> Result<(), ProcessError> {
        self.emit_replan_with(t, reason, false, out)
    }

    /// A disruption: with a policy and `quick_plan`, the policy's plan now and the solver's at the
    /// next event or watermark tick; otherwise the solver's now.
    fn emit_disruption(
        &mut self,
        t: i64,
        reason: String,
        out: &mut Emitter,
    ) -> Result<(), ProcessError> {
        // A newer disruption supersedes a pending improvement: the solver will improve the plan
        // made for it instead.
        self.state.improve = None;
        if self.cfg.quick_plan && self.policy.is_some() {
            self.emit_replan_with(t, reason, true, out)
        } else {
            self.emit_replan(t, reason, out)
        }
    }

    /// Runs the solver on a plan the policy made quickly, if one is waiting (with any routine
    /// changes since, which the replan includes).
    fn maybe_improve(&mut self, t: i64, out: &mut Emitter) -> Result<(), ProcessError> {
        let Some(reason) = self.state.improve.take() else {
            return Ok(());
        };
        let reason = if self.state.pending.is_empty() {
            format!("{reason} (improved by the solver)")
        } else {
            format!(
                "{reason} (improved by the solver); {}",
                self.routine_reason()
            )
        };
        self.emit_replan(t, reason, out)
    }

    fn emit_replan_with(
        &mut self,
        t: i64,
        reason: String,
        quick: bool,
        out: &mut Emitter,
    ) -> Result<(), ProcessError> {
        // A replan that fails (an instance the solver refuses, no valid plan) keeps the previous
        // plan and is logged: failing the task would replay the same event and fail forever.
        match self.replan_with(t, reason, quick) {
            Ok(Some(change)) => out.emit(
                Topic::ScheduleChanges,
                PLANT_KEY,
                Payload::ScheduleChange(change),
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, at = t, "replan failed; the previous plan stays"),
        }
        Ok(())
    }

    fn routine_reason(&self) -> String {
        let parts: Vec<String> = self
            .state
            .pending
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        format!("job events: {}", parts.join(", "))
    }

    /// Replans the batched routine changes when their interval has passed.
    fn maybe_routine(&mut self, t: i64, out: &mut Emitter) -> Result<(), ProcessError> {
        if self.state.pending.is_empty() {
            return Ok(());
        }
        let due = self
            .state
            .planned_at
            .is_none_or(|p| t >= p.saturating_add(self.cfg.routine_interval_ms));
        if due {
            let reason = self.routine_reason();
            self.emit_replan(t, reason, out)?;
        }
        Ok(())
    }

    fn on_twin(&mut self, s: &TwinState) -> Option<String> {
        let down_now = is_down(s.status);
        let info = self.machine(&s.machine_id);
        let was = info.down.map(|d| d.0);
        match (was, down_now) {
            (None, true) => {
                info.down = Some((s.status, s.event_time));
                let mut reason = format!("{} entered {}", s.machine_id, s.status.symbol());
                if s.status == MachineStatus::Error {
                    // A fault interrupts the running operation: it will start again later.
                    let mut interrupted = BTreeSet::new();
                    for (id, job) in self.state.jobs.iter_mut() {
                        if job
                            .running
                            .as_ref()
                            .is_some_and(|(m, _)| *m == s.machine_id)
                        {
                            job.running = None;
                            interrupted.insert(id.clone());
                        }
                    }
                    if !interrupted.is_empty() {
                        let ids: Vec<&str> = interrupted.iter().map(String::as_str).collect();
                        reason.push_str(&format!(" (interrupted {})", ids.join(", ")));
                    }
                }
                Some(reason)
            }
            (Some(old), true) if old != s.status => {
                info.down = Some((s.status, s.event_time));
                Some(format!(
                    "{} went from {} to {}",
                    s.machine_id,
                    old.symbol(),
                    s.status.symbol()
                ))
            }
            (Some(old), false) => {
                info.down = None;
                Some(format!(
                    "{} is back ({} after {})",
                    s.machine_id,
                    s.status.symbol(),
                    old.symbol()
                ))
            }
            _ => None,
        }
    }

    fn on_maintenance(&mut self, r: &MaintenanceRequest) -> Option<String> {
        let info = self.machine(&r.machine_id);
        match r.action {
            MaintenanceAction::Open => {
                let new = info
                    .maintenance
                    .insert(r.request_id.clone(), (r.urgency, r.event_time));
                (new != Some((r.urgency, r.event_time))).then(|| {
                    format!(
                        "maintenance request {} opened on {} ({})",
                        r.request_id,
                        r.machine_id,
                        r.urgency.symbol()
                    )
                })
            }
            MaintenanceAction::Close => info.maintenance.remove(&r.request_id).map(|_| {
                format!(
                    "maintenance request {} closed on {}",
                    r.request_id, r.machine_id
                )
            }),
        }
    }
}

impl Processor for SchedulerProcessor {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[
            Topic::JobEvents,
            Topic::MaintenanceRequests,
            Topic::TwinState,
        ]
    }

    fn on_event(&mut self, event: &Event<'_>, out: &mut Emitter) -> Result<(), ProcessError> {
        // An event stamped outside 1970..2255 would move the plan's clock for good: ignored.
        if !(0..=MAX_TIME_MS).contains(&event.event_time) {
            return Ok(());
        }
        let t = event.event_time.max(self.state.now);
        self.state.now = t;
        let disruption = match event.payload {
            Payload::JobEvent(e) => {
                self.on_job(e);
                None
            }
            Payload::TwinState(s) => self.on_twin(s),
            Payload::MaintenanceRequest(r) => self.on_maintenance(r),
            _ => None,
        };
        match disruption {
            Some(reason) => {
                let reason = if self.state.pending.is_empty() {
                    reason
                } else {
                    format!("{reason}; {}", self.routine_reason())
                };
                self.emit_disruption(t, reason, out)
            }
            None => {
                self.maybe_improve(t, out)?;
                self.maybe_routine(t, out)
            }
        }
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        out: &mut Emitter,
    ) -> Result<(), ProcessError> {
        if !(0..=MAX_TIME_MS).contains(&watermark) {
            return Ok(());
        }
        let t = watermark.max(self.state.now);
        self.state.now = t;
        self.maybe_improve(t, out)?;
        self.maybe_routine(t, out)
    }

    fn snapshot(&self) -> Result<Vec<u8>, ProcessError> {
        serde_json::to_vec(&SnapshotRef {
            version: SNAPSHOT_VERSION,
            state: &self.state,
        })
        .map_err(|e| ProcessError::Internal(format!("scheduler snapshot failed: {e}")))
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), ProcessError> {
        let snap: SnapshotOwned = serde_json::from_slice(bytes).map_err(|e| {
            ProcessError::Internal(format!("scheduler snapshot does not decode: {e}"))
        })?;
        if snap.version != SNAPSHOT_VERSION {
            return Err(ProcessError::Internal(format!(
                "scheduler snapshot version {} (this build reads {SNAPSHOT_VERSION})",
                snap.version
            )));
        }
        self.state = snap.state;
        Ok(())
    }
}
