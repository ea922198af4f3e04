//! Lower bounds on the makespan (job work, machine load, one-machine preemptive relaxation) and on weighted tardiness.

use std::collections::BinaryHeap;

use crate::graph::{Problem, NONE};

/// Per free operation: earliest start from its job alone (`head`) and the minimum work after it (`tail`).
fn heads_tails(p: &Problem) -> (Vec<i64>, Vec<i64>) {
    let mut head = vec![0i64; p.n];
    let mut tail = vec![0i64; p.n];
    for i in 0..p.n {
        let jp = p.jprev[i];
        head[i] = if jp == NONE {
            p.release[i]
        } else {
            head[jp as usize] + p.min_d[jp as usize]
        };
    }
    for i in (0..p.n).rev() {
        let jn = p.jnext[i];
        tail[i] = if jn == NONE {
            0
        } else {
            tail[jn as usize] + p.min_d[jn as usize]
        };
    }
    (head, tail)
}

/// Makespan lower bound, valid for every feasible plan (windows and fixed operations only delay).
pub(crate) fn makespan_lower_bound(p: &Problem) -> i64 {
    let (head, tail) = heads_tails(p);
    let mut lb = p.fixed_end;
    let mut total_min = 0i64;
    let mut min_head = i64::MAX;
    for i in 0..p.n {
        lb = lb.max(head[i] + p.min_d[i] + tail[i]);
        total_min += p.min_d[i];
        min_head = min_head.min(head[i]);
    }
    if p.n > 0 && p.m > 0 {
        // All work shared over all machines (the only load bound that holds for flexible operations).
        lb = lb.max(min_head + (total_min + p.m as i64 - 1) / p.m as i64);
    }
    // One-machine relaxation over operations that can only run on that machine.
    let mut per_machine: Vec<Vec<(i64, i64, i64)>> = vec![Vec::new(); p.m];
    for i in 0..p.n {
        let e = p.eligible(i);
        if e.len() == 1 {
            per_machine[p.elig_m[e.start] as usize].push((head[i], p.elig_d[e.start], tail[i]));
        }
    }
    for ops in &mut per_machine {
        if !ops.is_empty() {
            lb = lb.max(jackson_preemptive(ops));
        }
    }
    lb
}

/// Jackson's preemptive schedule for 1|r_j, pmtn|max(C_j + q_j): optimal for the preemptive
/// one-machine problem, hence a lower bound on the makespan. `ops` are `(head, duration, tail)`.
fn jackson_preemptive(ops: &mut [(i64, i64, i64)]) -> i64 {
    ops.sort_unstable_by_key(|o| o.0);
    // Max-heap by tail: (tail, remaining duration).
    let mut ready: BinaryHeap<(i64, i64)> = BinaryHeap::with_capacity(ops.len());
    let mut t = i64::MIN;
    let mut i = 0;
    let mut best = i64::MIN;
    while i < ops.len() || !ready.is_empty() {
        if ready.is_empty() && t < ops[i].0 {
            t = ops[i].0;
        }
        while i < ops.len() && ops[i].0 <= t {
            ready.push((ops[i].2, ops[i].1));
            i += 1;
        }
        let Some((q, rem)) = ready.pop() else {
            continue;
        };
        // Run the longest-tail job until it finishes or the next release (which may preempt it).
        let next_release = if i < ops.len() { ops[i].0 } else { i64::MAX };
        if t + rem <= next_release {
            t += rem;
            best = best.max(t + q);
        } else {
            ready.push((q, rem - (next_release - t)));
            t = next_release;
        }
    }
    best
}

/// Weighted tardiness lower bound: each job finishing as early as its own work allows.
pub(crate) fn tardiness_lower_bound(p: &Problem) -> f64 {
    let (head, _) = heads_tails(p);
    let mut lb = p.fixed_tardiness;
    for (j, &last) in p.job_last.iter().enumerate() {
        if last != NONE && p.weight[j] > 0.0 {
            let c = head[last as usize] + p.min_d[last as usize];
            lb += p.weight[j] * (c - p.due[j]).max(0) as f64;
        }
    }
    lb
}

#[cfg(test)]
mod tests {
    use super::jackson_preemptive;

    #[test]
    fn jps_matches_hand_computed_example() {
        // Job A: r=0 p=4 q=1; job B: r=1 p=2 q=10. B preempts A at 1, ends at 3 (3+10=13); A ends at 6 (7).
        let mut ops = vec![(0, 4, 1), (1, 2, 10)];
        assert_eq!(jackson_preemptive(&mut ops), 13);
        // Without tails the bound is the machine's total busy time from the first release.
        let mut ops = vec![(0, 3, 0), (0, 3, 0), (10, 1, 0)];
        assert_eq!(jackson_preemptive(&mut ops), 11);
    }
}
