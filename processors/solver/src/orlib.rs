//! Parser for the OR-Library / JSPLIB job-shop text format (`n m`, then one line of `machine duration` pairs per job).

use crate::model::{Instance, Job, Operation, SolverError};

/// Parses an OR-Library job-shop instance. Blank lines and lines starting with `#` are skipped.
/// Machines are 0-indexed. The result is validated (negative durations, machine range).
pub fn parse_orlib(text: &str) -> Result<Instance, SolverError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (hline, header) = lines.next().ok_or(SolverError::Parse {
        line: 0,
        message: "empty input".into(),
    })?;
    let head: Vec<&str> = header.split_whitespace().collect();
    if head.len() != 2 {
        return Err(SolverError::Parse {
            line: hline,
            message: format!(
                "expected header `n_jobs n_machines`, found {} fields",
                head.len()
            ),
        });
    }
    let n = parse_num::<usize>(head[0], hline, "n_jobs")?;
    let m = parse_num::<usize>(head[1], hline, "n_machines")?;
    let mut jobs = Vec::with_capacity(n);
    for (line, l) in lines {
        if jobs.len() == n {
            return Err(SolverError::Parse {
                line,
                message: format!("more job lines than the {n} declared"),
            });
        }
        let toks: Vec<&str> = l.split_whitespace().collect();
        if !toks.len().is_multiple_of(2) {
            return Err(SolverError::Parse {
                line,
                message: format!(
                    "odd number of fields ({}); expected `machine duration` pairs",
                    toks.len()
                ),
            });
        }
        let mut ops = Vec::with_capacity(toks.len() / 2);
        for pair in toks.chunks_exact(2) {
            let machine = parse_num::<usize>(pair[0], line, "machine")?;
            let duration = parse_num::<i64>(pair[1], line, "duration")?;
            if machine >= m {
                return Err(SolverError::Parse {
                    line,
                    message: format!(
                        "machine {machine} out of range (instance declares {m} machines)"
                    ),
                });
            }
            ops.push(Operation {
                eligible: vec![(machine, duration)],
            });
        }
        jobs.push(Job {
            id: jobs.len().to_string(),
            operations: ops,
            release: 0,
            due: None,
            weight: 1.0,
        });
    }
    if jobs.len() != n {
        return Err(SolverError::Parse {
            line: text.lines().count(),
            message: format!("declared {n} jobs but found {}", jobs.len()),
        });
    }
    let inst = Instance {
        machines: m,
        jobs,
        unavailability: Vec::new(),
        fixed: Vec::new(),
    };
    inst.validate()?;
    Ok(inst)
}

fn parse_num<T: std::str::FromStr>(tok: &str, line: usize, what: &str) -> Result<T, SolverError> {
    tok.parse::<T>().map_err(|_| SolverError::Parse {
        line,
        message: format!("{what}: `{tok}` is not a valid number"),
    })
}
