//! Disjunctive-graph representation used by the search: the flattened static problem and the per-thread
//! mutable state (machine sequences as linked lists, heads, tails, critical path).

use crate::model::{Instance, Objective, Schedule, ScheduledOp};

pub(crate) const NONE: u32 = u32::MAX;

/// The instance flattened for the search. Fixed operations are removed: they become machine
/// unavailability for everyone else and a release time for the rest of their job.
#[derive(Clone)]
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

    /// Per free operation: the minimum work from it to the end of its job (itself included) and
    /// the number of operations left (itself included). A job's operations are numbered in order.
    pub fn remaining(&self) -> (Vec<i64>, Vec<u32>) {
        let mut rem_work = vec![0i64; self.n];
        let mut rem_ops = vec![0u32; self.n];
        for i in (0..self.n).rev() {
            let nx = self.jnext[i];
            let (w, c) = if nx == NONE {
                (0, 0)
            } else {
                (rem_work[nx as usize], rem_ops[nx as usize])
            };
            rem_work[i] = w + self.min_d[i];
            rem_ops[i] = c + 1;
        }
        (rem_work, rem_ops)
    }

    /// The eligible machine on which `op` completes first, given when its job and each machine
    /// are ready: `(machine, start, completion)`; `(0, i64::MAX, i64::MAX)` when none is eligible.
    #[inline]
    pub fn earliest_completion(
        &self,
        op: usize,
        job_ready: i64,
        mach_ready: &[i64],
    ) -> (u32, i64, i64) {
        let mut b = (0u32, i64::MAX, i64::MAX);
        for e in self.eligible(op) {
            let m = self.elig_m[e];
            let d = self.elig_d[e];
            let s = self.fit(m as usize, job_ready.max(mach_ready[m as usize]), d);
            if s + d < b.2 {
                b = (m, s, s + d);
            }
        }
        b
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
    /// Index of each operation in `topo`.
    pos: Vec<u32>,
    indeg: Vec<u8>,
    stack: Vec<u32>,
    /// Scratch for incremental updates: visit stamps, affected sets, pending recomputations.
    stamp: Vec<u32>,
    stamp_now: u32,
    fwd: Vec<u32>,
    bwd: Vec<u32>,
    slots: Vec<u32>,
    dirty: Vec<bool>,
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
            pos: vec![0; p.n],
            indeg: vec![0; p.n],
            stack: Vec::with_capacity(p.n),
            stamp: vec![0; p.n],
            stamp_now: 0,
            fwd: Vec::with_capacity(p.n),
            bwd: Vec::with_capacity(p.n),
            slots: Vec::with_capacity(p.n),
            dirty: vec![false; p.n],
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
            let est = self.head(p, xi);
            self.pos[xi] = self.topo.len() as u32;
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
            self.q[xi] = self.tail(p, xi);
        }
        self.makespan = mk;
        true
    }

    /// Earliest start of `x` from its current predecessors (exact, with windows and release).
    #[inline]
    fn head(&self, p: &Problem, x: usize) -> i64 {
        let mut est = p.release[x];
        let jp = p.jprev[x];
        if jp != NONE {
            est = est.max(self.r[jp as usize] + self.dur[jp as usize]);
        }
        let mp = self.mprev[x];
        if mp != NONE {
            est = est.max(self.r[mp as usize] + self.dur[mp as usize]);
        }
        if p.has_windows {
            est = p.fit(self.mach[x] as usize, est, self.dur[x]);
        }
        est
    }

    /// Longest path after `x` from its current successors (windows ignored).
    #[inline]
    fn tail(&self, p: &Problem, x: usize) -> i64 {
        let mut t = 0;
        let jn = p.jnext[x];
        if jn != NONE {
            t = self.q[jn as usize] + self.dur[jn as usize];
        }
        let mn = self.mnext[x];
        if mn != NONE {
            t = t.max(self.q[mn as usize] + self.dur[mn as usize]);
        }
        t
    }

    /// `relocate` on an evaluated state, then brings heads, tails, makespan and the topological
    /// order up to date by touching only what the move can affect. Returns the undo information
    /// of `relocate`, or `None` (state unchanged) when the move would close a cycle.
    pub fn relocate_eval(
        &mut self,
        p: &Problem,
        op: u32,
        m: u32,
        after: u32,
    ) -> Option<(u32, u32)> {
        let o = op as usize;
        let old_next = self.mnext[o];
        let old_dur = self.dur[o];
        let (om, oprev) = self.relocate(p, op, m, after);
        let nn = self.mnext[o];
        // The new arcs are after -> op and op -> nn; at most one of them can contradict the order
        // (after and nn were adjacent, so after precedes nn).
        let ordered = if after != NONE && self.pos[after as usize] > self.pos[o] {
            self.reorder(p, after, op)
        } else if nn != NONE && self.pos[o] > self.pos[nn as usize] {
            self.reorder(p, op, nn)
        } else {
            true
        };
        if !ordered {
            self.relocate(p, op, om, oprev);
            return None;
        }
        let dur_changed = self.dur[o] != old_dur;
        let jn = if dur_changed { p.jnext[o] } else { NONE };
        let jp = if dur_changed { p.jprev[o] } else { NONE };
        self.propagate_heads(p, [op, old_next, nn, jn]);
        self.propagate_tails(p, [op, oprev, after, jp]);
        let mut mk = p.fixed_end;
        for &l in &p.job_last {
            if l != NONE {
                mk = mk.max(self.r[l as usize] + self.dur[l as usize]);
            }
        }
        self.makespan = mk;
        Some((om, oprev))
    }

    /// Pearce–Kelly order repair for a new arc `x -> y` with `y` before `x` in `topo`: the
    /// operations reachable from `y` and those reaching `x`, both inside that index range, swap
    /// places. Returns false (order untouched) when `y` reaches `x`, i.e. the arc closes a cycle.
    fn reorder(&mut self, p: &Problem, x: u32, y: u32) -> bool {
        let (lb, ub) = (self.pos[y as usize], self.pos[x as usize]);
        self.stamp_now = self.stamp_now.wrapping_add(1);
        if self.stamp_now == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.stamp_now = 1;
        }
        let now = self.stamp_now;
        self.fwd.clear();
        self.stack.clear();
        self.stamp[y as usize] = now;
        self.stack.push(y);
        while let Some(w) = self.stack.pop() {
            self.fwd.push(w);
            for s in [p.jnext[w as usize], self.mnext[w as usize]] {
                if s == NONE {
                    continue;
                }
                let ps = self.pos[s as usize];
                if ps == ub {
                    return false;
                }
                if ps < ub && self.stamp[s as usize] != now {
                    self.stamp[s as usize] = now;
                    self.stack.push(s);
                }
            }
        }
        self.bwd.clear();
        self.stamp[x as usize] = now;
        self.stack.push(x);
        while let Some(w) = self.stack.pop() {
            self.bwd.push(w);
            for s in [p.jprev[w as usize], self.mprev[w as usize]] {
                if s != NONE && self.pos[s as usize] > lb && self.stamp[s as usize] != now {
                    self.stamp[s as usize] = now;
                    self.stack.push(s);
                }
            }
        }
        let pos = &mut self.pos;
        self.fwd.sort_unstable_by_key(|&w| pos[w as usize]);
        self.bwd.sort_unstable_by_key(|&w| pos[w as usize]);
        self.slots.clear();
        self.slots
            .extend(self.bwd.iter().chain(&self.fwd).map(|&w| pos[w as usize]));
        self.slots.sort_unstable();
        for (&w, &s) in self.bwd.iter().chain(&self.fwd).zip(&self.slots) {
            pos[w as usize] = s;
            self.topo[s as usize] = w;
        }
        true
    }

    /// Recomputes heads from `seeds` forward in topological order, only where a head changed.
    fn propagate_heads(&mut self, p: &Problem, seeds: [u32; 4]) {
        let mut pending = 0usize;
        let mut i = usize::MAX;
        for s in seeds {
            if s != NONE && !self.dirty[s as usize] {
                self.dirty[s as usize] = true;
                pending += 1;
                i = i.min(self.pos[s as usize] as usize);
            }
        }
        while pending > 0 {
            let x = self.topo[i] as usize;
            i += 1;
            if !self.dirty[x] {
                continue;
            }
            self.dirty[x] = false;
            pending -= 1;
            let r = self.head(p, x);
            if r != self.r[x] {
                self.r[x] = r;
                for s in [p.jnext[x], self.mnext[x]] {
                    if s != NONE && !self.dirty[s as usize] {
                        self.dirty[s as usize] = true;
                        pending += 1;
                    }
                }
            }
        }
    }

    /// Recomputes tails from `seeds` backward in topological order, only where a tail changed.
    fn propagate_tails(&mut self, p: &Problem, seeds: [u32; 4]) {
        let mut pending = 0usize;
        let mut i = 0;
        for s in seeds {
            if s != NONE && !self.dirty[s as usize] {
                self.dirty[s as usize] = true;
                pending += 1;
                i = i.max(self.pos[s as usize] as usize);
            }
        }
        while pending > 0 {
            let x = self.topo[i] as usize;
            i = i.wrapping_sub(1);
            if !self.dirty[x] {
                continue;
            }
            self.dirty[x] = false;
            pending -= 1;
            let q = self.tail(p, x);
            if q != self.q[x] {
                self.q[x] = q;
                for s in [p.jprev[x], self.mprev[x]] {
                    if s != NONE && !self.dirty[s as usize] {
                        self.dirty[s as usize] = true;
                        pending += 1;
                    }
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::{Problem, NONE};
    use crate::construct::{build, Rule};
    use crate::model::{FixedOperation, Instance, Job, Objective, Operation, Unavailability};

    /// Flexible instance with releases, windows and a fixed first operation.
    fn instance(rng: &mut ChaCha8Rng) -> Instance {
        let m = 4;
        let mut jobs = Vec::new();
        for j in 0..6 {
            let mut operations = Vec::new();
            for _ in 0..4 {
                let mut eligible = vec![(rng.gen_range(0..m), rng.gen_range(1..9))];
                for mc in 0..m {
                    if mc != eligible[0].0 && rng.gen_bool(0.4) {
                        eligible.push((mc, rng.gen_range(0..9)));
                    }
                }
                operations.push(Operation { eligible });
            }
            jobs.push(Job {
                id: format!("J{j}"),
                operations,
                release: rng.gen_range(0..10),
                due: None,
                weight: 1.0,
            });
        }
        let machine = jobs[0].operations[0].eligible[0].0;
        Instance {
            machines: m,
            jobs,
            unavailability: vec![Unavailability {
                machine: 1,
                start: 12,
                end: 20,
            }],
            fixed: vec![FixedOperation {
                job: 0,
                op: 0,
                machine,
                start: 30,
            }],
        }
    }

    /// The incremental update after a move agrees with a full evaluation, and refuses exactly
    /// the moves that close a cycle.
    #[test]
    fn relocate_eval_matches_full_evaluation() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..20 {
            let inst = instance(&mut rng);
            let p = Problem::new(&inst, Objective::Makespan);
            let mut st = build(&p, Rule::Mwkr, &mut rng);
            for _ in 0..500 {
                let x = rng.gen_range(0..p.n) as u32;
                let e = p.eligible(x as usize);
                let m = p.elig_m[rng.gen_range(e)];
                let mut on_m = vec![NONE];
                let mut y = st.mfirst[m as usize];
                while y != NONE {
                    if y != x {
                        on_m.push(y);
                    }
                    y = st.mnext[y as usize];
                }
                let after = on_m[rng.gen_range(0..on_m.len())];
                let mut full = st.clone();
                full.relocate(&p, x, m, after);
                let acyclic = full.evaluate(&p);
                let before = st.mnext.clone();
                match st.relocate_eval(&p, x, m, after) {
                    Some(_) => {
                        assert!(acyclic);
                        assert_eq!(st.r, full.r);
                        assert_eq!(st.q, full.q);
                        assert_eq!(st.makespan, full.makespan);
                    }
                    None => {
                        assert!(!acyclic);
                        assert_eq!(st.mnext, before);
                    }
                }
            }
        }
    }
}
