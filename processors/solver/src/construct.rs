//! Constructive start: Giffler–Thompson active schedules driven by dispatching rules (MWKR, SPT, MOR, EDD, random).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::graph::{Problem, State, NONE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Most work remaining.
    Mwkr,
    /// Shortest processing time.
    Spt,
    /// Most operations remaining.
    Mor,
    /// Earliest due date (then most work remaining).
    Edd,
    /// Most work remaining, perturbed by noise (diversifies restarts).
    NoisyMwkr,
}

pub(crate) const RULES: [Rule; 4] = [Rule::Mwkr, Rule::Spt, Rule::Mor, Rule::Edd];

/// Builds an active schedule with the given rule and returns it evaluated.
pub(crate) fn build(p: &Problem, rule: Rule, rng: &mut ChaCha8Rng) -> State {
    let n = p.n;
    let (rem_work, rem_ops) = p.remaining();
    let mut next: Vec<u32> = (0..n as u32)
        .filter(|&i| p.jprev[i as usize] == NONE)
        .collect();
    let mut job_ready: Vec<i64> = next.iter().map(|&i| p.release[i as usize]).collect();
    let mut mach_ready = vec![i64::MIN / 4; p.m];
    let mut seqs: Vec<Vec<u32>> = vec![Vec::new(); p.m];
    // Per candidate: best machine, its start and completion.
    let mut best: Vec<(u32, i64, i64)> = vec![(0, 0, 0); next.len()];
    let noise: Vec<f64> = (0..n).map(|_| rng.gen_range(0.7..1.3)).collect();
    for _ in 0..n {
        let mut cmin = i64::MAX;
        let mut mstar = 0u32;
        for (slot, &x) in next.iter().enumerate() {
            if x == NONE {
                continue;
            }
            let b = p.earliest_completion(x as usize, job_ready[slot], &mach_ready);
            best[slot] = b;
            if b.2 < cmin {
                cmin = b.2;
                mstar = b.0;
            }
        }
        if cmin == i64::MAX {
            break;
        }
        // Conflict set: candidates whose best machine is m* and that could start before c*.
        let mut pick = usize::MAX;
        let mut pick_score = f64::NEG_INFINITY;
        for (slot, &x) in next.iter().enumerate() {
            if x == NONE || best[slot].0 != mstar || best[slot].1 >= cmin && best[slot].2 != cmin {
                continue;
            }
            let xi = x as usize;
            let score = match rule {
                Rule::Mwkr => rem_work[xi] as f64,
                Rule::Spt => -((best[slot].2 - best[slot].1) as f64),
                Rule::Mor => rem_ops[xi] as f64 + rem_work[xi] as f64 * 1e-9,
                Rule::Edd => -(p.due[p.job_of[xi] as usize] as f64) + rem_work[xi] as f64 * 1e-9,
                Rule::NoisyMwkr => rem_work[xi] as f64 * noise[xi],
            };
            if score > pick_score {
                pick_score = score;
                pick = slot;
            }
        }
        if pick == usize::MAX {
            break;
        }
        let x = next[pick];
        let (m, _s, c) = best[pick];
        seqs[m as usize].push(x);
        mach_ready[m as usize] = c;
        job_ready[pick] = c;
        next[pick] = p.jnext[x as usize];
    }
    let mut st = State::from_sequences(p, &seqs);
    // Sequences built in time order on each machine are acyclic; evaluate fills heads and tails.
    let ok = st.evaluate(p);
    debug_assert!(ok);
    st
}
