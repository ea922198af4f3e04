//! One search thread: tabu search over the disjunctive graph. Makespan uses the N7 insertion
//! neighbourhood on critical blocks (Zhang et al. 2007) with Balas–Vazacopoulos head/tail move
//! estimates plus machine reassignment of critical operations; weighted tardiness uses exact
//! evaluation of swaps on the critical paths of tardy jobs. Restarts perturb the elite solution.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::graph::{Problem, Snapshot, State, NONE};
use crate::model::Objective;

const FWD: u8 = 0;
const BWD: u8 = 1;
const REASSIGN: u8 = 2;

#[derive(Clone, Copy, Debug)]
struct Move {
    kind: u8,
    /// The operation that is relocated.
    op: u32,
    /// FWD: the last op it jumps over; BWD: the first op it jumps in front of; REASSIGN: target machine.
    other: u32,
    /// Predecessor after the move (`NONE` = first on the machine).
    after: u32,
    /// Estimated (makespan) or exact (tardiness) value of the neighbour.
    est: i64,
    est_f: f64,
    /// Random tie-breaker, so equal moves are chosen without positional bias.
    key: u32,
}

/// Search statistics of one thread.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WorkerStats {
    pub iterations: u64,
    pub restarts: u64,
    pub improvements: u64,
    pub cycles: u64,
}

pub(crate) struct Worker<'a> {
    p: &'a Problem,
    pub st: State,
    pub best: Snapshot,
    pub best_val: f64,
    pub best_mk: i64,
    pub best_at: Option<Instant>,
    pub stats: WorkerStats,
    rng: ChaCha8Rng,
    /// Iteration until which arc `a -> b` (a before b on a machine) may not be recreated (hashed when large).
    tabu: Vec<u32>,
    tabu_cap: u64,
    /// Iteration until which operation `x` may not return to machine `m` (index `x * m_count + m`).
    tabu_m: Vec<u32>,
    iter: u32,
    tenure_lo: u32,
    tenure_hi: u32,
    since_improve: u64,
    stall_limit: u64,
    path: Vec<u32>,
    moves: Vec<Move>,
    buf: Vec<i64>,
    lb_val: f64,
}

impl<'a> Worker<'a> {
    pub fn new(p: &'a Problem, start: &State, seed: u64, lb_val: f64, n_jobs: usize) -> Worker<'a> {
        let n = p.n.max(1);
        let tabu_cap = ((n as u64) * (n as u64)).min(1 << 22);
        // Tenure range of Zhang et al.: [L, 1.5 L] with L = 10 + jobs / machines.
        let base = 10 + (n_jobs / p.m.max(1)) as u32;
        let mut st = start.clone();
        st.evaluate(p);
        let best_val = st.objective(p);
        Worker {
            p,
            best: st.snapshot(),
            best_val,
            best_mk: st.makespan,
            best_at: None,
            st,
            stats: WorkerStats::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            tabu: vec![0; tabu_cap as usize],
            tabu_cap,
            tabu_m: vec![0; n * p.m.max(1)],
            iter: 1,
            tenure_lo: base,
            tenure_hi: base + base / 2,
            since_improve: 0,
            stall_limit: (2000 + 10 * p.n) as u64,
            path: Vec::with_capacity(n),
            moves: Vec::with_capacity(4 * n),
            buf: vec![0; n + 1],
            lb_val,
        }
    }

    #[inline]
    fn arc(&self, a: u32, b: u32) -> usize {
        ((a as u64 * self.p.n as u64 + b as u64) % self.tabu_cap) as usize
    }

    /// Runs up to `iters` iterations; stops early when the deadline passes (checked every 64
    /// iterations) or the lower bound is reached. Returns true when the deadline passed.
    pub fn run(&mut self, iters: u64, deadline: Option<Instant>) -> bool {
        for k in 0..iters {
            if k % 64 == 0 {
                if let Some(d) = deadline {
                    if Instant::now() >= d {
                        return true;
                    }
                }
            }
            if self.best_val <= self.lb_val {
                return false;
            }
            self.step();
        }
        false
    }

    /// Makes `snap` the elite and restarts from it (used when another thread found better).
    pub fn adopt(&mut self, snap: &Snapshot, val: f64, mk: i64, at: Option<Instant>) {
        self.best.clone_from(snap);
        self.best_val = val;
        self.best_mk = mk;
        self.best_at = at;
        self.restart();
    }

    pub fn stalled_for(&self) -> u64 {
        self.since_improve
    }

    fn step(&mut self) {
        self.stats.iterations += 1;
        self.iter = self.iter.wrapping_add(1);
        if self.iter >= u32::MAX - 1_000_000 {
            self.tabu.iter_mut().for_each(|t| *t = 0);
            self.tabu_m.iter_mut().for_each(|t| *t = 0);
            self.iter = 1;
        }
        let moved = match self.p.objective {
            Objective::Makespan => self.step_makespan(),
            Objective::WeightedTardiness => self.step_tardiness(),
        };
        let val = self.st.objective(self.p);
        let better =
            val < self.best_val || (val == self.best_val && self.st.makespan < self.best_mk);
        if better {
            self.best.copy_from(&self.st);
            self.best_val = val;
            self.best_mk = self.st.makespan;
            self.best_at = Some(Instant::now());
            self.since_improve = 0;
            self.stats.improvements += 1;
        } else {
            self.since_improve += 1;
        }
        if !moved || self.since_improve > self.stall_limit {
            self.restart();
        }
    }

    /// Back to the elite, a few random critical moves, fresh tabu memory.
    fn restart(&mut self) {
        self.stats.restarts += 1;
        self.since_improve = 0;
        self.st.restore(&self.best);
        self.st.evaluate(self.p);
        // Expire every tabu entry by jumping the iteration counter past the longest tenure.
        self.iter = self.iter.saturating_add(self.tenure_hi + 1);
        let kicks = self.rng.gen_range(2..=6);
        for _ in 0..kicks {
            self.critical_path_random();
            self.moves.clear();
            self.gen_makespan_moves();
            if self.moves.is_empty() {
                break;
            }
            let mv = self.moves[self.rng.gen_range(0..self.moves.len())];
            let (om, op_prev) = self
                .st
                .relocate(self.p, mv.op, self.st_machine_of(&mv), mv.after);
            if !self.st.evaluate(self.p) {
                self.st.relocate(self.p, mv.op, om, op_prev);
                self.st.evaluate(self.p);
            }
        }
    }

    #[inline]
    fn st_machine_of(&self, mv: &Move) -> u32 {
        if mv.kind == REASSIGN {
            mv.other
        } else {
            self.st.mach[mv.op as usize]
        }
    }

    /// Critical path ending at a randomly chosen operation that completes at the makespan.
    fn critical_path_random(&mut self) {
        let mut end = NONE;
        let mut cnt = 0u32;
        for i in 0..self.p.n {
            if self.st.r[i] + self.st.dur[i] == self.st.makespan {
                cnt += 1;
                if self.rng.gen_range(0..cnt) == 0 {
                    end = i as u32;
                }
            }
        }
        self.path.clear();
        if end != NONE {
            let rng = &mut self.rng;
            self.st
                .critical_path_from(self.p, end, &mut self.path, || rng.gen_bool(0.5));
        }
    }

    #[inline]
    fn rj(&self, x: usize) -> i64 {
        let jp = self.p.jprev[x];
        if jp == NONE {
            self.p.release[x]
        } else {
            self.st.r[jp as usize] + self.st.dur[jp as usize]
        }
    }

    #[inline]
    fn qj(&self, x: usize) -> i64 {
        let js = self.p.jnext[x];
        if js == NONE {
            0
        } else {
            self.st.q[js as usize] + self.st.dur[js as usize]
        }
    }

    /// Estimate for moving `u` right after `v` (u before v on the same machine).
    fn est_forward(&mut self, u: u32, v: u32) -> i64 {
        let s = &self.st;
        let (ui, vi) = (u as usize, v as usize);
        let pm = s.mprev[ui];
        let mut prev_end = if pm == NONE {
            i64::MIN / 4
        } else {
            s.r[pm as usize] + s.dur[pm as usize]
        };
        let mut x = s.mnext[ui];
        let mut idx = 0;
        loop {
            let xi = x as usize;
            let r = self.rj(xi).max(prev_end);
            self.buf[idx] = r;
            prev_end = r + self.st.dur[xi];
            if x == v {
                break;
            }
            x = self.st.mnext[xi];
            idx += 1;
        }
        let s = &self.st;
        let ru = self.rj(ui).max(prev_end);
        let sm = s.mnext[vi];
        let qm = if sm == NONE {
            0
        } else {
            s.q[sm as usize] + s.dur[sm as usize]
        };
        let qu = self.qj(ui).max(qm);
        let mut est = ru + s.dur[ui] + qu;
        let mut next_tail = qu + s.dur[ui];
        let first = s.mnext[ui];
        let mut x = v;
        loop {
            let xi = x as usize;
            let q = self.qj(xi).max(next_tail);
            est = est.max(self.buf[idx] + self.st.dur[xi] + q);
            next_tail = q + self.st.dur[xi];
            if x == first {
                break;
            }
            x = self.st.mprev[xi];
            idx = idx.saturating_sub(1);
        }
        est
    }

    /// Estimate for moving `v` right before `u` (u before v on the same machine).
    fn est_backward(&mut self, u: u32, v: u32) -> i64 {
        let (ui, vi) = (u as usize, v as usize);
        let pm = self.st.mprev[ui];
        let rm = if pm == NONE {
            i64::MIN / 4
        } else {
            self.st.r[pm as usize] + self.st.dur[pm as usize]
        };
        let rv = self.rj(vi).max(rm);
        let mut prev_end = rv + self.st.dur[vi];
        let mut x = u;
        let mut idx = 0;
        loop {
            let xi = x as usize;
            let r = self.rj(xi).max(prev_end);
            self.buf[idx] = r;
            prev_end = r + self.st.dur[xi];
            let nx = self.st.mnext[xi];
            if nx == v {
                break;
            }
            x = nx;
            idx += 1;
        }
        let sm = self.st.mnext[vi];
        let mut next_tail = if sm == NONE {
            0
        } else {
            self.st.q[sm as usize] + self.st.dur[sm as usize]
        };
        let mut est = i64::MIN;
        loop {
            let xi = x as usize;
            let q = self.qj(xi).max(next_tail);
            est = est.max(self.buf[idx] + self.st.dur[xi] + q);
            next_tail = q + self.st.dur[xi];
            if x == u {
                break;
            }
            x = self.st.mprev[xi];
            idx = idx.saturating_sub(1);
        }
        let qv = self.qj(vi).max(next_tail);
        est.max(rv + self.st.dur[vi] + qv)
    }

    fn push_forward(&mut self, u: u32, v: u32) {
        // Balas–Vazacopoulos: acyclic when L(v, end) >= L(JS(u), end).
        let js = self.p.jnext[u as usize];
        if js != NONE {
            let (jsi, vi) = (js as usize, v as usize);
            if self.st.q[vi] + self.st.dur[vi] < self.st.q[jsi] + self.st.dur[jsi] {
                return;
            }
        }
        let est = self.est_forward(u, v);
        let key = self.rng.gen();
        self.moves.push(Move {
            kind: FWD,
            op: u,
            other: v,
            after: v,
            est,
            est_f: 0.0,
            key,
        });
    }

    fn push_backward(&mut self, u: u32, v: u32) {
        // Acyclic when L(start, u) + p(u) >= L(start, JP(v)) + p(JP(v)).
        let jp = self.p.jprev[v as usize];
        if jp != NONE {
            let (jpi, ui) = (jp as usize, u as usize);
            if self.st.r[ui] + self.st.dur[ui] < self.st.r[jpi] + self.st.dur[jpi] {
                return;
            }
        }
        let est = self.est_backward(u, v);
        let key = self.rng.gen();
        let after = self.st.mprev[u as usize];
        self.moves.push(Move {
            kind: BWD,
            op: v,
            other: u,
            after,
            est,
            est_f: 0.0,
            key,
        });
    }

    /// Best insertion of `x` on machine `k` (x currently elsewhere) among positions that cannot
    /// close a cycle, by head/tail estimate.
    fn push_reassign(&mut self, x: u32, k: u32, d: i64) {
        let xi = x as usize;
        let (jp, js) = (self.p.jprev[xi], self.p.jnext[xi]);
        let jp_start = if jp == NONE {
            i64::MIN
        } else {
            self.st.r[jp as usize]
        };
        let js_end = if js == NONE {
            i64::MAX
        } else {
            self.st.r[js as usize] + self.st.dur[js as usize]
        };
        let rjx = self.rj(xi);
        let qjx = self.qj(xi);
        let mut a = NONE;
        let mut b = self.st.mfirst[k as usize];
        let mut best = (i64::MAX, NONE);
        loop {
            let b_ok = b == NONE || self.st.r[b as usize] + self.st.dur[b as usize] > jp_start;
            let a_ok = a == NONE || self.st.r[a as usize] < js_end;
            if !a_ok {
                break;
            }
            if b_ok {
                let a_end = if a == NONE {
                    i64::MIN / 4
                } else {
                    self.st.r[a as usize] + self.st.dur[a as usize]
                };
                let mut r = rjx.max(a_end);
                if self.p.has_windows {
                    r = self.p.fit(k as usize, r, d);
                }
                let qb = if b == NONE {
                    0
                } else {
                    self.st.q[b as usize] + self.st.dur[b as usize]
                };
                let est = r + d + qjx.max(qb);
                if est < best.0 {
                    best = (est, a);
                }
            }
            if b == NONE {
                break;
            }
            a = b;
            b = self.st.mnext[b as usize];
        }
        if best.0 != i64::MAX {
            let key = self.rng.gen();
            self.moves.push(Move {
                kind: REASSIGN,
                op: x,
                other: k,
                after: best.1,
                est: best.0,
                est_f: 0.0,
                key,
            });
        }
    }

    /// N7 moves on every critical block of `self.path`, plus reassignments of critical operations.
    fn gen_makespan_moves(&mut self) {
        let mut i = 0;
        let len = self.path.len();
        while i < len {
            let mut j = i;
            while j + 1 < len && self.st.mnext[self.path[j] as usize] == self.path[j + 1] {
                j += 1;
            }
            let k = j - i + 1;
            if k >= 2 {
                let (b0, bl) = (self.path[i], self.path[j]);
                if k == 2 {
                    self.push_forward(b0, bl);
                } else {
                    for t in i + 1..=j {
                        let x = self.path[t];
                        self.push_backward(b0, x);
                    }
                    for t in i..j {
                        let x = self.path[t];
                        self.push_forward(x, bl);
                    }
                    for t in i + 1..j {
                        let x = self.path[t];
                        if t > i + 1 {
                            self.push_forward(b0, x);
                        }
                        if t < j - 1 {
                            self.push_backward(x, bl);
                        }
                    }
                }
            }
            i = j + 1;
        }
        if self.p.flexible {
            for t in 0..len {
                let x = self.path[t];
                let xi = x as usize;
                let cur = self.st.mach[xi];
                for e in self.p.eligible(xi) {
                    let m = self.p.elig_m[e];
                    if m != cur {
                        self.push_reassign(x, m, self.p.elig_d[e]);
                    }
                }
            }
        }
    }

    fn is_tabu(&self, mv: &Move) -> bool {
        let it = self.iter;
        match mv.kind {
            FWD => {
                // Creates arcs l -> u for every l jumped over.
                let mut l = self.st.mnext[mv.op as usize];
                loop {
                    if self.tabu[self.arc(l, mv.op)] > it {
                        return true;
                    }
                    if l == mv.other {
                        return false;
                    }
                    l = self.st.mnext[l as usize];
                }
            }
            BWD => {
                let mut l = mv.other;
                while l != mv.op {
                    if self.tabu[self.arc(mv.op, l)] > it {
                        return true;
                    }
                    l = self.st.mnext[l as usize];
                }
                false
            }
            _ => self.tabu_m[mv.op as usize * self.p.m + mv.other as usize] > it,
        }
    }

    fn mark_tabu(&mut self, mv: &Move) {
        let t = self.iter + self.rng.gen_range(self.tenure_lo..=self.tenure_hi);
        match mv.kind {
            FWD => {
                let mut l = self.st.mnext[mv.op as usize];
                loop {
                    let a = self.arc(mv.op, l);
                    self.tabu[a] = t;
                    if l == mv.other {
                        break;
                    }
                    l = self.st.mnext[l as usize];
                }
            }
            BWD => {
                let mut l = mv.other;
                while l != mv.op {
                    let a = self.arc(l, mv.op);
                    self.tabu[a] = t;
                    l = self.st.mnext[l as usize];
                }
            }
            _ => {
                let old = self.st.mach[mv.op as usize] as usize;
                self.tabu_m[mv.op as usize * self.p.m + old] = t;
            }
        }
    }

    /// Applies `mv` (marking tabu first); returns false (and leaves the state unchanged) on a cycle.
    fn apply(&mut self, mv: &Move) -> bool {
        let m = self.st_machine_of(mv);
        self.mark_tabu(mv);
        let (om, oprev) = self.st.relocate(self.p, mv.op, m, mv.after);
        if self.st.evaluate(self.p) {
            return true;
        }
        self.st.relocate(self.p, mv.op, om, oprev);
        self.st.evaluate(self.p);
        self.stats.cycles += 1;
        false
    }

    fn step_makespan(&mut self) -> bool {
        self.critical_path_random();
        self.moves.clear();
        self.gen_makespan_moves();
        if self.moves.is_empty() {
            return false;
        }
        self.moves.sort_unstable_by_key(|m| (m.est, m.key));
        let aspiration = self.best_mk;
        for i in 0..self.moves.len() {
            let mv = self.moves[i];
            if (mv.est < aspiration || !self.is_tabu(&mv)) && self.apply(&mv) {
                return true;
            }
        }
        // Everything tabu: take a random move so the search keeps moving.
        let mv = self.moves[self.rng.gen_range(0..self.moves.len())];
        self.apply(&mv)
    }

    /// Tardiness: candidate moves are adjacent swaps on critical blocks of tardy jobs' critical
    /// paths and reassignments of those operations, evaluated exactly.
    fn step_tardiness(&mut self) -> bool {
        self.moves.clear();
        for j in 0..self.p.job_last.len() {
            let last = self.p.job_last[j];
            if last == NONE || self.p.weight[j] <= 0.0 {
                continue;
            }
            let li = last as usize;
            if self.st.r[li] + self.st.dur[li] <= self.p.due[j] {
                continue;
            }
            let rng = &mut self.rng;
            self.st
                .critical_path_from(self.p, last, &mut self.path, || rng.gen_bool(0.5));
            for t in 0..self.path.len() {
                let x = self.path[t];
                if t + 1 < self.path.len() && self.st.mnext[x as usize] == self.path[t + 1] {
                    let v = self.path[t + 1];
                    let key = self.rng.gen();
                    self.moves.push(Move {
                        kind: FWD,
                        op: x,
                        other: v,
                        after: v,
                        est: 0,
                        est_f: 0.0,
                        key,
                    });
                }
                if self.p.flexible {
                    let xi = x as usize;
                    for e in self.p.eligible(xi) {
                        let m = self.p.elig_m[e];
                        if m != self.st.mach[xi] {
                            self.push_reassign(x, m, self.p.elig_d[e]);
                        }
                    }
                }
            }
        }
        if self.moves.is_empty() {
            return false;
        }
        // Exact evaluation of each candidate.
        for i in 0..self.moves.len() {
            let mv = self.moves[i];
            let m = self.st_machine_of(&mv);
            let (om, oprev) = self.st.relocate(self.p, mv.op, m, mv.after);
            let (f, mk) = if self.st.evaluate(self.p) {
                (self.st.tardiness(self.p), self.st.makespan)
            } else {
                (f64::INFINITY, i64::MAX)
            };
            self.st.relocate(self.p, mv.op, om, oprev);
            self.moves[i].est_f = f;
            self.moves[i].est = mk;
        }
        self.st.evaluate(self.p);
        self.moves.sort_unstable_by(|a, b| {
            a.est_f
                .total_cmp(&b.est_f)
                .then(a.est.cmp(&b.est))
                .then(a.key.cmp(&b.key))
        });
        let best = self.best_val;
        for i in 0..self.moves.len() {
            let mv = self.moves[i];
            if mv.est_f.is_finite() && (mv.est_f < best || !self.is_tabu(&mv)) && self.apply(&mv) {
                return true;
            }
        }
        let mv = self.moves[self.rng.gen_range(0..self.moves.len())];
        mv.est_f.is_finite() && self.apply(&mv)
    }
}
