//! Predictive processor with the committed ONNX models (`models/predictive/`). Needs the ONNX
//! Runtime library: `ORT_DYLIB_PATH`, or the `onnxruntime` wheel in the repository's `.venv`.

mod predictive_common;

use std::collections::BTreeMap;

use predictive_common::{drive, machine_index, shipped_model_dir, sim_config, Item};
use twinline_models::predictive::OnnxFailureModel;
use twinline_processors::predictive::{
    assess, FailureModel, FailureOutput, PredictiveConfig, PredictiveProcessor, NUM_FEATURES,
};
use twinline_processors::{Emitter, Processor};
use twinline_schemas::{Payload, Urgency};

fn load_model() -> OnnxFailureModel {
    let library =
        twinline_models::session::ort_library_or_venv(&shipped_model_dir().join("../../.venv"))
            .expect("no ONNX Runtime: set ORT_DYLIB_PATH or run scripts/test.sh (installs .venv)");
    OnnxFailureModel::load_with_library(shipped_model_dir(), Some(&library))
        .expect("load models/predictive")
}

/// Held-out plant (a seed not used in training): every wear failure the models see coming gets
/// a CRITICAL prediction before the FAULT, and most failures are seen coming.
#[test]
fn simulated_failures_get_critical_predictions_before_failure() {
    let model = load_model();
    let mut p =
        PredictiveProcessor::new(PredictiveConfig::default(), Box::new(model)).expect("processor");
    let mut em = Emitter::new();
    // (machine, event time, urgency) of every prediction.
    let mut predictions: Vec<(String, i64, Urgency)> = Vec::new();
    let mut collect = |em: &mut Emitter| {
        for e in em.drain() {
            if let Payload::FailurePrediction(f) = e.payload {
                predictions.push((f.machine_id, f.event_time, f.urgency));
            }
        }
    };
    let sim = drive(sim_config(2024, 4, 12, 10_000), |item| {
        match item {
            Item::Event(ev) => p.on_event(ev, &mut em).map_err(|e| e.to_string())?,
            Item::Watermark(w) => p.on_watermark(w, &mut em).map_err(|e| e.to_string())?,
        }
        collect(&mut em);
        Ok(())
    })
    .expect("run");
    let truth = sim.ground_truth();
    let (mut failures, mut warned) = (0, 0);
    for m in &truth.machines {
        for f in m.failures.iter().filter(|f| f.mode.is_some()) {
            let Some(tr) = m.trajectories.iter().find(|t| t.end_ms == Some(f.time_ms)) else {
                continue;
            };
            // Lives shorter than a day give the models no chance; not counted.
            if f.time_ms - tr.start_ms < 86_400_000 {
                continue;
            }
            failures += 1;
            let first = predictions.iter().find(|(id, t, u)| {
                *id == m.machine_id
                    && *t >= tr.start_ms
                    && *t < f.time_ms
                    && *u == Urgency::Critical
            });
            if let Some((_, t, _)) = first {
                warned += 1;
                eprintln!(
                    "{} failure at {}: first CRITICAL {:.1} h before",
                    m.machine_id,
                    f.time_ms,
                    (f.time_ms - t) as f64 / 3.6e6
                );
            } else {
                eprintln!(
                    "{} failure at {}: no CRITICAL before it",
                    m.machine_id, f.time_ms
                );
            }
        }
    }
    assert!(machine_index(truth, "M001").is_some());
    assert!(
        failures >= 3,
        "the held-out plant should fail a few times, got {failures}"
    );
    assert!(
        warned * 4 >= failures * 3,
        "CRITICAL before only {warned} of {failures} failures"
    );
}

struct Subset {
    key: Vec<(u64, String, u64)>,
    x: Vec<[f64; NUM_FEATURES]>,
    y: [Vec<i32>; 3],
    htf: Vec<f64>,
    censored: Vec<bool>,
    wear: Vec<bool>,
}

fn read_subset() -> Subset {
    let text = std::fs::read_to_string(shipped_model_dir().join("heldout_subset.csv"))
        .expect("subset csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header.len(), 4 + NUM_FEATURES + 6);
    let mut s = Subset {
        key: vec![],
        x: vec![],
        y: [vec![], vec![], vec![]],
        htf: vec![],
        censored: vec![],
        wear: vec![],
    };
    for line in lines {
        let c: Vec<&str> = line.split(',').collect();
        s.key.push((
            c[0].parse().expect("seed"),
            c[1].to_string(),
            c[2].parse().expect("life"),
        ));
        let mut x = [0.0; NUM_FEATURES];
        for (i, v) in x.iter_mut().enumerate() {
            *v = c[4 + i].parse().expect("feature");
        }
        s.x.push(x);
        let b = 4 + NUM_FEATURES;
        for h in 0..3 {
            s.y[h].push(c[b + h].parse().expect("label"));
        }
        s.htf.push(c[b + 3].parse().expect("htf"));
        s.censored.push(c[b + 4] == "1");
        s.wear.push(c[b + 5] == "wear_failure");
    }
    s
}

/// sklearn's average precision (ties grouped), as `train.py` computes it.
fn average_precision(y: &[i32], s: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
    let pos = y.iter().filter(|&&v| v == 1).count() as f64;
    let (mut ap, mut tp, mut fp, mut prev_r, mut i) = (0.0, 0.0, 0.0, 0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j < order.len() && s[order[j]] == s[order[i]] {
            if y[order[j]] == 1 {
                tp += 1.0
            } else {
                fp += 1.0
            }
            j += 1;
        }
        let r = tp / pos;
        ap += (r - prev_r) * tp / (tp + fp);
        prev_r = r;
        i = j;
    }
    ap
}

/// The model card's figures on the committed held-out subset, recomputed through the Rust model
/// path (the processor's `assess`, one row at a time with its history).
#[test]
fn model_card_subset_figures_are_reproduced() {
    let mut model = load_model();
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shipped_model_dir().join("metrics.json")).expect("metrics.json"),
    )
    .expect("json");
    let card = &metrics["subset"];
    let s = read_subset();
    let n = s.x.len();
    let k = model.sequence_len();
    let thr = model.alert_thresholds();
    let mut probs = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
    let mut rul = vec![0.0; n];
    let mut alert = vec![false; n];
    let mut history = Vec::with_capacity(k * NUM_FEATURES);
    let mut out = FailureOutput::default();
    let mut start = 0;
    for i in 0..n {
        if i > 0 && s.key[i] != s.key[i - 1] {
            start = i;
        }
        history.clear();
        for j in 0..k {
            let r = (i + j + 1).saturating_sub(k).max(start);
            history.extend_from_slice(&s.x[r]);
        }
        model.predict(&s.x[i], &history, &mut out).expect("predict");
        let a = assess(&out, thr, 1440.0);
        probs[0][i] = a.probability_1d;
        probs[1][i] = a.probability_3d;
        probs[2][i] = a.probability_7d;
        rul[i] = out.rul_hours.expect("rul");
        alert[i] = matches!(a.urgency, Urgency::Critical | Urgency::High);
    }
    let mut got: BTreeMap<&str, f64> = BTreeMap::new();
    for (h, name) in ["auc_pr_1d", "auc_pr_3d", "auc_pr_7d"]
        .into_iter()
        .enumerate()
    {
        let idx: Vec<usize> = (0..n).filter(|&i| s.y[h][i] >= 0).collect();
        let y: Vec<i32> = idx.iter().map(|&i| s.y[h][i]).collect();
        let p: Vec<f64> = idx.iter().map(|&i| probs[h][i]).collect();
        got.insert(name, average_precision(&y, &p));
    }
    let (mut tp, mut fp, mut fnn) = (0.0, 0.0, 0.0);
    for (&a, &y3) in alert.iter().zip(&s.y[1]).take(n) {
        match (a, y3) {
            (true, 1) => tp += 1.0,
            (true, 0) => fp += 1.0,
            (false, 1) => fnn += 1.0,
            _ => {}
        }
    }
    got.insert("precision_3d_at_alert", tp / f64::max(tp + fp, 1.0));
    got.insert("recall_3d_at_alert", tp / f64::max(tp + fnn, 1.0));
    let exact: Vec<usize> = (0..n)
        .filter(|&i| !s.censored[i] && s.htf[i] <= 1440.0)
        .collect();
    let mse = exact
        .iter()
        .map(|&i| (rul[i] - s.htf[i]).powi(2))
        .sum::<f64>()
        / exact.len() as f64;
    got.insert("rul_rmse_hours", mse.sqrt());
    // Requests: the first alert of each life.
    let (mut leads, mut false_alarms, mut failures) = (Vec::new(), 0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && s.key[j] == s.key[i] {
            j += 1;
        }
        if s.wear[i] {
            failures += 1.0;
        }
        if let Some(r) = (i..j).find(|&r| alert[r]) {
            if s.wear[r] {
                leads.push(s.htf[r]);
            }
            if !(s.wear[r] && s.htf[r] <= 72.0) {
                false_alarms += 1.0;
            }
        }
        i = j;
    }
    leads.sort_by(f64::total_cmp);
    let median = match leads.len() {
        0 => 0.0,
        m if m % 2 == 1 => leads[m / 2],
        m => (leads[m / 2 - 1] + leads[m / 2]) / 2.0,
    };
    got.insert("failures", failures);
    got.insert("median_lead_time_hours", median);
    got.insert(
        "false_alarms_per_machine_month",
        false_alarms / (n as f64 * 0.25 / 730.0),
    );
    // Tolerances: classifier outputs are bit-identical (same ORT, same f32 inputs); the RUL net
    // ran batched in Python and one sequence at a time here, so its float sums may differ.
    for (name, v) in &got {
        let want = card[*name]
            .as_f64()
            .unwrap_or_else(|| panic!("metrics.json subset lacks {name}"));
        let tol = if *name == "rul_rmse_hours" {
            1e-3 * want.abs().max(1.0)
        } else {
            1e-6
        };
        assert!((v - want).abs() <= tol, "{name}: Rust {v} vs card {want}");
        eprintln!("{name}: {v:.6} (card {want:.6})");
    }
}
