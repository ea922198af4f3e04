//! Command-line front end for benchmarking: `schedule --instance FILE --time-limit SECS --threads N [--seed S] [--max-iterations N] --format json`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut instance = None;
    let mut time_limit = 10.0f64;
    let mut threads = 1usize;
    let mut seed = 0u64;
    let mut max_iterations: Option<u64> = None;
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned();
        let parsed = match (args[i].as_str(), val) {
            ("--instance", Some(v)) => {
                instance = Some(v);
                Ok(())
            }
            ("--time-limit", Some(v)) => v
                .parse()
                .map(|x| time_limit = x)
                .map_err(|e| format!("--time-limit: {e}")),
            ("--threads", Some(v)) => v
                .parse()
                .map(|x| threads = x)
                .map_err(|e| format!("--threads: {e}")),
            ("--seed", Some(v)) => v
                .parse()
                .map(|x| seed = x)
                .map_err(|e| format!("--seed: {e}")),
            ("--max-iterations", Some(v)) => v
                .parse()
                .map(|x| max_iterations = Some(x))
                .map_err(|e| format!("--max-iterations: {e}")),
            ("--format", Some(v)) if v == "json" => Ok(()),
            (flag, _) => Err(format!("unknown flag or missing value: {flag}")),
        };
        if let Err(e) = parsed {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        i += 2;
    }
    let Some(instance) = instance else {
        eprintln!("usage: schedule --instance FILE [--time-limit SECS] [--threads N] [--seed S] [--format json]");
        return ExitCode::from(2);
    };
    let result = match max_iterations {
        None => twinline_solver::schedule_cli_json(&instance, time_limit, threads, seed),
        Some(mx) => std::fs::read_to_string(&instance)
            .map_err(|e| twinline_solver::SolverError::Io {
                path: instance.clone(),
                message: e.to_string(),
            })
            .and_then(|t| twinline_solver::parse_orlib(&t))
            .and_then(|inst| {
                let params = twinline_solver::SolveParams {
                    time_limit: std::time::Duration::from_secs_f64(time_limit),
                    threads,
                    seed,
                    max_iterations: Some(mx),
                    ..Default::default()
                };
                twinline_solver::solution_json(&inst, &params)
            }),
    };
    match result {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
