//! Training/serving skew: the features the predictive processor hands its model equal, bit for
//! bit and row for row, the features the training export writes for the same history.
//!
//! The export side is `predictive_common::export_rows`, the code `examples/export_features.rs`
//! runs. The serving side is [`PredictiveProcessor`] configured as in production (default
//! config, the shipped model's feature names and history length) with a model that records its
//! inputs.

mod predictive_common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use predictive_common::{drive, export_rows, shipped_model_dir, sim_config, Item};
use twinline_models::predictive::{ModelMeta, META_FILE};
use twinline_processors::predictive::{
    FailureModel, FailureOutput, ModelError, PredictiveConfig, PredictiveProcessor,
};
use twinline_processors::{Emitter, Processor};
use twinline_schemas::Payload;
use twinline_sim::{SimConfig, Span};

/// Records every feature row it is asked to score; answers "no risk".
struct Recorder {
    names: Vec<String>,
    sequence_len: usize,
    versions: BTreeMap<String, String>,
    seen: Arc<Mutex<Vec<Vec<f64>>>>,
}

impl FailureModel for Recorder {
    fn feature_names(&self) -> &[String] {
        &self.names
    }
    fn sequence_len(&self) -> usize {
        self.sequence_len
    }
    fn alert_thresholds(&self) -> [f64; 3] {
        [0.5, 0.5, 0.5]
    }
    fn versions(&self) -> &BTreeMap<String, String> {
        &self.versions
    }
    fn predict(
        &mut self,
        features: &[f64],
        _history: &[f64],
        out: &mut FailureOutput,
    ) -> Result<(), ModelError> {
        self.seen
            .lock()
            .expect("recorder lock")
            .push(features.to_vec());
        *out = FailureOutput::default();
        Ok(())
    }
}

/// The shipped model's metadata: the serving processor is built with its names and K.
fn shipped_meta() -> ModelMeta {
    let path = shipped_model_dir().join(META_FILE);
    let text = std::fs::read_to_string(&path).expect("read the shipped predictive.json");
    serde_json::from_str(&text).expect("parse predictive.json")
}

/// A few machines over a few days, with short lives so the history crosses failures and
/// maintenance (features restart with each life).
fn history() -> SimConfig {
    let mut cfg = sim_config(7, 3, 3, 10_000);
    cfg.wear.life_hours = Span::new(12.0, 40.0);
    cfg
}

/// (machine, window end, features) per model call, in call order. The [`FailureModel`] trait
/// does not carry the key, so it is taken from the prediction the processor emitted for that
/// call: one prediction per successful call, in the same order.
fn serving_rows(cfg: SimConfig, meta: &ModelMeta) -> Vec<(String, i64, Vec<f64>)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let model = Recorder {
        names: meta.feature_names.clone(),
        sequence_len: meta.sequence_len,
        versions: BTreeMap::from([("recorder".to_string(), "1".to_string())]),
        seen: Arc::clone(&seen),
    };
    let mut processor =
        PredictiveProcessor::new(PredictiveConfig::default(), Box::new(model)).expect("processor");
    let mut out = Emitter::new();
    let mut keys: Vec<(String, i64)> = Vec::new();
    let mut collect = |out: &mut Emitter| {
        for e in out.drain() {
            if let Payload::FailurePrediction(p) = e.payload {
                keys.push((p.machine_id, p.event_time));
            }
        }
    };
    drive(cfg, |item| {
        match item {
            Item::Event(ev) => processor.on_event(ev, &mut out),
            Item::Watermark(w) => processor.on_watermark(w, &mut out),
        }
        .map_err(|e| e.to_string())?;
        collect(&mut out);
        Ok(())
    })
    .expect("serving run");
    let seen = std::mem::take(&mut *seen.lock().expect("recorder lock"));
    assert_eq!(
        keys.len(),
        seen.len(),
        "one prediction per model call expected"
    );
    keys.into_iter()
        .zip(seen)
        .map(|((m, t), f)| (m, t, f))
        .collect()
}

#[test]
fn rust_features_equal_the_training_export_on_the_same_history() {
    let meta = shipped_meta();
    let (export, _sim) = export_rows(history()).expect("export run");
    let serving = serving_rows(history(), &meta);

    assert!(export.len() > 100, "only {} export rows", export.len());
    assert!(
        export.iter().any(|r| r.life >= 1),
        "the history should cross a maintenance"
    );
    for (i, (e, (m, t, f))) in export.iter().zip(&serving).enumerate() {
        assert_eq!(
            (e.machine.as_str(), e.window_end_ms),
            (m.as_str(), *t),
            "row {i}: export and serving close different windows"
        );
        assert_eq!(e.features.len(), f.len(), "row {i}: feature count");
        for (k, (a, b)) in e.features.iter().zip(f).enumerate() {
            assert!(
                a.to_bits() == b.to_bits(),
                "row {i} ({m} at {t}): feature {k} ({}) export {a:e} != serving {b:e}",
                meta.feature_names[k]
            );
        }
    }
    assert_eq!(
        export.len(),
        serving.len(),
        "export and serving report different numbers of rows"
    );
}
