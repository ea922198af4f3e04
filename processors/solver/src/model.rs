//! Problem model: instances, schedules, objectives, and the typed errors that say what is wrong with an input.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One operation: the machines that may run it and how long it takes on each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// `(machine index, duration)` pairs; a classic job shop has exactly one.
    pub eligible: Vec<(usize, i64)>,
}

/// A job: operations that must run in the given order, one at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub operations: Vec<Operation>,
    /// Earliest start of the first operation.
    pub release: i64,
    /// Due date for the weighted-tardiness objective; `None` means never tardy.
    pub due: Option<i64>,
    pub weight: f64,
}

/// A machine is unavailable on `[start, end)` (planned maintenance, a fault). Operations are
/// non-preemptive, so an operation may not overlap the window at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailability {
    pub machine: usize,
    pub start: i64,
    pub end: i64,
}

/// An operation that has already started: its machine and start are given, not chosen.
/// Fixed operations must form a prefix of their job (an operation cannot start before its
/// predecessor has been dispatched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedOperation {
    pub job: usize,
    pub op: usize,
    pub machine: usize,
    pub start: i64,
}

/// A (flexible) job-shop instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Instance {
    pub machines: usize,
    pub jobs: Vec<Job>,
    pub unavailability: Vec<Unavailability>,
    pub fixed: Vec<FixedOperation>,
}

/// What the solver minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Objective {
    #[default]
    Makespan,
    /// Sum of `weight * max(0, completion - due)` over jobs with a due date.
    WeightedTardiness,
}

/// Placement of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledOp {
    pub machine: usize,
    pub start: i64,
    pub end: i64,
}

/// A plan: `jobs[j][k]` places operation `k` of job `j`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Schedule {
    pub jobs: Vec<Vec<ScheduledOp>>,
}

impl Schedule {
    /// Latest end over all operations (0 for an empty plan).
    pub fn makespan(&self) -> i64 {
        self.jobs.iter().flatten().map(|o| o.end).max().unwrap_or(0)
    }
}

/// Errors: every variant but `PlanRejected` is the caller's input; `PlanRejected` is a plan of a
/// dispatching method that the independent verifier refused (a bug, reported instead of served).
#[derive(Debug, Error, PartialEq)]
pub enum SolverError {
    #[error("parse error at line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("job {job} operation {op} has no eligible machine")]
    NoEligibleMachine { job: usize, op: usize },
    #[error("job {job} operation {op}: negative duration {duration}")]
    NegativeDuration {
        job: usize,
        op: usize,
        duration: i64,
    },
    #[error("job {job} operation {op}: machine {machine} out of range (instance has {machines})")]
    MachineOutOfRange {
        job: usize,
        op: usize,
        machine: usize,
        machines: usize,
    },
    #[error("instance has no machines but has operations")]
    NoMachines,
    #[error("job {job}: weight {weight} must be finite and non-negative")]
    BadWeight { job: usize, weight: f64 },
    #[error("unavailability window {index}: {reason}")]
    BadWindow { index: usize, reason: String },
    #[error("fixed operation {index}: {reason}")]
    BadFixed { index: usize, reason: String },
    #[error("job {job} operation {op} cannot be placed: {reason}")]
    Infeasible {
        job: usize,
        op: usize,
        reason: String,
    },
    #[error("initial schedule rejected: {0}")]
    BadInitial(String),
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("plan rejected by the verifier: {reason}")]
    PlanRejected { reason: String },
}

impl Instance {
    /// Checks the instance for inputs no plan can satisfy; `solve` calls it first.
    pub fn validate(&self) -> Result<(), SolverError> {
        let has_ops = self.jobs.iter().any(|j| !j.operations.is_empty());
        if self.machines == 0 && has_ops {
            return Err(SolverError::NoMachines);
        }
        for (j, job) in self.jobs.iter().enumerate() {
            if !(job.weight.is_finite() && job.weight >= 0.0) {
                return Err(SolverError::BadWeight {
                    job: j,
                    weight: job.weight,
                });
            }
            for (k, op) in job.operations.iter().enumerate() {
                if op.eligible.is_empty() {
                    return Err(SolverError::NoEligibleMachine { job: j, op: k });
                }
                for &(m, d) in &op.eligible {
                    if m >= self.machines {
                        return Err(SolverError::MachineOutOfRange {
                            job: j,
                            op: k,
                            machine: m,
                            machines: self.machines,
                        });
                    }
                    if d < 0 {
                        return Err(SolverError::NegativeDuration {
                            job: j,
                            op: k,
                            duration: d,
                        });
                    }
                }
            }
        }
        for (i, w) in self.unavailability.iter().enumerate() {
            if w.machine >= self.machines {
                return Err(SolverError::BadWindow {
                    index: i,
                    reason: format!("machine {} out of range", w.machine),
                });
            }
            if w.end <= w.start {
                return Err(SolverError::BadWindow {
                    index: i,
                    reason: format!("end {} not after start {}", w.end, w.start),
                });
            }
        }
        self.validate_fixed()
    }

    fn validate_fixed(&self) -> Result<(), SolverError> {
        let mut seen: Vec<Vec<bool>> = self
            .jobs
            .iter()
            .map(|j| vec![false; j.operations.len()])
            .collect();
        let mut busy: Vec<(usize, i64, i64, usize)> = Vec::with_capacity(self.fixed.len());
        for (i, f) in self.fixed.iter().enumerate() {
            let bad = |reason: String| SolverError::BadFixed { index: i, reason };
            let job = self
                .jobs
                .get(f.job)
                .ok_or_else(|| bad(format!("job {} does not exist", f.job)))?;
            let op = job
                .operations
                .get(f.op)
                .ok_or_else(|| bad(format!("job {} has no operation {}", f.job, f.op)))?;
            let d = op
                .eligible
                .iter()
                .find(|e| e.0 == f.machine)
                .map(|e| e.1)
                .ok_or_else(|| bad(format!("machine {} is not eligible", f.machine)))?;
            if seen[f.job][f.op] {
                return Err(bad("operation fixed twice".into()));
            }
            seen[f.job][f.op] = true;
            if f.start < job.release {
                return Err(bad(format!(
                    "starts at {} before job release {}",
                    f.start, job.release
                )));
            }
            for (wi, w) in self.unavailability.iter().enumerate() {
                if d > 0 && w.machine == f.machine && f.start < w.end && w.start < f.start + d {
                    return Err(bad(format!("overlaps unavailability window {wi}")));
                }
            }
            if d > 0 {
                busy.push((f.machine, f.start, f.start + d, i));
            }
        }
        for (j, s) in seen.iter().enumerate() {
            // A fixed operation after an unfixed one would have started before its predecessor.
            if let Some(first_free) = s.iter().position(|x| !x) {
                if let Some(k) = s[first_free..].iter().position(|x| *x) {
                    let index = self
                        .fixed
                        .iter()
                        .position(|f| f.job == j && f.op == first_free + k)
                        .unwrap_or(0);
                    return Err(SolverError::BadFixed {
                        index,
                        reason: format!("job {j}: fixed operations must be a prefix of the job"),
                    });
                }
            }
        }
        // Precedence among fixed operations of one job, and no overlap on a machine.
        for (i, f) in self.fixed.iter().enumerate() {
            if f.op > 0 {
                if let Some(g) = self
                    .fixed
                    .iter()
                    .find(|g| g.job == f.job && g.op == f.op - 1)
                {
                    let gd = self.jobs[g.job].operations[g.op]
                        .eligible
                        .iter()
                        .find(|e| e.0 == g.machine)
                        .map_or(0, |e| e.1);
                    if g.start + gd > f.start {
                        return Err(SolverError::BadFixed {
                            index: i,
                            reason: "starts before its job predecessor ends".into(),
                        });
                    }
                }
            }
        }
        busy.sort_unstable();
        for w in busy.windows(2) {
            if w[0].0 == w[1].0 && w[1].1 < w[0].2 && w[0].1 < w[1].2 {
                return Err(SolverError::BadFixed {
                    index: w[1].3,
                    reason: format!("overlaps fixed operation {}", w[0].3),
                });
            }
        }
        Ok(())
    }

    /// Number of operations over all jobs.
    pub fn num_operations(&self) -> usize {
        self.jobs.iter().map(|j| j.operations.len()).sum()
    }

    /// True when some operation may run on more than one machine.
    pub fn is_flexible(&self) -> bool {
        self.jobs
            .iter()
            .flat_map(|j| &j.operations)
            .any(|o| o.eligible.len() > 1)
    }
}

/// Weighted tardiness of a plan (jobs without due date or operations contribute nothing).
pub fn weighted_tardiness(inst: &Instance, s: &Schedule) -> f64 {
    inst.jobs
        .iter()
        .zip(&s.jobs)
        .map(|(job, ops)| match (job.due, ops.last()) {
            (Some(d), Some(last)) => job.weight * (last.end - d).max(0) as f64,
            _ => 0.0,
        })
        .sum()
}
