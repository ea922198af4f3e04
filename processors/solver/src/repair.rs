//! Plan repair: the earliest-start plan that keeps given machine sequences, for rescheduling a
//! previous plan under new constraints before (and as an alternative to) searching.

use crate::graph::{Problem, State};
use crate::model::{Instance, Objective, Schedule, SolverError};

/// The plan that runs the free (not fixed) operations of `inst` on the machines and in the order
/// given by `sequences` (`sequences[m]` lists `(job, operation)` pairs in processing order), each
/// as early as its job predecessor, its release, the fixed operations and the unavailability
/// windows allow. Fixed operations listed in `sequences` are ignored.
///
/// Errors with [`SolverError::BadInitial`] when a free operation is missing, listed twice or on a
/// machine that is not eligible for it, and when the sequences contradict the job order (a cycle).
pub fn schedule_from_sequences(
    inst: &Instance,
    sequences: &[Vec<(usize, usize)>],
) -> Result<Schedule, SolverError> {
    inst.validate()?;
    if sequences.len() > inst.machines {
        return Err(SolverError::BadInitial(format!(
            "{} machine sequences for {} machines",
            sequences.len(),
            inst.machines
        )));
    }
    let p = Problem::new(inst, Objective::Makespan);
    // Free operation id of each (job, operation).
    let mut id: Vec<Vec<Option<u32>>> = inst
        .jobs
        .iter()
        .map(|j| vec![None; j.operations.len()])
        .collect();
    for (i, &(j, k)) in p.origin.iter().enumerate() {
        id[j as usize][k as usize] = Some(i as u32);
    }
    let mut placed = vec![false; p.n];
    let mut seqs: Vec<Vec<u32>> = vec![Vec::new(); inst.machines];
    for (m, seq) in sequences.iter().enumerate() {
        for &(j, k) in seq {
            let Some(slot) = id.get(j).and_then(|ops| ops.get(k)) else {
                return Err(SolverError::BadInitial(format!(
                    "machine {m}: job {j} operation {k} does not exist"
                )));
            };
            let Some(op) = *slot else {
                continue; // a fixed operation keeps its own placement
            };
            if p.duration_on(op as usize, m as u32).is_none() {
                return Err(SolverError::BadInitial(format!(
                    "job {j} operation {k}: machine {m} is not eligible"
                )));
            }
            if std::mem::replace(&mut placed[op as usize], true) {
                return Err(SolverError::BadInitial(format!(
                    "job {j} operation {k} is sequenced twice"
                )));
            }
            seqs[m].push(op);
        }
    }
    if let Some(missing) = placed.iter().position(|x| !x) {
        let (j, k) = p.origin[missing];
        return Err(SolverError::BadInitial(format!(
            "job {j} operation {k} is on no machine sequence"
        )));
    }
    let mut st = State::from_sequences(&p, &seqs);
    if !st.evaluate(&p) {
        return Err(SolverError::BadInitial(
            "machine sequences contradict the job order (cycle)".into(),
        ));
    }
    Ok(st.to_schedule(&p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FixedOperation, Job, Operation, Unavailability};
    use crate::verify;

    fn job(id: &str, ops: &[&[(usize, i64)]], release: i64) -> Job {
        Job {
            id: id.into(),
            operations: ops
                .iter()
                .map(|e| Operation {
                    eligible: e.to_vec(),
                })
                .collect(),
            release,
            due: None,
            weight: 1.0,
        }
    }

    #[test]
    fn keeps_sequences_and_respects_windows_fixed_and_release() {
        let inst = Instance {
            machines: 2,
            jobs: vec![
                job("a", &[&[(0, 3)], &[(1, 2)]], 0),
                job("b", &[&[(0, 2), (1, 4)], &[(0, 1)]], 1),
            ],
            unavailability: vec![Unavailability {
                machine: 1,
                start: 0,
                end: 5,
            }],
            fixed: vec![FixedOperation {
                job: 0,
                op: 0,
                machine: 0,
                start: 0,
            }],
        };
        // b0 before nothing on machine 0 after the fixed a0; a1 on machine 1; b1 on machine 0.
        let s = schedule_from_sequences(&inst, &[vec![(0, 0), (1, 0), (1, 1)], vec![(0, 1)]])
            .expect("valid sequences");
        verify(&inst, &s).expect("repaired plan is valid");
        assert_eq!(s.jobs[0][0].start, 0); // fixed
        assert_eq!((s.jobs[1][0].machine, s.jobs[1][0].start), (0, 3)); // after the fixed op
        assert_eq!(s.jobs[1][1].start, 5);
        assert_eq!((s.jobs[0][1].machine, s.jobs[0][1].start), (1, 5)); // after the window
    }

    #[test]
    fn rejects_missing_ineligible_duplicate_and_cyclic_sequences() {
        let inst = Instance {
            machines: 2,
            jobs: vec![
                job("a", &[&[(0, 1)], &[(1, 1)]], 0),
                job("b", &[&[(1, 1)], &[(0, 1)]], 0),
            ],
            ..Instance::default()
        };
        let bad = |seqs: &[Vec<(usize, usize)>]| {
            matches!(
                schedule_from_sequences(&inst, seqs),
                Err(SolverError::BadInitial(_))
            )
        };
        assert!(bad(&[vec![(0, 0)], vec![(0, 1), (1, 0)]])); // b1 missing
        assert!(bad(&[vec![(0, 0), (1, 1), (0, 1)], vec![(1, 0)]])); // a1 not on machine 0
        assert!(bad(&[vec![(0, 0), (1, 1), (1, 1)], vec![(1, 0), (0, 1)]])); // twice
                                                                             // a0 after b1 on machine 0 and b0 after a1 on machine 1: a cycle.
        assert!(bad(&[vec![(1, 1), (0, 0)], vec![(0, 1), (1, 0)]]));
        let ok = schedule_from_sequences(&inst, &[vec![(0, 0), (1, 1)], vec![(1, 0), (0, 1)]])
            .expect("valid");
        assert_eq!(verify(&inst, &ok), Ok(2));
    }
}
