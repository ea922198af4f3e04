//! The committed dispatching policy (`models/rl`) against its training record: on the generated
//! validation instances it reproduces the greedy makespans `train.py` logged for the chosen
//! checkpoint (ONNX Runtime in Rust against PyTorch in Python, through the same environment), it
//! beats every classic dispatching rule there, and sampling more rollouts never loses to greedy.
//!
//! Needs ONNX Runtime through `ORT_DYLIB_PATH` (`scripts/test.sh` sets it); not skipped without.

use std::path::PathBuf;

use serde_json::Value;
use twinline_processors::dispatch::PolicyScorer;
use twinline_solver::dispatch::{
    policy_schedule, random_instance, rule_schedule, Decode, DispatchRule,
};
use twinline_solver::verify;

/// This package's directory: cargo's value at run time, which stays right when the binary was built
/// from another checkout sharing the target directory; the compile-time value otherwise.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn rl_dir() -> PathBuf {
    package_dir().join("../models/rl")
}

fn ort_library() -> PathBuf {
    twinline_models::session::ort_library_or_venv(&package_dir().join("../.venv"))
        .expect("no ONNX Runtime: set ORT_DYLIB_PATH or run scripts/test.sh (installs .venv)")
}

/// The validation instances of `train.py` (`Batch.random(j, m, 16, 1, 900000 + 100 j + m)`).
fn validation(j: usize, m: usize) -> Vec<twinline_solver::Instance> {
    let seed = 900_000u64 + 100 * j as u64 + m as u64;
    (0..16u64)
        .map(|i| random_instance(j, m, 99, seed.wrapping_mul(1_000_003).wrapping_add(i)))
        .collect()
}

#[test]
fn policy_reproduces_its_validation_record_and_beats_the_rules() {
    let log: Value =
        serde_json::from_str(&std::fs::read_to_string(rl_dir().join("train_log.json")).unwrap())
            .unwrap();
    let best = log["iters"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|r| r["best"] == true)
        .expect("a chosen checkpoint in the log");
    let mut policy = PolicyScorer::load(&rl_dir(), Some(&ort_library()), 1).unwrap();
    for (j, m) in [(15, 15), (20, 15)] {
        let key = format!("{j}x{m}");
        let mut greedy = Vec::new();
        let mut sampled = Vec::new();
        let mut rules = vec![0f64; DispatchRule::ALL.len()];
        for inst in validation(j, m) {
            let g = policy_schedule(&inst, &mut policy, Decode::Greedy)
                .unwrap()
                .unwrap();
            assert_eq!(verify(&inst, &g.schedule), Ok(g.makespan));
            let s = policy_schedule(
                &inst,
                &mut policy,
                Decode::Sample {
                    rollouts: 16,
                    seed: 1,
                },
            )
            .unwrap()
            .unwrap();
            assert!(
                s.makespan <= g.makespan,
                "best of 16 includes the greedy rollout"
            );
            greedy.push(g.makespan as f64);
            sampled.push(s.makespan as f64);
            for (k, r) in DispatchRule::ALL.into_iter().enumerate() {
                rules[k] += rule_schedule(&inst, r).unwrap().1 as f64 / 16.0;
            }
        }
        let mean = greedy.iter().sum::<f64>() / greedy.len() as f64;
        let logged = best["val"][&key].as_f64().unwrap();
        // PyTorch and ONNX Runtime round differently; a near-tie may flip a decision.
        assert!(
            (mean - logged).abs() / logged < 0.01,
            "{key}: greedy mean {mean} vs {logged} in train_log.json"
        );
        let best_rule = rules.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            mean < best_rule,
            "{key}: policy {mean} vs best rule {best_rule}"
        );
        eprintln!(
            "{key}: policy greedy {mean:.1}, best rule {best_rule:.1}, best of 16 {:.1}",
            sampled.iter().sum::<f64>() / 16.0
        );
    }
}

#[test]
fn policy_refuses_observations_it_was_not_trained_on() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(rl_dir().join("policy.onnx"), tmp.path().join("policy.onnx")).unwrap();
    let mut meta: Value =
        serde_json::from_str(&std::fs::read_to_string(rl_dir().join("policy.json")).unwrap())
            .unwrap();
    meta["features"].as_array_mut().unwrap().pop();
    std::fs::write(tmp.path().join("policy.json"), meta.to_string()).unwrap();
    let err = PolicyScorer::load(tmp.path(), Some(&ort_library()), 1).unwrap_err();
    assert!(err.to_string().contains("other observations"), "{err}");
}
