//! The dispatching environment: Giffler–Thompson active-schedule construction as a sequence of
//! decisions (which waiting operation the next freed machine takes), with per-operation
//! observations and a lower-bound reward; the one implementation behind the classic dispatching
//! rules, the learned policy's training (through the Python binding in `models/rl/pyenv`) and its
//! serving.
//!
//! A decision point is the Giffler–Thompson conflict set: among the next operation of every job,
//! the one that can complete first fixes a machine `m*` and a time `c*`; the candidates are the
//! operations whose best machine is `m*` and that can start before `c*`. Choosing any of them keeps
//! the schedule active. Points with a single candidate are passed without asking.
//!
//! Observation: [`N_FEATURES`] numbers per candidate (see [`FEATURE_NAMES`]), scaled so that one
//! policy serves every instance size, and measured from the instance's earliest release, so that
//! an instance in epoch milliseconds looks like the same instance starting at 0. Reward of a step:
//! the negative increase of the makespan lower bound of the partial schedule (job bound and
//! machine bound), divided by the bound at the start (both counted from the earliest release).
//! The sum over an episode is `(LB0 - Cmax) / LB0`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::graph::{Problem, State, NONE};
use crate::model::{Instance, Job, Objective, Operation, Schedule, SolverError};

/// Numbers per candidate operation in an observation.
pub const N_FEATURES: usize = 16;

/// What each observation column means (the order of the policy's input).
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "duration / mean duration",
    "start - earliest start in the conflict set, / mean duration",
    "job work remaining incl. this op / mean job work",
    "job operations remaining / most operations per job",
    "job work done / mean job work",
    "job fraction complete after this op (FDD/MWKR)",
    "(start + job work remaining) / lower bound (times from the earliest release)",
    "job work remaining / largest among candidates",
    "shortest candidate duration / duration",
    "(next op's machine ready - completion) / mean duration, clipped to [-5, 5]",
    "job has a next operation",
    "(next op's machine ready + its remaining load) / lower bound (times from the earliest release)",
    "(machine ready + remaining load) / lower bound, for the deciding machine (times from the earliest release)",
    "operations scheduled / all operations",
    "candidates / jobs",
    "job operations remaining / most among candidates",
];

/// A classic dispatching rule over the same conflict sets as the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchRule {
    /// Shortest processing time.
    Spt,
    /// Most work remaining.
    Mwkr,
    /// Most operations remaining.
    Mopnr,
    /// Smallest ratio of flow due date (work done including this operation) to work remaining.
    FddMwkr,
}

impl DispatchRule {
    pub const ALL: [DispatchRule; 4] = [
        DispatchRule::Spt,
        DispatchRule::Mwkr,
        DispatchRule::Mopnr,
        DispatchRule::FddMwkr,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DispatchRule::Spt => "SPT",
            DispatchRule::Mwkr => "MWKR",
            DispatchRule::Mopnr => "MOPNR",
            DispatchRule::FddMwkr => "FDD/MWKR",
        }
    }

    pub fn parse(s: &str) -> Option<DispatchRule> {
        DispatchRule::ALL.into_iter().find(|r| {
            r.name().eq_ignore_ascii_case(s) || r.name().replace('/', "-").eq_ignore_ascii_case(s)
        })
    }
}

/// One episode of dispatching on one instance.
#[derive(Clone)]
pub struct DispatchEnv {
    p: Problem,
    /// Per free operation: minimum work from it to the end of its job, and operations left.
    rem_work: Vec<i64>,
    rem_ops: Vec<u32>,
    /// Per free operation: the machine it must use when it has only one, else `NONE`.
    single_m: Vec<u32>,
    jobs: usize,
    mean_d: f64,
    mean_job_work: f64,
    max_ops: f64,
    t_first: i64,
    /// Mutable episode state.
    next: Vec<u32>,
    job_ready: Vec<i64>,
    done_work: Vec<i64>,
    mach_ready: Vec<i64>,
    /// Work of unscheduled single-machine operations per machine.
    mach_load: Vec<i64>,
    seqs: Vec<Vec<u32>>,
    scheduled: usize,
    /// The lower bound at the start (absolute) and the reward scale (the same, from `t_first`).
    lb_start: i64,
    scale: f64,
    lb: i64,
    /// Per job slot: best machine, start, completion (valid for jobs with a next op).
    best: Vec<(u32, i64, i64)>,
    cand: Vec<u32>,
    reward: f64,
}

impl DispatchEnv {
    /// An environment for `inst` (makespan objective), reset and advanced to its first decision.
    pub fn new(inst: &Instance) -> Result<DispatchEnv, SolverError> {
        inst.validate()?;
        let p = Problem::new(inst, Objective::Makespan);
        let n = p.n;
        let (rem_work, rem_ops) = p.remaining();
        let single_m: Vec<u32> = (0..n)
            .map(|i| {
                let r = p.eligible(i);
                if r.len() == 1 {
                    p.elig_m[r.start]
                } else {
                    NONE
                }
            })
            .collect();
        let jobs = inst.jobs.len();
        let total: i64 = p.min_d.iter().sum();
        let mean_d = if n == 0 {
            1.0
        } else {
            (total as f64 / n as f64).max(1.0)
        };
        let mean_job_work = (total as f64 / jobs.max(1) as f64).max(1.0);
        let max_ops = inst
            .jobs
            .iter()
            .map(|j| j.operations.len())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let t_first = (0..n)
            .filter(|&i| p.jprev[i] == NONE)
            .map(|i| p.release[i])
            .min()
            .unwrap_or(0);
        let m = p.m;
        let mut env = DispatchEnv {
            p,
            rem_work,
            rem_ops,
            single_m,
            jobs,
            mean_d,
            mean_job_work,
            max_ops,
            t_first,
            next: Vec::with_capacity(jobs),
            job_ready: Vec::with_capacity(jobs),
            done_work: vec![0; jobs],
            mach_ready: vec![0; m],
            mach_load: vec![0; m],
            seqs: vec![Vec::new(); m],
            scheduled: 0,
            lb_start: 0,
            scale: 1.0,
            lb: 0,
            best: Vec::with_capacity(jobs),
            cand: Vec::with_capacity(jobs),
            reward: 0.0,
        };
        env.reset();
        Ok(env)
    }

    /// Starts the episode again from the empty schedule (and advances to the first decision).
    pub fn reset(&mut self) {
        let p = &self.p;
        self.next.clear();
        self.job_ready.clear();
        // One slot per job, in job order; jobs without free operations start finished.
        let mut first = vec![NONE; self.jobs];
        for i in 0..p.n {
            if p.jprev[i] == NONE {
                first[p.job_of[i] as usize] = i as u32;
            }
        }
        for (j, &f) in first.iter().enumerate() {
            self.next.push(f);
            self.job_ready.push(if f == NONE {
                i64::MIN / 4
            } else {
                p.release[f as usize]
            });
            self.done_work[j] = 0;
        }
        self.mach_ready.iter_mut().for_each(|r| *r = self.t_first);
        self.mach_load.iter_mut().for_each(|l| *l = 0);
        for i in 0..p.n {
            if self.single_m[i] != NONE {
                self.mach_load[self.single_m[i] as usize] += p.min_d[i];
            }
        }
        self.seqs.iter_mut().for_each(Vec::clear);
        self.scheduled = 0;
        self.best.clear();
        self.best.resize(self.jobs, (0, 0, 0));
        self.lb = self.lower_bound();
        self.lb_start = self.lb;
        self.scale = ((self.lb - self.t_first) as f64).max(1.0);
        self.reward = 0.0;
        self.advance();
    }

    /// The makespan lower bound of the current partial schedule.
    fn lower_bound(&self) -> i64 {
        let mut lb = self.p.fixed_end;
        for (j, &x) in self.next.iter().enumerate() {
            let w = if x == NONE {
                0
            } else {
                self.rem_work[x as usize]
            };
            lb = lb.max(self.job_ready[j] + w);
        }
        for (m, &l) in self.mach_load.iter().enumerate() {
            if l > 0 {
                lb = lb.max(self.mach_ready[m] + l);
            }
        }
        lb
    }

    /// Computes the conflict set; applies single-candidate decisions until a real choice or the end.
    fn advance(&mut self) {
        loop {
            self.conflict_set();
            if self.cand.len() != 1 {
                return;
            }
            let x = self.cand[0];
            self.apply(x);
        }
    }

    fn conflict_set(&mut self) {
        self.cand.clear();
        let p = &self.p;
        let mut cmin = i64::MAX;
        let mut mstar = 0u32;
        for (j, &x) in self.next.iter().enumerate() {
            if x == NONE {
                continue;
            }
            let b = p.earliest_completion(x as usize, self.job_ready[j], &self.mach_ready);
            self.best[j] = b;
            if b.2 < cmin {
                cmin = b.2;
                mstar = b.0;
            }
        }
        if cmin == i64::MAX {
            return;
        }
        for (j, &x) in self.next.iter().enumerate() {
            if x == NONE {
                continue;
            }
            let b = self.best[j];
            if b.0 == mstar && (b.1 < cmin || b.2 == cmin) {
                self.cand.push(j as u32);
            }
        }
    }

    /// Schedules the next operation of job `j` on its best machine.
    fn apply(&mut self, j: u32) {
        let ju = j as usize;
        let x = self.next[ju];
        let (m, s, c) = self.best[ju];
        let xi = x as usize;
        self.seqs[m as usize].push(x);
        self.mach_ready[m as usize] = c;
        self.job_ready[ju] = c;
        self.done_work[ju] += c - s;
        if self.single_m[xi] != NONE {
            self.mach_load[self.single_m[xi] as usize] -= self.p.min_d[xi];
        }
        self.next[ju] = self.p.jnext[xi];
        self.scheduled += 1;
        let lb = self.lower_bound();
        self.reward -= (lb - self.lb) as f64 / self.scale;
        self.lb = lb;
    }

    /// True when every operation is scheduled.
    pub fn done(&self) -> bool {
        self.cand.is_empty()
    }

    /// Jobs whose next operation is a candidate of the current decision.
    pub fn candidates(&self) -> &[u32] {
        &self.cand
    }

    /// Writes the observation (`candidates().len() * N_FEATURES` numbers, row per candidate).
    pub fn features(&self, out: &mut [f32]) {
        let p = &self.p;
        // Times from the earliest release: features of a shifted instance are the same.
        let origin = self.t_first;
        let lb = ((self.lb - origin) as f64).max(1.0);
        let d_of = |j: usize| (self.best[j].2 - self.best[j].1) as f64;
        let t0 = self
            .cand
            .iter()
            .map(|&j| self.best[j as usize].1)
            .min()
            .unwrap_or(0);
        let mut max_rw = 1i64;
        let mut max_ro = 1u32;
        let mut min_d = f64::INFINITY;
        for &j in &self.cand {
            let x = self.next[j as usize] as usize;
            max_rw = max_rw.max(self.rem_work[x]);
            max_ro = max_ro.max(self.rem_ops[x]);
            min_d = min_d.min(d_of(j as usize));
        }
        let mstar = self
            .cand
            .first()
            .map_or(0, |&j| self.best[j as usize].0 as usize);
        let here = (self.mach_ready[mstar] - origin + self.mach_load[mstar]) as f64 / lb;
        let progress = self.scheduled as f64 / p.n.max(1) as f64;
        let width = self.cand.len() as f64 / self.jobs.max(1) as f64;
        for (k, &j) in self.cand.iter().enumerate() {
            let ju = j as usize;
            let x = self.next[ju] as usize;
            let (_, s, c) = self.best[ju];
            let d = d_of(ju);
            let rw = self.rem_work[x] as f64;
            let done = self.done_work[ju] as f64;
            let nx = p.jnext[x];
            let (next_gap, has_next, next_load) = if nx == NONE {
                (0.0, 0.0, 0.0)
            } else {
                let nm = self.single_m[nx as usize];
                if nm == NONE {
                    (0.0, 1.0, 0.0)
                } else {
                    let r = self.mach_ready[nm as usize];
                    (
                        ((r - c) as f64 / self.mean_d).clamp(-5.0, 5.0),
                        1.0,
                        (r - origin + self.mach_load[nm as usize]) as f64 / lb,
                    )
                }
            };
            let row = &mut out[k * N_FEATURES..(k + 1) * N_FEATURES];
            row[0] = (d / self.mean_d) as f32;
            row[1] = ((s - t0) as f64 / self.mean_d) as f32;
            row[2] = (rw / self.mean_job_work) as f32;
            row[3] = (self.rem_ops[x] as f64 / self.max_ops) as f32;
            row[4] = (done / self.mean_job_work) as f32;
            row[5] = ((done + d) / (done + rw).max(1.0)) as f32;
            row[6] = (((s - origin) as f64 + rw) / lb) as f32;
            row[7] = (rw / max_rw as f64) as f32;
            row[8] = if d > 0.0 { (min_d / d) as f32 } else { 1.0 };
            row[9] = next_gap as f32;
            row[10] = has_next;
            row[11] = next_load as f32;
            row[12] = here as f32;
            row[13] = progress as f32;
            row[14] = width as f32;
            row[15] = (self.rem_ops[x] as f64 / max_ro as f64) as f32;
        }
    }

    /// Takes candidate `k` of the current decision, advances to the next decision and returns the
    /// reward collected since the previous call (including passed single-candidate points).
    pub fn step(&mut self, k: usize) -> f64 {
        if let Some(&j) = self.cand.get(k) {
            self.apply(j);
            self.advance();
        }
        std::mem::take(&mut self.reward)
    }

    /// Reward collected by the automatic steps since the last `step` or `take_reward`.
    pub fn take_reward(&mut self) -> f64 {
        std::mem::take(&mut self.reward)
    }

    /// The makespan lower bound at the start of the episode.
    pub fn initial_lower_bound(&self) -> i64 {
        self.lb_start
    }

    /// The earliest release: the reward is scaled by `initial_lower_bound - earliest_release`.
    pub fn earliest_release(&self) -> i64 {
        self.t_first
    }

    /// The plan built so far, evaluated (complete when [`done`](Self::done)).
    pub fn schedule(&self) -> Schedule {
        let mut st = State::from_sequences(&self.p, &self.seqs);
        let ok = st.evaluate(&self.p);
        debug_assert!(ok);
        st.to_schedule(&self.p)
    }

    /// Makespan of the finished plan (machine completion times, fixed operations included).
    pub fn makespan(&self) -> i64 {
        let mut mk = self.p.fixed_end;
        for &r in &self.job_ready {
            mk = mk.max(r);
        }
        mk
    }

    /// Index of the candidate a rule picks: the largest (score, tie-break), first on full ties.
    pub fn rule_choice(&self, rule: DispatchRule) -> usize {
        let mut pick = 0;
        let mut best = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for (k, &j) in self.cand.iter().enumerate() {
            let ju = j as usize;
            let x = self.next[ju] as usize;
            let d = (self.best[ju].2 - self.best[ju].1) as f64;
            let rw = self.rem_work[x] as f64;
            let key = match rule {
                DispatchRule::Spt => (-d, 0.0),
                DispatchRule::Mwkr => (rw, 0.0),
                DispatchRule::Mopnr => (self.rem_ops[x] as f64, rw),
                DispatchRule::FddMwkr => (-((self.done_work[ju] as f64 + d) / rw.max(1e-9)), 0.0),
            };
            if key.0 > best.0 || (key.0 == best.0 && key.1 > best.1) {
                best = key;
                pick = k;
            }
        }
        pick
    }
}

/// The plan a dispatching rule builds, and its makespan.
pub fn rule_schedule(inst: &Instance, rule: DispatchRule) -> Result<(Schedule, i64), SolverError> {
    let mut env = DispatchEnv::new(inst)?;
    while !env.done() {
        let k = env.rule_choice(rule);
        env.step(k);
    }
    Ok((env.schedule(), env.makespan()))
}

/// Scores candidates: given `batch` observations padded to `width` candidates
/// (`features[b][k][f]`, row-major, and `mask[b][k]` = 1 for a real candidate), writes one logit per
/// `(b, k)` into `logits`.
pub trait CandidateScorer {
    type Error;
    fn score(
        &mut self,
        features: &[f32],
        mask: &[f32],
        batch: usize,
        width: usize,
        logits: &mut Vec<f32>,
    ) -> Result<(), Self::Error>;
}

/// How a policy's scores become decisions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decode {
    /// One rollout, the highest-scoring candidate each time.
    Greedy,
    /// `rollouts` rollouts in one batch: the first greedy, the others drawn from the softmax of the
    /// scores (seeded), keeping the plan with the smallest makespan.
    Sample { rollouts: usize, seed: u64 },
}

impl Decode {
    /// `Greedy` for at most one rollout, else `Sample` with `rollouts` and `seed`.
    pub fn for_rollouts(rollouts: usize, seed: u64) -> Decode {
        if rollouts <= 1 {
            Decode::Greedy
        } else {
            Decode::Sample { rollouts, seed }
        }
    }
}

/// Result of a policy rollout.
#[derive(Debug, Clone)]
pub struct PolicyPlan {
    pub schedule: Schedule,
    pub makespan: i64,
    /// Scoring calls: the decision points (more than one candidate) of the longest rollout.
    pub decisions: usize,
    pub rollouts: usize,
}

/// A batch of environments stepped together (the policy scores all their candidates in one call).
pub struct EnvBatch {
    pub envs: Vec<DispatchEnv>,
    /// Padded observation of the last [`observe`](Self::observe).
    pub features: Vec<f32>,
    pub mask: Vec<f32>,
    pub width: usize,
}

impl EnvBatch {
    pub fn new(envs: Vec<DispatchEnv>) -> EnvBatch {
        EnvBatch {
            envs,
            features: Vec::new(),
            mask: Vec::new(),
            width: 0,
        }
    }

    /// Fills `features`/`mask` for every environment, padded to the widest conflict set (at least 1).
    pub fn observe(&mut self) {
        let width = self
            .envs
            .iter()
            .map(|e| e.candidates().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let b = self.envs.len();
        self.width = width;
        self.features.clear();
        self.features.resize(b * width * N_FEATURES, 0.0);
        self.mask.clear();
        self.mask.resize(b * width, 0.0);
        for (i, e) in self.envs.iter().enumerate() {
            let k = e.candidates().len();
            e.features(&mut self.features[i * width * N_FEATURES..(i * width + k) * N_FEATURES]);
            self.mask[i * width..i * width + k]
                .iter_mut()
                .for_each(|m| *m = 1.0);
        }
    }

    pub fn all_done(&self) -> bool {
        self.envs.iter().all(DispatchEnv::done)
    }
}

/// Builds a plan for `inst` with a learned candidate scorer.
pub fn policy_schedule<S: CandidateScorer + ?Sized>(
    inst: &Instance,
    scorer: &mut S,
    decode: Decode,
) -> Result<Result<PolicyPlan, S::Error>, SolverError> {
    let (rollouts, seed) = match decode {
        Decode::Greedy => (1, 0),
        Decode::Sample { rollouts, seed } => (rollouts.max(1), seed),
    };
    let env = DispatchEnv::new(inst)?;
    let mut batch = EnvBatch::new(vec![env; rollouts]);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut logits = Vec::new();
    let mut decisions = 0;
    while !batch.all_done() {
        batch.observe();
        let w = batch.width;
        if let Err(e) = scorer.score(&batch.features, &batch.mask, rollouts, w, &mut logits) {
            return Ok(Err(e));
        }
        decisions += 1;
        for (i, env) in batch.envs.iter_mut().enumerate() {
            let k = env.candidates().len();
            if k == 0 {
                continue;
            }
            let row = &logits[i * w..i * w + k];
            let pick = if i == 0 {
                argmax(row)
            } else {
                sample(row, &mut rng)
            };
            env.step(pick);
        }
    }
    let best = batch
        .envs
        .iter()
        .enumerate()
        .min_by_key(|(i, e)| (e.makespan(), *i))
        .map(|(_, e)| e)
        .expect("at least one rollout");
    Ok(Ok(PolicyPlan {
        schedule: best.schedule(),
        makespan: best.makespan(),
        decisions,
        rollouts,
    }))
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (k, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = k;
        }
    }
    best
}

fn sample(row: &[f32], rng: &mut ChaCha8Rng) -> usize {
    let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = row.iter().map(|&v| ((v - mx) as f64).exp()).sum();
    let mut u = rng.gen::<f64>() * total;
    for (k, &v) in row.iter().enumerate() {
        u -= ((v - mx) as f64).exp();
        if u <= 0.0 {
            return k;
        }
    }
    row.len() - 1
}

/// A random job-shop instance in Taillard's style: every job visits every machine once in a random
/// order, durations uniform in `1..=max_duration`. Seeded.
pub fn random_instance(jobs: usize, machines: usize, max_duration: i64, seed: u64) -> Instance {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let jobs = (0..jobs)
        .map(|j| {
            let mut order: Vec<usize> = (0..machines).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.gen_range(0..=i));
            }
            Job {
                id: format!("J{j}"),
                operations: order
                    .into_iter()
                    .map(|m| Operation {
                        eligible: vec![(m, rng.gen_range(1..=max_duration.max(1)))],
                    })
                    .collect(),
                release: 0,
                due: None,
                weight: 1.0,
            }
        })
        .collect();
    Instance {
        machines,
        jobs,
        unavailability: Vec::new(),
        fixed: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::verify;

    #[test]
    fn rules_build_valid_plans_and_rewards_sum_to_the_bound_gap() {
        for seed in 0..20 {
            let inst = random_instance(8, 5, 30, seed);
            for rule in DispatchRule::ALL {
                let mut env = DispatchEnv::new(&inst).unwrap();
                let mut total = env.take_reward();
                let lb0 = env.initial_lower_bound();
                while !env.done() {
                    let k = env.rule_choice(rule);
                    total += env.step(k);
                }
                let s = env.schedule();
                let mk = verify(&inst, &s).unwrap();
                assert_eq!(mk, env.makespan(), "{rule:?} seed {seed}");
                let expect = (lb0 - mk) as f64 / lb0 as f64;
                assert!((total - expect).abs() < 1e-9, "{total} vs {expect}");
            }
        }
    }

    #[test]
    fn observations_do_not_depend_on_where_time_starts() {
        let inst = random_instance(10, 6, 50, 11);
        let mut shifted = inst.clone();
        let t0 = 1_790_000_000_000i64;
        for j in &mut shifted.jobs {
            j.release = t0;
        }
        let (mut a, mut b) = (
            DispatchEnv::new(&inst).unwrap(),
            DispatchEnv::new(&shifted).unwrap(),
        );
        let (mut fa, mut fb) = (vec![0f32; 10 * N_FEATURES], vec![0f32; 10 * N_FEATURES]);
        let (mut ra, mut rb) = (a.take_reward(), b.take_reward());
        while !a.done() {
            assert_eq!(a.candidates(), b.candidates());
            let k = a.candidates().len() * N_FEATURES;
            a.features(&mut fa[..k]);
            b.features(&mut fb[..k]);
            assert_eq!(fa[..k], fb[..k]);
            let pick = a.rule_choice(DispatchRule::FddMwkr);
            ra += a.step(pick);
            rb += b.step(pick);
        }
        assert!(b.done());
        assert_eq!(b.makespan() - t0, a.makespan());
        assert_eq!(b.initial_lower_bound() - t0, a.initial_lower_bound());
        assert!((ra - rb).abs() < 1e-12);
    }

    #[test]
    fn conflict_sets_hold_only_the_deciding_machine() {
        let inst = random_instance(10, 6, 50, 7);
        let mut env = DispatchEnv::new(&inst).unwrap();
        let mut feats = vec![0f32; 10 * N_FEATURES];
        while !env.done() {
            let c = env.candidates().to_vec();
            assert!(c.len() >= 2);
            let m: Vec<u32> = c.iter().map(|&j| env.best[j as usize].0).collect();
            assert!(m.iter().all(|&x| x == m[0]));
            env.features(&mut feats[..c.len() * N_FEATURES]);
            assert!(feats[..c.len() * N_FEATURES].iter().all(|v| v.is_finite()));
            env.step(c.len() - 1);
        }
    }
}
