//! Disjunctive-graph representation used by the search: the flattened static problem and the per-thread
//! mutable state (machine sequences as linked lists, heads, tails, critical path).

use crate::model::{Instance, Objective, Schedule, ScheduledOp};

pub(crate) const NONE: u32 = u32::MAX;

/// The instance flattened for the search. Fixed operations are removed: they become machine
/// unavailability for everyone else and a release time for the rest of their job.
pub(crate) struct Problem {
    /// Number of free (searchable) operations.
    pub n: usize,
    pub m: usize,
    pub jprev: Vec<u32>,
    pub jnext: Vec<u32>,
    pub job_of: Vec<u32>,
    /// `(job, index within job)` of each free operation.
    pub origin: Vec<(u32, u32)>,
    /// Last free operation of each job (`NONE` when the job has none).
    pub job_last: Vec<u32>,
    /// Earliest start of each operation from job release / fixed predecessors (only binding on a job's first free op).
    pub release: Vec<i64>,
    pub elig_off: Vec<u32>,
    pub elig_m: Vec<u32>,
    pub elig_d: Vec<i64>,
    pub min_d: Vec<i64>,
    /// Per machine, sorted and merged `[start, end)` blocked intervals.
    pub win_off: Vec<u32>,
    pub win: Vec<(i64, i64)>,
    pub has_windows: bool,
    pub flexible: bool,
    pub objective: Objective,
    pub due: Vec<i64>,
    pub weight: Vec<f64>,
    /// Latest end of a fixed operation (part of the makespan).
    pub fixed_end: i64,
    /// Placements of fixed operations, by (job, op).
    pub fixed_place: Vec<Vec<Option<ScheduledOp>>>,
    /// Weighted tardiness contributed by jobs that are entirely fixed.
    pub fixed_tardiness: f64,
}

impl Problem {
    pub fn new(inst: &Instance, objective: Objective) -> Problem {
        let mut fixed_place: Vec<Vec<Option<ScheduledOp>>> = inst
            .jobs
            .iter()
            .map(|j| vec![None; j.operations.len()])
            .collect();
        let mut blocked: Vec<Vec<(i64, i64)>> = vec![Vec::new(); inst.machines];
        let mut fixed_end = 0;
        for f in &inst.fixed {
            // validate() guarantees the machine is eligible.
            let d = inst.jobs[f.job].operations[f.op]
                .eligible
                .iter()
                .find(|e| e.0 == f.machine)
                .map_or(0, |e| e.1);
            fixed_place[f.job][f.op] = Some(ScheduledOp {
                machine: f.machine,
                start: f.start,
                end: f.start + d,
            });
            if d > 0 {
                blocked[f.machine].push((f.start, f.start + d));
            }
            fixed_end = fixed_end.max(f.start + d);
        }
        for w in &inst.unavailability {
            blocked[w.machine].push((w.start, w.end));
        }
        let mut win_off = Vec::with_capacity(inst.machines + 1);
        let mut win: Vec<(i64, i64)> = Vec::new();
        for b in &mut blocked {
            win_off.push(win.len() as u32);
            b.sort_unstable();
            let start = win.len();
            for &(s, e) in b.iter() {
                match win[start..].last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => win.push((s, e)),
                }
            }
        }
        win_off.push(win.len() as u32);

        let mut p = Problem {
            n: 0,
            m: inst.machines,
            jprev: Vec::new(),
            jnext: Vec::new(),
            job_of: Vec::new(),
            origin: Vec::new(),
            job_last: Vec::with_capacity(inst.jobs.len()),
            release: Vec::new(),
            elig_off: vec![0],
            elig_m: Vec::new(),
            elig_d: Vec::new(),
            min_d: Vec::new(),
            has_windows: !win.is_empty(),
            win_off,
            win,
            flexible: false,
            objective,
            due: Vec::with_capacity(inst.jobs.len()),
            weight: Vec::with_capacity(inst.jobs.len()),
            fixed_end,
            fixed_place,
            fixed_tardiness: 0.0,
        };
        for (j, job) in inst.jobs.iter().enumerate() {
            p.due.push(job.due.unwrap_or(i64::MAX));
            p.weight
                .push(if job.due.is_some() { job.weight } else { 0.0 });
            let mut rel = job.release;
            let mut prev = NONE;
            for (k, op) in job.operations.iter().enumerate() {
                if let Some(fp) = p.fixed_place[j][k] {
                    rel = rel.max(fp.end);
                    continue;
                }
                let id = p.origin.len() as u32;
                p.origin.push((j as u32, k as u32));
                p.job_of.push(j as u32);
                p.jprev.push(prev);
                p.jnext.push(NONE);
                if prev != NONE {
                    p.jnext[prev as usize] = id;
                }
                p.release
                    .push(if prev == NONE { rel } else { i64::MIN / 4 });
                let mut md = i64::MAX;
                for &(m, d) in &op.eligible {
                    p.elig_m.push(m as u32);
                    p.elig_d.push(d);
                    md = md.min(d);
                }
                p.flexible |= op.eligible.len() > 1;
                p.min_d.push(md);
                p.elig_off.push(p.elig_m.len() as u32);
                prev = id;
            }
            p.job_last.push(prev);
            if prev == NONE {
                if let (Some(d), Some(Some(last))) = (job.due, p.fixed_place[j].last()) {
                    p.fixed_tardiness += job.weight * (last.end - d).max(0) as f64;
                }
            }
        }
        p.n = p.origin.len();
        p
    }

    #[inline]
    pub fn eligible(&self, op: usize) -> std::ops::Range<usize> {
        self.elig_off[op] as usize..self.elig_off[op + 1] as usize
    }

    /// Duration of `op` on machine `m`, if eligible.
    #[inline]
    pub fn duration_on(&self, op: usize, m: u32) -> Option<i64> {
        self.eligible(op)
            .find(|&e| self.elig_m[e] == m)
            .map(|e| self.elig_d[e])
    }

    /// Earliest start `>= t` on machine `m` for an operation of length `d` that avoids all blocked intervals.
    #[inline]
    pub fn fit(&self, m: usize, t: i64, d: i64) -> i64 {
        if d == 0 {
            // A zero-duration operation occupies no machine time (same rule as `verify`).
            return t;
        }
        let ws = &self.win[self.win_off[m] as usize..self.win_off[m + 1] as usize];
        let mut s = t;
        // Windows ending at or before `s` cannot interfere.
        let first = ws.partition_point(|w| w.1 <= s);
        for &(a, b) in &ws[first..] {
            if a < s + d {
                s = s.max(b);
            } else {
                break;
            }
        }
        s
    }
}

/// A solution under search: machine assignment and sequences (doubly linked per machine) plus
/// derived heads (start times), tails and makespan.
#[derive(Clone)]
pub(crate) struct State {
    pub mach: Vec<u32>,
    pub dur: Vec<i64>,
    pub mprev: Vec<u32>,
    pub mnext: Vec<u32>,
    pub mfirst: Vec<u32>,
    pub mlast: Vec<u32>,
    pub r: Vec<i64>,
    pub q: Vec<i64>,
    pub topo: Vec<u32>,
    indeg: Vec<u8>,
    stack: Vec<u32>,
    pub makespan: i64,
}

/// Only the decision variables of a state, for elite copies.
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub mach: Vec<u32>,
    pub dur: Vec<i64>,
    pub mprev: Vec<u32>,
    pub mnext: Vec<u32>,
    pub mfirst: Vec<u32>,
    pub mlast: Vec<u32>,
}

impl Snapshot {
    pub fn copy_from(&mut self, s: &State) {
        self.mach.copy_from_slice(&s.mach);
        self.dur.copy_from_slice(&s.dur);
        self.mprev.copy_from_slice(&s.mprev);
        self.mnext.copy_from_slice(&s.mnext);
        self.mfirst.copy_from_slice(&s.mfirst);
        self.mlast.copy_from_slice(&s.mlast);
    }
}

impl State {
    pub fn new(p: &Problem) -> State {
        State {
            mach: vec![0; p.n],
            dur: vec![0; p.n],
            mprev: vec![NONE; p.n],
            mnext: vec![NONE; p.n],
            mfirst: vec![NONE; p.m],
            mlast: vec![NONE; p.m],
            r: vec![0; p.n],
            q: vec![0; p.n],
            topo: Vec::with_capacity(p.n),
            indeg: vec![0; p.n],
            stack: Vec::with_capacity(p.n),
            makespan: 0,
        }
    }

    /// Builds a state from per-machine operation lists (each in processing order).
    pub fn from_sequences(p: &Problem, seqs: &[Vec<u32>]) -> State {
        let mut s = State::new(p);
        for (m, seq) in seqs.iter().enumerate() {
            let mut prev = NONE;
            for &op in seq {
                let o = op as usize;
                s.mach[o] = m as u32;
                s.dur[o] = p.duration_on(o, m as u32).unwrap_or(0);
                s.mprev[o] = prev;
                if prev == NONE {
                    s.mfirst[m] = op;
                } else {
                    s.mnext[prev as usize] = op;
                }
                prev = op;
            }
            s.mlast[m] = prev;
        }
        s
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            mach: self.mach.clone(),
            dur: self.dur.clone(),
            mprev: self.mprev.clone(),
            mnext: self.mnext.clone(),
            mfirst: self.mfirst.clone(),
            mlast: self.mlast.clone(),
        }
    }

    pub fn restore(&mut self, s: &Snapshot) {
        self.mach.copy_from_slice(&s.mach);
        self.dur.copy_from_slice(&s.dur);
        self.mprev.copy_from_slice(&s.mprev);
        self.mnext.copy_from_slice(&s.mnext);
        self.mfirst.copy_from_slice(&s.mfirst);
        self.mlast.copy_from_slice(&s.mlast);
    }

    /// Moves `op` to machine `m`, directly after `after` (`NONE` = first on `m`). Returns the
    /// previous `(machine, predecessor)` so the caller can undo with another relocate.
    #[inline]
    pub fn relocate(&mut self, p: &Problem, op: u32, m: u32, after: u32) -> (u32, u32) {
        let o = op as usize;
        let old_m = self.mach[o];
        let old_prev = self.mprev[o];
        let next = self.mnext[o];
        // Unlink.
        if old_prev == NONE {
            self.mfirst[old_m as usize] = next;
        } else {
            self.mnext[old_prev as usize] = next;
        }
        if next == NONE {
            self.mlast[old_m as usize] = old_prev;
        } else {
            self.mprev[next as usize] = old_prev;
        }
        // Link after `after` on `m`.
        let nn = if after == NONE {
            self.mfirst[m as usize]
        } else {
            self.mnext[after as usize]
        };
        self.mprev[o] = after;
        self.mnext[o] = nn;
        if after == NONE {
            self.mfirst[m as usize] = op;
        } else {
            self.mnext[after as usize] = op;
        }
        if nn == NONE {
            self.mlast[m as usize] = op;
        } else {
            self.mprev[nn as usize] = op;
        }
        if old_m != m {
            self.mach[o] = m;
            self.dur[o] = p.duration_on(o, m).unwrap_or(self.dur[o]);
        }
        (old_m, old_prev)
    }

    /// Recomputes heads (exact, with windows and releases), tails (without windows: an estimate
    /// when windows exist) and the makespan. Returns false when the sequences contain a cycle.
    pub fn evaluate(&mut self, p: &Problem) -> bool {
        let n = p.n;
        self.topo.clear();
        self.stack.clear();
        for i in 0..n {
            let d = u8::from(p.jprev[i] != NONE) + u8::from(self.mprev[i] != NONE);
            self.indeg[i] = d;
            if d == 0 {
                self.stack.push(i as u32);
            }
        }
        let mut mk = p.fixed_end;
        while let Some(x) = self.stack.pop() {
            let xi = x as usize;
            let mut est = p.release[xi];
            let jp = p.jprev[xi];
            if jp != NONE {
                est = est.max(self.r[jp as usize] + self.dur[jp as usize]);
            }
            let mp = self.mprev[xi];
            if mp != NONE {
                est = est.max(self.r[mp as usize] + self.dur[mp as usize]);
            }
            if p.has_windows {
                est = p.fit(self.mach[xi] as usize, est, self.dur[xi]);
            }
            self.r[xi] = est;
            mk = mk.max(est + self.dur[xi]);
            self.topo.push(x);
            let jn = p.jnext[xi];
            if jn != NONE {
                let k = jn as usize;
                self.indeg[k] -= 1;
                if self.indeg[k] == 0 {
                    self.stack.push(jn);
                }
            }
            let mn = self.mnext[xi];
            if mn != NONE {
                let k = mn as usize;
                self.indeg[k] -= 1;
                if self.indeg[k] == 0 {
                    self.stack.push(mn);
                }
            }
        }
        if self.topo.len() != n {
            return false;
        }
        for i in (0..n).rev() {
            let xi = self.topo[i] as usize;
            let mut t = 0;
            let jn = p.jnext[xi];
            if jn != NONE {
                t = self.q[jn as usize] + self.dur[jn as usize];
            }
            let mn = self.mnext[xi];
            if mn != NONE {
                t = t.max(self.q[mn as usize] + self.dur[mn as usize]);
            }
            self.q[xi] = t;
        }
        self.makespan = mk;
        true
    }

    /// Weighted tardiness of the current heads (valid after `evaluate`).
    pub fn tardiness(&self, p: &Problem) -> f64 {
        let mut t = p.fixed_tardiness;
        for (j, &last) in p.job_last.iter().enumerate() {
            if last != NONE && p.weight[j] > 0.0 {
                let c = self.r[last as usize] + self.dur[last as usize];
                if c > p.due[j] {
                    t += p.weight[j] * (c - p.due[j]) as f64;
                }
            }
        }
        t
    }

    /// Value of the objective (valid after `evaluate`).
    pub fn objective(&self, p: &Problem) -> f64 {
        match p.objective {
            Objective::Makespan => self.makespan as f64,
            Objective::WeightedTardiness => self.tardiness(p),
        }
    }

    /// Traces a critical path backwards from `end_op` into `path` (in processing order). Where both
    /// predecessors are tight, `pick_machine` chooses the machine predecessor.
    pub fn critical_path_from(
        &self,
        p: &Problem,
        end_op: u32,
        path: &mut Vec<u32>,
        mut pick_machine: impl FnMut() -> bool,
    ) {
        path.clear();
        let mut x = end_op;
        loop {
            path.push(x);
            let xi = x as usize;
            let r = self.r[xi];
            let jp = p.jprev[xi];
            let mp = self.mprev[xi];
            let jt = jp != NONE && self.r[jp as usize] + self.dur[jp as usize] == r;
            let mt = mp != NONE && self.r[mp as usize] + self.dur[mp as usize] == r;
            x = match (jt, mt) {
                (true, true) => {
                    if pick_machine() {
                        mp
                    } else {
                        jp
                    }
                }
                (true, false) => jp,
                (false, true) => mp,
                (false, false) => break,
            };
        }
        path.reverse();
    }

    /// Converts the state (after `evaluate`) into a plan, including fixed operations.
    pub fn to_schedule(&self, p: &Problem) -> Schedule {
        let mut jobs: Vec<Vec<ScheduledOp>> = p
            .fixed_place
            .iter()
            .map(|ops| {
                ops.iter()
                    .map(|o| {
                        o.unwrap_or(ScheduledOp {
                            machine: 0,
                            start: 0,
                            end: 0,
                        })
                    })
                    .collect()
            })
            .collect();
        for i in 0..p.n {
            let (j, k) = p.origin[i];
            jobs[j as usize][k as usize] = ScheduledOp {
                machine: self.mach[i] as usize,
                start: self.r[i],
                end: self.r[i] + self.dur[i],
            };
        }
        Schedule { jobs }
    }
}
