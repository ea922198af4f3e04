//! Solver tests: parser, optimum on ft06, determinism, flexible plans with windows/releases/fixed
//! operations, weighted tardiness against brute force, and the CLI JSON shape.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinline_solver::*;

/// Fisher & Thompson ft06 (OR-Library), optimum 55.
const FT06: &str = "6 6
2 1 0 3 1 6 3 7 5 3 4 6
1 8 2 5 4 10 5 10 0 10 3 4
2 5 3 4 5 8 0 9 1 1 4 7
1 5 0 5 2 5 3 3 4 8 5 9
2 9 1 3 4 5 5 4 0 3 3 1
1 3 3 3 5 9 0 10 4 4 2 1
";

fn params(threads: usize, seed: u64, iters: u64) -> SolveParams {
    SolveParams {
        time_limit: Duration::from_secs(600),
        threads,
        seed,
        max_iterations: Some(iters),
        ..SolveParams::default()
    }
}

/// A Taillard-style instance with durations in 1..=49 (the dispatching environment's generator).
fn random_jssp(n: usize, m: usize, seed: u64) -> Instance {
    twinline_solver::dispatch::random_instance(n, m, 49, seed)
}

#[test]
fn parses_ft06() {
    let inst = parse_orlib(FT06).expect("ft06 parses");
    assert_eq!(inst.machines, 6);
    assert_eq!(inst.jobs.len(), 6);
    assert!(inst.jobs.iter().all(|j| j.operations.len() == 6));
    assert_eq!(inst.jobs[0].operations[0].eligible, vec![(2, 1)]);
    assert_eq!(inst.jobs[5].operations[5].eligible, vec![(2, 1)]);
    // Comments and blank lines are tolerated.
    let commented = format!("# ft06\n\n{FT06}\n");
    assert_eq!(parse_orlib(&commented).expect("parses"), inst);
}

#[test]
fn ft06_reaches_optimum_55_with_iteration_limit() {
    let inst = parse_orlib(FT06).expect("ft06 parses");
    let sol = solve(&inst, &params(1, 7, 20_000)).expect("solves");
    assert_eq!(verify(&inst, &sol.schedule), Ok(sol.makespan));
    assert_eq!(sol.makespan, 55);
    assert!(sol.lower_bound <= 55);
}

#[test]
fn parser_reports_malformed_input() {
    let err = |t: &str| parse_orlib(t).expect_err("must fail");
    assert!(matches!(err(""), SolverError::Parse { .. }));
    assert!(matches!(
        err("2\n0 1\n"),
        SolverError::Parse { line: 1, .. }
    ));
    assert!(
        matches!(err("1 2\n0 1 1\n"), SolverError::Parse { line: 2, .. }),
        "odd field count"
    );
    assert!(
        matches!(err("1 2\n0 x\n"), SolverError::Parse { line: 2, .. }),
        "not a number"
    );
    assert!(
        matches!(err("1 2\n5 3\n"), SolverError::Parse { line: 2, .. }),
        "machine out of range"
    );
    assert!(
        matches!(err("2 2\n0 3 1 4\n"), SolverError::Parse { .. }),
        "missing job line"
    );
    assert!(
        matches!(
            err("1 2\n0 3 1 4\n1 1\n"),
            SolverError::Parse { line: 3, .. }
        ),
        "extra job line"
    );
    assert_eq!(
        err("1 2\n0 3 1 -4\n"),
        SolverError::NegativeDuration {
            job: 0,
            op: 1,
            duration: -4
        }
    );
}

#[test]
fn infeasible_instances_are_typed_errors() {
    let mut inst = random_jssp(3, 3, 1);
    inst.jobs[1].operations[2].eligible.clear();
    assert_eq!(
        solve(&inst, &params(1, 0, 10)).expect_err("no machine"),
        SolverError::NoEligibleMachine { job: 1, op: 2 }
    );
    let mut inst = random_jssp(3, 3, 1);
    inst.jobs[0].operations[0].eligible[0].1 = -1;
    assert!(matches!(
        solve(&inst, &params(1, 0, 10)),
        Err(SolverError::NegativeDuration { job: 0, op: 0, .. })
    ));
    let mut inst = random_jssp(3, 3, 1);
    inst.unavailability.push(Unavailability {
        machine: 9,
        start: 0,
        end: 5,
    });
    assert!(matches!(
        solve(&inst, &params(1, 0, 10)),
        Err(SolverError::BadWindow { index: 0, .. })
    ));
    let mut inst = random_jssp(3, 3, 1);
    // Fixing op 1 without op 0 is impossible: op 1 cannot have started before op 0.
    let mc = inst.jobs[0].operations[1].eligible[0].0;
    inst.fixed.push(FixedOperation {
        job: 0,
        op: 1,
        machine: mc,
        start: 0,
    });
    assert!(matches!(
        solve(&inst, &params(1, 0, 10)),
        Err(SolverError::BadFixed { .. })
    ));
}

#[test]
fn same_seed_threads_and_iterations_give_identical_plans() {
    let inst = random_jssp(10, 8, 42);
    for threads in [1, 2, 3] {
        let a = solve(&inst, &params(threads, 5, 4_000)).expect("solves");
        let b = solve(&inst, &params(threads, 5, 4_000)).expect("solves");
        assert_eq!(a.schedule, b.schedule, "threads={threads}");
        assert_eq!(a.stats.iterations, b.stats.iterations);
        assert_eq!(verify(&inst, &a.schedule), Ok(a.makespan));
    }
}

#[test]
fn search_improves_on_dispatching_and_respects_lower_bound() {
    let inst = random_jssp(15, 10, 3);
    let sol = solve(&inst, &params(2, 1, 5_000)).expect("solves");
    assert_eq!(verify(&inst, &sol.schedule), Ok(sol.makespan));
    assert!(sol.makespan <= sol.stats.initial_makespan);
    assert!(sol.lower_bound <= sol.makespan);
    assert_eq!(sol.optimal, sol.makespan == sol.lower_bound);
}

/// Random flexible instance with releases, unavailability windows and a fixed prefix.
fn random_flexible(seed: u64) -> Instance {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let m = rng.gen_range(2..5);
    let n = rng.gen_range(2..7);
    let jobs: Vec<Job> = (0..n)
        .map(|j| {
            let ops = (0..rng.gen_range(1..5))
                .map(|_| {
                    let mut ms: Vec<usize> = (0..m).filter(|_| rng.gen_bool(0.5)).collect();
                    if ms.is_empty() {
                        ms.push(rng.gen_range(0..m));
                    }
                    Operation {
                        eligible: ms
                            .into_iter()
                            .map(|mc| (mc, rng.gen_range(0..12)))
                            .collect(),
                    }
                })
                .collect();
            Job {
                id: format!("J{j}"),
                operations: ops,
                release: rng.gen_range(0..10),
                due: None,
                weight: 1.0,
            }
        })
        .collect();
    let mut inst = Instance {
        machines: m,
        jobs,
        unavailability: vec![],
        fixed: vec![],
    };
    for _ in 0..rng.gen_range(0..4) {
        let s = rng.gen_range(0..40);
        inst.unavailability.push(Unavailability {
            machine: rng.gen_range(0..m),
            start: s,
            end: s + rng.gen_range(1..15),
        });
    }
    // Fix the first operation of job 0 on its first machine if that does not hit a window.
    if let Some(op) = inst.jobs[0].operations.first() {
        let (mc, d) = op.eligible[0];
        let start = inst.jobs[0].release;
        let clash = inst
            .unavailability
            .iter()
            .any(|w| w.machine == mc && start < w.end && w.start < start + d.max(1));
        if !clash {
            inst.fixed.push(FixedOperation {
                job: 0,
                op: 0,
                machine: mc,
                start,
            });
        }
    }
    inst
}

#[test]
fn flexible_instances_with_windows_releases_and_fixed_ops_give_valid_plans() {
    for seed in 0..60 {
        let inst = random_flexible(seed);
        for objective in [Objective::Makespan, Objective::WeightedTardiness] {
            let mut p = params(2, seed, 300);
            p.objective = objective;
            let sol = solve(&inst, &p).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(
                verify(&inst, &sol.schedule),
                Ok(sol.makespan),
                "seed {seed} {objective:?}"
            );
            assert!(sol.lower_bound <= sol.makespan, "seed {seed}");
        }
    }
}

#[test]
fn window_pushes_operation_past_maintenance() {
    // One machine, blocked on [0, 5); a 3-long op cannot start before 5, and a 2-long op fits at 5 too.
    let inst = Instance {
        machines: 1,
        jobs: vec![Job {
            id: "a".into(),
            operations: vec![Operation {
                eligible: vec![(0, 3)],
            }],
            release: 1,
            due: None,
            weight: 1.0,
        }],
        unavailability: vec![
            Unavailability {
                machine: 0,
                start: 0,
                end: 5,
            },
            Unavailability {
                machine: 0,
                start: 7,
                end: 9,
            },
        ],
        fixed: vec![],
    };
    let sol = solve(&inst, &params(1, 0, 50)).expect("solves");
    // [5, 8) would hit [7, 9): the op must wait until 9.
    assert_eq!(
        sol.schedule.jobs[0][0],
        ScheduledOp {
            machine: 0,
            start: 9,
            end: 12
        }
    );
    // Two machines: the solver reassigns to the free machine.
    let mut inst2 = inst.clone();
    inst2.machines = 2;
    inst2.jobs[0].operations[0].eligible.push((1, 4));
    let sol = solve(&inst2, &params(1, 0, 50)).expect("solves");
    assert_eq!(
        sol.schedule.jobs[0][0],
        ScheduledOp {
            machine: 1,
            start: 1,
            end: 5
        }
    );
}

#[test]
fn initial_plan_is_never_worsened_and_invalid_initial_is_rejected() {
    let inst = parse_orlib(FT06).expect("ft06 parses");
    let good = solve(&inst, &params(1, 3, 20_000)).expect("solves");
    let mut p = params(1, 99, 0);
    p.initial = Some(good.schedule.clone());
    let again = solve(&inst, &p).expect("solves");
    assert_eq!(again.makespan, good.makespan);
    let mut broken = good.schedule.clone();
    broken.jobs[0][1].start = broken.jobs[0][0].start; // before its predecessor ends
    broken.jobs[0][1].end = broken.jobs[0][1].start + inst.jobs[0].operations[1].eligible[0].1;
    p.initial = Some(broken);
    assert!(matches!(solve(&inst, &p), Err(SolverError::BadInitial(_))));
}

/// Semi-active schedule of given machine sequences; `None` when they are cyclic.
fn semi_active(inst: &Instance, seqs: &[Vec<usize>]) -> Option<Vec<i64>> {
    let n = inst.jobs.len();
    let mut end = vec![vec![i64::MIN; inst.jobs[0].operations.len()]; n];
    let mut pos = vec![0usize; inst.machines];
    let mut next = vec![0usize; n];
    let mut mfree = vec![0i64; inst.machines];
    let total: usize = inst.jobs.iter().map(|j| j.operations.len()).sum();
    for _ in 0..total {
        let mut progressed = false;
        for j in 0..n {
            let k = next[j];
            if k == inst.jobs[j].operations.len() {
                continue;
            }
            let (mc, d) = inst.jobs[j].operations[k].eligible[0];
            if seqs[mc].get(pos[mc]) == Some(&j) {
                let start = mfree[mc].max(if k == 0 {
                    inst.jobs[j].release
                } else {
                    end[j][k - 1]
                });
                end[j][k] = start + d;
                mfree[mc] = start + d;
                pos[mc] += 1;
                next[j] += 1;
                progressed = true;
                break;
            }
        }
        if !progressed {
            return None;
        }
    }
    Some(end.iter().map(|e| *e.last().unwrap_or(&0)).collect())
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let x = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, x);
            out.push(p);
        }
    }
    out
}

#[test]
fn weighted_tardiness_matches_brute_force() {
    for seed in 0..6u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
        // 4 jobs x 2 machines, random routes: 24^2 sequence pairs enumerated.
        let mut inst = random_jssp(4, 2, seed);
        for job in &mut inst.jobs {
            job.due = Some(rng.gen_range(20..90));
            job.weight = rng.gen_range(1..5) as f64;
            job.release = rng.gen_range(0..10);
        }
        let perms = permutations(&[0, 1, 2, 3]);
        let mut best = f64::INFINITY;
        for a in &perms {
            for b in &perms {
                if let Some(ends) = semi_active(&inst, &[a.clone(), b.clone()]) {
                    let wt: f64 = inst
                        .jobs
                        .iter()
                        .zip(&ends)
                        .map(|(j, &c)| j.weight * (c - j.due.unwrap_or(i64::MAX)).max(0) as f64)
                        .sum();
                    best = best.min(wt);
                }
            }
        }
        let mut p = params(2, seed, 3_000);
        p.objective = Objective::WeightedTardiness;
        let sol = solve(&inst, &p).expect("solves");
        assert_eq!(verify(&inst, &sol.schedule), Ok(sol.makespan));
        assert_eq!(
            weighted_tardiness(&inst, &sol.schedule),
            sol.objective_value
        );
        assert_eq!(sol.objective_value, best, "seed {seed}");
    }
}

#[test]
fn cli_json_has_the_contract_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ft06.txt");
    std::fs::write(&path, FT06).expect("write");
    let v = schedule_cli_json(path.to_str().expect("utf8"), 0.5, 2, 1).expect("solves");
    let starts = v["starts"].as_array().expect("starts");
    assert_eq!(starts.len(), 6);
    let inst = parse_orlib(FT06).expect("parses");
    // Rebuild the plan from the JSON alone and verify it.
    let sched = Schedule {
        jobs: starts
            .iter()
            .zip(&inst.jobs)
            .map(|(s, job)| {
                s.as_array()
                    .expect("array")
                    .iter()
                    .zip(&job.operations)
                    .map(|(st, op)| {
                        let start = st.as_i64().expect("int");
                        let (machine, d) = op.eligible[0];
                        ScheduledOp {
                            machine,
                            start,
                            end: start + d,
                        }
                    })
                    .collect()
            })
            .collect(),
    };
    assert_eq!(verify(&inst, &sched).ok(), v["makespan"].as_i64());
    for key in [
        "lower_bound",
        "time_to_best_ms",
        "optimal",
        "solver_time_ms",
        "iterations",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert!(matches!(
        schedule_cli_json("/nonexistent/x.txt", 1.0, 1, 0),
        Err(SolverError::Io { .. })
    ));
}

/// Long enough for many tabu walks: the elite pool fills, then restarts relink two elites
/// (classic job shop) or perturb one (flexible); plans stay valid and runs reproducible.
#[test]
fn long_runs_through_pool_restarts_are_valid_and_reproducible() {
    // ft06's lower bound is below its optimum, so the search runs every iteration.
    let inst = parse_orlib(FT06).expect("ft06 parses");
    let a = solve(&inst, &params(2, 4, 60_000)).expect("solves");
    let b = solve(&inst, &params(2, 4, 60_000)).expect("solves");
    assert!(a.stats.restarts > 30, "restarts {}", a.stats.restarts);
    assert_eq!(a.schedule, b.schedule);
    assert_eq!(verify(&inst, &a.schedule), Ok(a.makespan));
    for seed in 0..3 {
        let inst = random_flexible(seed);
        for objective in [Objective::Makespan, Objective::WeightedTardiness] {
            let mut p = params(1, seed, 40_000);
            p.objective = objective;
            let a = solve(&inst, &p).expect("solves");
            let b = solve(&inst, &p).expect("solves");
            assert_eq!(a.schedule, b.schedule, "seed {seed} {objective:?}");
            assert_eq!(verify(&inst, &a.schedule), Ok(a.makespan));
            if !a.optimal {
                assert!(a.stats.restarts > 13, "seed {seed} {objective:?}");
            }
        }
    }
}
