//! One search thread: tabu search over the disjunctive graph. Makespan uses the N7 insertion
//! neighbourhood on critical blocks (Zhang et al. 2007) with Balas–Vazacopoulos head/tail move
//! estimates plus machine reassignment of critical operations; weighted tardiness uses exact
//! evaluation of swaps on the critical paths of tardy jobs. The search is a sequence of walks;
//! each walk's best joins a per-thread elite pool, and the next walk starts from a fresh
//! randomised dispatching plan until the pool is full, then from the best point of a relinking
//! path between two random pool members (Peng, Lü & Cheng 2015), or a perturbed elite when
//! machines are flexible.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::construct::{self, Rule};
use crate::graph::{Problem, Snapshot, State, NONE};
use crate::model::Objective;

const FWD: u8 = 0;
const BWD: u8 = 1;
const REASSIGN: u8 = 2;

/// Elite solutions kept per thread (ta11-ta20 at a fixed budget: 12 was best of 4, 8, 12, 16,
/// though 8 and 12 are within seed noise of each other).
const POOL: usize = 12;
/// A relinking path is cut between these fractions of the distance to the guiding solution;
/// its best solution there starts the next walk (0.2-0.4 beat 0.1-0.3, 0.3-0.6 and 0.4-0.7).
const RELINK_FROM: f64 = 0.2;
const RELINK_TO: f64 = 0.4;

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

/// A solution kept in a thread's elite pool.
struct Elite {
    snap: Snapshot,
    val: f64,
    mk: i64,
}

pub(crate) struct Worker<'a> {
    p: &'a Problem,
    pub st: State,
    /// Best solution this thread has seen (its own or adopted).
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
    /// Best solution of the current tabu walk (since the last restart) and its value.
    cur: Snapshot,
    cur_val: f64,
    cur_mk: i64,
    since_improve: u64,
    stall_limit: u64,
    /// Walk bests, the worst dropped when full: restarts relink two of them.
    pool: Vec<Elite>,
    /// Scratch: best intermediate solution of a relinking path.
    mid: Snapshot,
    /// Scratch: position of each operation in the guiding solution's machine sequence.
    rank: Vec<u32>,
    pairs: Vec<(u32, u32)>,
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
            cur: st.snapshot(),
            cur_val: best_val,
            cur_mk: st.makespan,
            mid: st.snapshot(),
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
            pool: Vec::with_capacity(POOL),
            rank: vec![0; n],
            pairs: Vec::with_capacity(n),
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

    /// Takes another thread's better solution: it becomes this thread's best and joins the pool.
    pub fn adopt(&mut self, snap: &Snapshot, val: f64, mk: i64, at: Option<Instant>) {
        self.best.clone_from(snap);
        self.best_val = val;
        self.best_mk = mk;
        self.best_at = at;
        pool_insert(&mut self.pool, self.p, &mut self.rank, snap, val, mk);
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
        if self.note_current() {
            self.since_improve = 0;
        } else {
            self.since_improve += 1;
        }
        if !moved || self.since_improve > self.stall_limit {
            self.restart();
        }
    }

    /// Records the current state as the walk's best (and the thread's best) when it improves on
    /// them; returns true when it improved the walk's best.
    fn note_current(&mut self) -> bool {
        let val = self.st.objective(self.p);
        let mk = self.st.makespan;
        if (val, mk) >= (self.cur_val, self.cur_mk) {
            return false;
        }
        self.cur.copy_from(&self.st);
        self.cur_val = val;
        self.cur_mk = mk;
        if (val, mk) < (self.best_val, self.best_mk) {
            self.best.copy_from(&self.st);
            self.best_val = val;
            self.best_mk = mk;
            self.best_at = Some(Instant::now());
            self.stats.improvements += 1;
        }
        true
    }

    /// Ends a tabu walk: its best joins the pool. The next walk starts from a fresh randomised
    /// dispatching plan while the pool fills, then between two elite solutions (path
    /// relinking) or, for flexible problems, from a perturbed elite.
    fn restart(&mut self) {
        self.stats.restarts += 1;
        pool_insert(
            &mut self.pool,
            self.p,
            &mut self.rank,
            &self.cur,
            self.cur_val,
            self.cur_mk,
        );
        if self.pool.len() < POOL {
            self.st = construct::build(self.p, Rule::NoisyMwkr, &mut self.rng);
        } else if self.p.flexible || !self.relink() {
            let i = self.rng.gen_range(0..self.pool.len());
            self.st.restore(&self.pool[i].snap);
            self.st.evaluate(self.p);
            self.kick();
        }
        // Expire every tabu entry by jumping the iteration counter past the longest tenure.
        self.iter = self.iter.saturating_add(self.tenure_hi + 1);
        self.cur_val = f64::INFINITY;
        self.cur_mk = i64::MAX;
        self.note_current();
        self.since_improve = 0;
    }

    /// A few random critical moves.
    fn kick(&mut self) {
        let kicks = self.rng.gen_range(2..=6);
        for _ in 0..kicks {
            self.critical_path_random();
            self.moves.clear();
            self.gen_makespan_moves();
            if self.moves.is_empty() {
                break;
            }
            let mv = self.moves[self.rng.gen_range(0..self.moves.len())];
            // A move that would close a cycle is simply not made.
            let _ = self
                .st
                .relocate_eval(self.p, mv.op, self.st_machine_of(&mv), mv.after);
        }
    }

    /// Path relinking between two random pool members: adjacent swaps move the initiating
    /// solution toward the guiding one, and the best solution on the middle part of the path
    /// becomes the current state. Returns false when the two are (almost) identical.
    fn relink(&mut self) -> bool {
        let a = self.rng.gen_range(0..self.pool.len());
        let mut b = self.rng.gen_range(0..self.pool.len() - 1);
        if b >= a {
            b += 1;
        }
        let d = distance(
            self.p,
            &self.pool[a].snap,
            &self.pool[b].snap,
            &mut self.rank,
        );
        if d < 4 {
            return false;
        }
        // `distance` left the guiding solution's ranks in `rank`.
        self.st.restore(&self.pool[a].snap);
        self.st.evaluate(self.p);
        let lo = (d as f64 * RELINK_FROM) as u64;
        let hi = ((d as f64 * RELINK_TO) as u64).max(lo + 1);
        let mut best = (f64::INFINITY, i64::MAX);
        for step in 1..=hi {
            self.pairs.clear();
            for m in 0..self.p.m {
                let mut x = self.st.mfirst[m];
                while x != NONE {
                    let y = self.st.mnext[x as usize];
                    if y != NONE && self.rank[y as usize] < self.rank[x as usize] {
                        self.pairs.push((x, y));
                    }
                    x = y;
                }
            }
            let mut swapped = false;
            while !self.pairs.is_empty() {
                let i = self.rng.gen_range(0..self.pairs.len());
                let (x, y) = self.pairs.swap_remove(i);
                let m = self.st.mach[x as usize];
                if self.st.relocate_eval(self.p, x, m, y).is_some() {
                    swapped = true;
                    break;
                }
            }
            if !swapped {
                break;
            }
            if step >= lo {
                let v = (self.st.objective(self.p), self.st.makespan);
                if v < best {
                    best = v;
                    self.mid.copy_from(&self.st);
                }
            }
        }
        if best.0 == f64::INFINITY {
            return false;
        }
        self.st.restore(&self.mid);
        self.st.evaluate(self.p);
        true
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
        // Every operation ends no later than its job successor, so some job's last one ends last.
        for &l in &self.p.job_last {
            if l != NONE && self.st.r[l as usize] + self.st.dur[l as usize] == self.st.makespan {
                cnt += 1;
                if self.rng.gen_range(0..cnt) == 0 {
                    end = l;
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
        if self.st.relocate_eval(self.p, mv.op, m, mv.after).is_some() {
            return true;
        }
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
        // Aspiration by the walk's best: each walk intensifies around its own region.
        let aspiration = self.cur_mk;
        // Selection instead of a full sort: usually one of the first few moves is taken.
        for i in 0..self.moves.len() {
            let mut b = i;
            for j in i + 1..self.moves.len() {
                if (self.moves[j].est, self.moves[j].key) < (self.moves[b].est, self.moves[b].key) {
                    b = j;
                }
            }
            self.moves.swap(i, b);
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
            let (f, mk) = match self.st.relocate_eval(self.p, mv.op, m, mv.after) {
                Some((om, oprev)) => {
                    let v = (self.st.tardiness(self.p), self.st.makespan);
                    // Undoing an acyclic move cannot close a cycle.
                    let _ = self.st.relocate_eval(self.p, mv.op, om, oprev);
                    v
                }
                None => (f64::INFINITY, i64::MAX),
            };
            self.moves[i].est_f = f;
            self.moves[i].est = mk;
        }
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

/// Adds a solution to the pool unless an identical one is there; a full pool drops its worst
/// member when the newcomer is better.
fn pool_insert(
    pool: &mut Vec<Elite>,
    p: &Problem,
    rank: &mut [u32],
    snap: &Snapshot,
    val: f64,
    mk: i64,
) {
    if pool
        .iter()
        .any(|e| e.val == val && e.mk == mk && distance(p, &e.snap, snap, rank) == 0)
    {
        return;
    }
    let entry = Elite {
        snap: snap.clone(),
        val,
        mk,
    };
    if pool.len() < POOL {
        pool.push(entry);
        return;
    }
    let mut worst = 0;
    for (i, e) in pool.iter().enumerate() {
        if (e.val, e.mk) > (pool[worst].val, pool[worst].mk) {
            worst = i;
        }
    }
    if (val, mk) < (pool[worst].val, pool[worst].mk) {
        pool[worst] = entry;
    }
}

/// Number of operation pairs sequenced differently in `a` and `b` (plus one per operation on a
/// different machine). Leaves each operation's position in `b`'s machine sequence in `rank`.
fn distance(p: &Problem, a: &Snapshot, b: &Snapshot, rank: &mut [u32]) -> u64 {
    for m in 0..p.m {
        let mut x = b.mfirst[m];
        let mut k = 0;
        while x != NONE {
            rank[x as usize] = k;
            k += 1;
            x = b.mnext[x as usize];
        }
    }
    let mut d = 0;
    for m in 0..p.m {
        let mut x = a.mfirst[m];
        while x != NONE {
            let xi = x as usize;
            if b.mach[xi] != a.mach[xi] {
                d += 1;
            } else {
                let mut y = a.mnext[xi];
                while y != NONE {
                    let yi = y as usize;
                    if b.mach[yi] == a.mach[yi] && rank[yi] < rank[xi] {
                        d += 1;
                    }
                    y = a.mnext[yi];
                }
            }
            x = a.mnext[xi];
        }
    }
    d
}
