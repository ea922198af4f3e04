//! Writes the predictive training/evaluation set: simulated plant histories run through the twin
//! and the production [`FeatureTracker`], one CSV row per ready window close, labelled from the
//! simulator's ground truth.
//!
//! ```text
//! cargo run --release -p twinline-processors --example export_features -- \
//!     --out train.csv --split train --seeds 1-4 --machines 25 --days 45 \
//!     [--sensor-interval-ms 10000] [--life-hours 48,240]
//! ```
//!
//! Labels (for the row at window end `T` of machine `m`, life = the wear trajectory at `T`):
//! - `y_1d, y_3d, y_7d`: 1 when the trajectory ends in a wear failure within 24/72/168 h of `T`;
//!   0 when it does not (it ends later, or in a random fault or preventive maintenance, after
//!   which the machine is renewed); -1 when unknown (the simulation ends inside the horizon);
//! - `hours_to_failure`: hours from `T` to the trajectory's end; `rul_censored` 0 when that end is
//!   a wear failure (the exact RUL), 1 when it is a lower bound;
//! - `end_kind`, `mode`: how the trajectory ended and its failure mode.

#[path = "../tests/predictive_common/mod.rs"]
mod common;

use std::io::Write;

use twinline_processors::predictive::{FeatureConfig, FeatureTracker};
use twinline_sim::{Span, TrajectoryEnd};

struct Args {
    out: String,
    split: String,
    seeds: Vec<u64>,
    machines: usize,
    days: u64,
    sensor_interval_ms: u64,
    life_hours: Option<(f64, f64)>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: String::new(),
        split: "train".into(),
        seeds: vec![1],
        machines: 10,
        days: 30,
        sensor_interval_ms: 10_000,
        life_hours: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let num = |s: &str| s.parse::<u64>().map_err(|e| format!("{k} {s}: {e}"));
        match k.as_str() {
            "--out" => a.out = v.clone(),
            "--split" => a.split = v.clone(),
            "--seeds" => {
                a.seeds = match v.split_once('-') {
                    Some((lo, hi)) => (num(lo)?..=num(hi)?).collect(),
                    None => v.split(',').map(num).collect::<Result<_, _>>()?,
                }
            }
            "--machines" => a.machines = num(v)? as usize,
            "--days" => a.days = num(v)?,
            "--sensor-interval-ms" => a.sensor_interval_ms = num(v)?,
            "--life-hours" => {
                let (lo, hi) = v.split_once(',').ok_or("--life-hours lo,hi")?;
                let f = |s: &str| s.parse::<f64>().map_err(|e| format!("{k}: {e}"));
                a.life_hours = Some((f(lo)?, f(hi)?));
            }
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.out.is_empty() {
        return Err("--out is required".into());
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("export_features: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&args.out).map_err(|e| e.to_string())?);
    let names = FeatureTracker::new(FeatureConfig::default())
        .map_err(|e| e.to_string())?
        .feature_names()
        .to_vec();
    let mut header = String::from("split,seed,machine,life,window_end_ms");
    for n in &names {
        header.push(',');
        header.push_str(n);
    }
    header.push_str(",y_1d,y_3d,y_7d,hours_to_failure,rul_censored,end_kind,mode\n");
    out.write_all(header.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut total = 0usize;
    for &seed in &args.seeds {
        let mut cfg = common::sim_config(seed, args.machines, args.days, args.sensor_interval_ms);
        if let Some((lo, hi)) = args.life_hours {
            cfg.wear.life_hours = Span::new(lo, hi);
        }
        let (rows, sim) = common::export_rows(cfg)?;
        let truth = sim.ground_truth();
        let sim_end = sim.end_ms();
        for r in &rows {
            let Some(mi) = common::machine_index(truth, &r.machine) else {
                continue;
            };
            let Some(tr) = truth.machines[mi].trajectory_at(r.window_end_ms) else {
                continue;
            };
            let end = tr.end_ms.unwrap_or(sim_end);
            let hours = (end - r.window_end_ms) as f64 / 3_600_000.0;
            let (kind, censored) = match tr.end {
                TrajectoryEnd::WearFailure => ("wear_failure", 0),
                TrajectoryEnd::RandomFault { .. } => ("random_fault", 1),
                TrajectoryEnd::Preventive => ("preventive", 1),
                TrajectoryEnd::Open => ("open", 1),
            };
            let label = |h: f64| -> i32 {
                match tr.end {
                    TrajectoryEnd::WearFailure => i32::from(hours <= h),
                    TrajectoryEnd::Open if hours < h => -1,
                    _ => 0,
                }
            };
            let mut line = format!(
                "{},{seed},{},{},{}",
                args.split, r.machine, r.life, r.window_end_ms
            );
            for v in &r.features {
                line.push(',');
                line.push_str(&format!("{v}"));
            }
            line.push_str(&format!(
                ",{},{},{},{hours},{censored},{kind},{:?}\n",
                label(24.0),
                label(72.0),
                label(168.0),
                tr.mode
            ));
            out.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
        }
        total += rows.len();
        eprintln!("seed {seed}: {} rows", rows.len());
    }
    out.flush().map_err(|e| e.to_string())?;
    eprintln!("wrote {total} rows to {}", args.out);
    Ok(())
}
