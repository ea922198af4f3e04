//! Independent plan checker: recomputes every constraint from the instance, sharing no code with the search.

use crate::model::{Instance, Schedule};

/// Checks shape, eligibility and durations, release times, job precedence, fixed operations,
/// machine unavailability windows and machine overlap. Returns the makespan on success and a
/// message naming the first violated constraint otherwise.
pub fn verify(inst: &Instance, s: &Schedule) -> Result<i64, String> {
    if s.jobs.len() != inst.jobs.len() {
        return Err(format!(
            "plan has {} jobs, instance has {}",
            s.jobs.len(),
            inst.jobs.len()
        ));
    }
    let mut per_machine: Vec<Vec<(i64, i64, usize, usize)>> = vec![Vec::new(); inst.machines];
    for (j, (job, ops)) in inst.jobs.iter().zip(&s.jobs).enumerate() {
        if ops.len() != job.operations.len() {
            return Err(format!(
                "job {j}: plan has {} operations, instance has {}",
                ops.len(),
                job.operations.len()
            ));
        }
        let mut prev_end = job.release;
        for (k, (op, so)) in job.operations.iter().zip(ops).enumerate() {
            let Some(&(_, d)) = op.eligible.iter().find(|e| e.0 == so.machine) else {
                return Err(format!(
                    "job {j} op {k}: machine {} not eligible",
                    so.machine
                ));
            };
            if so.end - so.start != d {
                return Err(format!(
                    "job {j} op {k}: runs {} but takes {d} on machine {}",
                    so.end - so.start,
                    so.machine
                ));
            }
            if so.start < prev_end {
                return Err(if k == 0 {
                    format!(
                        "job {j} op 0 starts at {} before release {}",
                        so.start, job.release
                    )
                } else {
                    format!(
                        "job {j} op {k} starts at {} before op {} ends at {prev_end}",
                        so.start,
                        k - 1
                    )
                });
            }
            prev_end = so.end;
            for w in inst
                .unavailability
                .iter()
                .filter(|w| w.machine == so.machine)
            {
                if overlaps(so.start, so.end, w.start, w.end) {
                    return Err(format!(
                        "job {j} op {k} on machine {} [{}, {}) overlaps unavailability [{}, {})",
                        so.machine, so.start, so.end, w.start, w.end
                    ));
                }
            }
            // Empty intervals occupy no machine time; leaving them out keeps the adjacent-pair check complete.
            if so.end > so.start {
                per_machine[so.machine].push((so.start, so.end, j, k));
            }
        }
    }
    for f in &inst.fixed {
        let Some(so) = s.jobs.get(f.job).and_then(|o| o.get(f.op)) else {
            return Err(format!("fixed operation job {} op {} missing", f.job, f.op));
        };
        if so.machine != f.machine || so.start != f.start {
            return Err(format!(
                "fixed operation job {} op {} moved to machine {} start {} (fixed: machine {} start {})",
                f.job, f.op, so.machine, so.start, f.machine, f.start
            ));
        }
    }
    for (m, list) in per_machine.iter_mut().enumerate() {
        list.sort_unstable();
        for w in list.windows(2) {
            let (a, b) = (w[0], w[1]);
            if overlaps(a.0, a.1, b.0, b.1) {
                return Err(format!(
                    "machine {m}: job {} op {} [{}, {}) overlaps job {} op {} [{}, {})",
                    a.2, a.3, a.0, a.1, b.2, b.3, b.0, b.1
                ));
            }
        }
    }
    Ok(s.makespan())
}

/// `[s1, e1)` and `[s2, e2)` share time. An empty interval (zero-duration operation) occupies no
/// machine time, so it never overlaps anything; touching ends do not overlap either.
fn overlaps(s1: i64, e1: i64, s2: i64, e2: i64) -> bool {
    s1 < e1 && s2 < e2 && s1 < e2 && s2 < e1
}
