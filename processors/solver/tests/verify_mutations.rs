//! `verify` against a naive pairwise checker on randomly mutated valid plans (flexible, with windows).

use std::time::Duration;

use proptest::prelude::*;
use twinline_solver::*;

fn instance() -> Instance {
    let op = |e: &[(usize, i64)]| Operation {
        eligible: e.to_vec(),
    };
    Instance {
        machines: 3,
        jobs: vec![
            Job {
                id: "a".into(),
                operations: vec![op(&[(0, 3), (1, 4)]), op(&[(2, 2)]), op(&[(1, 5)])],
                release: 0,
                due: None,
                weight: 1.0,
            },
            Job {
                id: "b".into(),
                operations: vec![op(&[(1, 2)]), op(&[(0, 4), (2, 3)]), op(&[(0, 1)])],
                release: 2,
                due: None,
                weight: 1.0,
            },
            Job {
                id: "c".into(),
                operations: vec![op(&[(2, 6)]), op(&[(1, 2), (0, 2)])],
                release: 1,
                due: None,
                weight: 1.0,
            },
            Job {
                id: "d".into(),
                operations: vec![op(&[(0, 2)]), op(&[(2, 3)]), op(&[(1, 1), (2, 1)])],
                release: 0,
                due: None,
                weight: 1.0,
            },
        ],
        unavailability: vec![
            Unavailability {
                machine: 0,
                start: 6,
                end: 9,
            },
            Unavailability {
                machine: 2,
                start: 0,
                end: 2,
            },
        ],
        fixed: vec![],
    }
}

/// The slow, obvious check: every pair of placed operations, every window.
fn naive_ok(inst: &Instance, s: &Schedule) -> bool {
    let mut placed = Vec::new();
    for (j, job) in inst.jobs.iter().enumerate() {
        for (k, op) in job.operations.iter().enumerate() {
            let p = s.jobs[j][k];
            let Some(&(_, d)) = op.eligible.iter().find(|e| e.0 == p.machine) else {
                return false;
            };
            if p.end != p.start + d {
                return false;
            }
            let ready = if k == 0 {
                job.release
            } else {
                s.jobs[j][k - 1].end
            };
            if p.start < ready {
                return false;
            }
            for w in inst
                .unavailability
                .iter()
                .filter(|w| w.machine == p.machine)
            {
                // Durations here are all positive.
                if p.start < w.end && w.start < p.end {
                    return false;
                }
            }
            placed.push(p);
        }
    }
    for (i, a) in placed.iter().enumerate() {
        for b in &placed[i + 1..] {
            if a.machine == b.machine && a.start < b.end && b.start < a.end {
                return false;
            }
        }
    }
    true
}

fn base_plan() -> (Instance, Schedule) {
    let inst = instance();
    let params = SolveParams {
        time_limit: Duration::from_secs(60),
        max_iterations: Some(500),
        ..SolveParams::default()
    };
    let sol = solve(&inst, &params).expect("solves");
    (inst, sol.schedule)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn verify_agrees_with_naive_checker(job in 0usize..4, op in 0usize..3, kind in 0u8..4, delta in -6i64..7, mc in 0usize..3) {
        let (inst, mut plan) = base_plan();
        prop_assert!(naive_ok(&inst, &plan));
        prop_assert_eq!(verify(&inst, &plan), Ok(plan.makespan()));
        let k = op.min(plan.jobs[job].len() - 1);
        let p = &mut plan.jobs[job][k];
        match kind {
            // Shift in time, keeping the duration.
            0 => { p.start += delta; p.end += delta; }
            // Stretch or shrink.
            1 => { p.end += delta; }
            // Move to another machine with that machine's duration (if eligible).
            2 => {
                p.machine = mc;
                if let Some(&(_, d)) = inst.jobs[job].operations[k].eligible.iter().find(|e| e.0 == mc) { p.end = p.start + d; }
            }
            // Swap the start times of two operations on the same job.
            _ => {
                let other = (k + 1) % plan.jobs[job].len();
                let (a, b) = (plan.jobs[job][k], plan.jobs[job][other]);
                plan.jobs[job][k] = ScheduledOp { start: b.start, end: b.start + (a.end - a.start), ..a };
                plan.jobs[job][other] = ScheduledOp { start: a.start, end: a.start + (b.end - b.start), ..b };
            }
        }
        let expected = naive_ok(&inst, &plan);
        let got = verify(&inst, &plan);
        prop_assert_eq!(got.is_ok(), expected, "verify said {:?}", got);
        if expected {
            prop_assert_eq!(got, Ok(plan.makespan()));
        }
    }
}
