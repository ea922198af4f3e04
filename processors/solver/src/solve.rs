//! Anytime multi-threaded solve: constructive start, independent seeded tabu searches per thread,
//! and elite exchange at fixed iteration counts so that results depend on the seed, the thread
//! count and the number of iterations, never on thread timing.

use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::bounds;
use crate::construct::{self, Rule, RULES};
use crate::graph::{Problem, Snapshot, State};
use crate::model::{Instance, Objective, Schedule, SolverError};
use crate::search::Worker;
use crate::verify::verify;

/// Iterations each thread runs between two exchanges of elite solutions.
const EPOCH: u64 = 1000;

/// Solver parameters.
///
/// Reproducibility: with `max_iterations` set (and a generous `time_limit`), the result is a pure
/// function of the instance, `seed`, `threads` and `max_iterations`. With only a time limit, the
/// search itself is the same sequence of steps, but *where it stops* depends on the machine's
/// speed and load, so two runs may return different plans.
#[derive(Debug, Clone)]
pub struct SolveParams {
    pub time_limit: Duration,
    pub threads: usize,
    pub seed: u64,
    pub objective: Objective,
    /// A plan to start from (for rescheduling); it must be valid for the instance.
    pub initial: Option<Schedule>,
    /// Iterations per thread; `None` = run until the time limit (or a proven optimum).
    pub max_iterations: Option<u64>,
}

impl Default for SolveParams {
    fn default() -> Self {
        SolveParams {
            time_limit: Duration::from_secs(10),
            threads: 1,
            seed: 0,
            objective: Objective::Makespan,
            initial: None,
            max_iterations: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SolveStats {
    /// Iterations summed over threads.
    pub iterations: u64,
    pub restarts: u64,
    pub improvements: u64,
    pub threads: usize,
    /// Wall time of the whole call.
    pub solver_time_ms: u64,
    /// Makespan of the best constructive (dispatching-rule) plan.
    pub initial_makespan: i64,
}

#[derive(Debug, Clone)]
pub struct Solution {
    pub schedule: Schedule,
    pub makespan: i64,
    /// Makespan, or weighted tardiness, per the objective.
    pub objective_value: f64,
    /// Lower bound on the makespan.
    pub lower_bound: i64,
    /// Lower bound on the objective value.
    pub objective_lower_bound: f64,
    /// The objective value equals its lower bound.
    pub optimal: bool,
    pub time_to_best_ms: u64,
    pub stats: SolveStats,
}

/// Final state of one thread: best plan, objective, makespan, when found, statistics.
type ThreadResult = (State, f64, i64, Option<Instant>, crate::search::WorkerStats);

/// Per-thread result published at each exchange.
struct Slot {
    snap: Option<Snapshot>,
    val: f64,
    mk: i64,
    at: Option<Instant>,
    timed_out: bool,
}

/// Solves `inst`. Errors only on invalid input (instance or initial plan).
pub fn solve(inst: &Instance, params: &SolveParams) -> Result<Solution, SolverError> {
    let t0 = Instant::now();
    inst.validate()?;
    let p = Problem::new(inst, params.objective);
    let lb = bounds::makespan_lower_bound(&p);
    let lb_val = match params.objective {
        Objective::Makespan => lb as f64,
        Objective::WeightedTardiness => bounds::tardiness_lower_bound(&p),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut start: Option<(f64, i64, State)> = None;
    fn consider(start: &mut Option<(f64, i64, State)>, st: State, p: &Problem) {
        let v = st.objective(p);
        if start
            .as_ref()
            .is_none_or(|(bv, bm, _)| v < *bv || (v == *bv && st.makespan < *bm))
        {
            *start = Some((v, st.makespan, st));
        }
    }
    for rule in RULES
        .iter()
        .copied()
        .chain(std::iter::repeat_n(Rule::NoisyMwkr, 4))
    {
        consider(&mut start, construct::build(&p, rule, &mut rng), &p);
    }
    let initial_makespan = start.as_ref().map_or(0, |s| s.1);
    if let Some(init) = &params.initial {
        verify(inst, init).map_err(SolverError::BadInitial)?;
        consider(&mut start, state_from_schedule(&p, init)?, &p);
    }
    let Some((_, _, start)) = start else {
        return Err(SolverError::Infeasible {
            job: 0,
            op: 0,
            reason: "no constructive plan".into(),
        });
    };
    let threads = params.threads.max(1);
    let deadline = t0 + params.time_limit;
    let n_jobs = inst.jobs.len();
    let slots: Vec<Mutex<Slot>> = (0..threads)
        .map(|_| {
            Mutex::new(Slot {
                snap: None,
                val: f64::INFINITY,
                mk: i64::MAX,
                at: None,
                timed_out: false,
            })
        })
        .collect();
    let barrier = Barrier::new(threads);
    let results: Vec<Mutex<Option<ThreadResult>>> =
        (0..threads).map(|_| Mutex::new(None)).collect();

    let worker_main = |t: usize| {
        let seed = params.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t as u64 + 1));
        let mut w = Worker::new(&p, &start, seed, lb_val, n_jobs);
        let mut done: u64 = 0;
        loop {
            let chunk = match params.max_iterations {
                Some(mx) => EPOCH.min(mx - done),
                None => EPOCH,
            };
            let timed_out = w.run(chunk, Some(deadline));
            done += chunk;
            {
                let mut s = lock(&slots[t]);
                match &mut s.snap {
                    Some(sn) => sn.clone_from(&w.best),
                    None => s.snap = Some(w.best.clone()),
                }
                s.val = w.best_val;
                s.mk = w.best_mk;
                s.at = w.best_at;
                s.timed_out = timed_out;
            }
            barrier.wait();
            // Everyone reads the same published slots, so every thread takes the same decisions.
            let mut g = 0;
            let mut stop = params.max_iterations.is_some_and(|mx| done >= mx);
            let mut gv = (f64::INFINITY, i64::MAX);
            for (i, sl) in slots.iter().enumerate() {
                let s = lock(sl);
                stop |= s.timed_out;
                if (s.val, s.mk) < gv {
                    gv = (s.val, s.mk);
                    g = i;
                }
            }
            stop |= gv.0 <= lb_val;
            if !stop && g != t && (gv.0, gv.1) < (w.best_val, w.best_mk) && w.stalled_for() >= EPOCH
            {
                let s = lock(&slots[g]);
                if let Some(sn) = &s.snap {
                    w.adopt(sn, s.val, s.mk, s.at);
                }
            }
            barrier.wait();
            if stop {
                break;
            }
        }
        let mut st = State::new(&p);
        st.restore(&w.best);
        st.evaluate(&p);
        *lock(&results[t]) = Some((st, w.best_val, w.best_mk, w.best_at, w.stats));
    };
    if threads == 1 {
        worker_main(0);
    } else {
        std::thread::scope(|sc| {
            for t in 0..threads {
                let f = &worker_main;
                sc.spawn(move || f(t));
            }
        });
    }
    let mut best: Option<(State, f64, i64, Option<Instant>)> = None;
    let mut stats = SolveStats {
        threads,
        initial_makespan,
        ..SolveStats::default()
    };
    for r in &results {
        if let Some((st, v, mk, at, ws)) = lock(r).take() {
            stats.iterations += ws.iterations;
            stats.restarts += ws.restarts;
            stats.improvements += ws.improvements;
            if best.as_ref().is_none_or(|b| (v, mk) < (b.1, b.2)) {
                best = Some((st, v, mk, at));
            }
        }
    }
    let Some((st, val, mk, at)) = best else {
        return Err(SolverError::Infeasible {
            job: 0,
            op: 0,
            reason: "search produced no plan".into(),
        });
    };
    let schedule = st.to_schedule(&p);
    stats.solver_time_ms = t0.elapsed().as_millis() as u64;
    Ok(Solution {
        schedule,
        makespan: mk,
        objective_value: val,
        lower_bound: lb,
        objective_lower_bound: lb_val,
        optimal: val <= lb_val,
        time_to_best_ms: at.map_or(0, |a| a.saturating_duration_since(t0).as_millis() as u64),
        stats,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another worker panicked; its data is still a valid snapshot.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sequences of a valid plan: operations on each machine in start order.
fn state_from_schedule(p: &Problem, s: &Schedule) -> Result<State, SolverError> {
    let mut seqs: Vec<Vec<(i64, i64, u32)>> = vec![Vec::new(); p.m];
    for i in 0..p.n {
        let (j, k) = p.origin[i];
        let so = s.jobs[j as usize][k as usize];
        seqs[so.machine].push((so.start, so.end, i as u32));
    }
    let seqs: Vec<Vec<u32>> = seqs
        .into_iter()
        .map(|mut v| {
            v.sort_unstable();
            v.into_iter().map(|x| x.2).collect()
        })
        .collect();
    let mut st = State::from_sequences(p, &seqs);
    if !st.evaluate(p) {
        return Err(SolverError::BadInitial(
            "machine sequences contain a cycle".into(),
        ));
    }
    Ok(st)
}
