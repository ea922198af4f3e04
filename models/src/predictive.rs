//! The failure-prediction model interface and its ONNX Runtime implementation.
//!
//! [`FailureModel`] is what `twinline-processors`' predictive processor calls: given a machine's
//! current feature row and its last K rows (oldest first), return failure probabilities within
//! 1, 3 and 7 days, an optional remaining-useful-life estimate and per-feature contributions.
//! Tests use hand-written implementations; production uses [`OnnxFailureModel`].
//!
//! # Files (see `models/predictive/`)
//!
//! | file | content |
//! |---|---|
//! | `predictive.json` | [`ModelMeta`]: feature names (order = input columns), sequence length, alert thresholds, reference values, versions |
//! | `clf_1d.onnx`, `clf_3d.onnx`, `clf_7d.onnx` | gradient-boosted tree classifiers, input `input: float[N, F]`, output `probabilities: float[N, 2]` |
//! | `rul.onnx` | sequence model, input `x: float[1, K, F]` (raw features; it standardises inside), output `rul_hours: float[1]` |
//!
//! # Contributions
//!
//! Tree SHAP values are not part of the ONNX tree-ensemble operator, so contributions are
//! *reference occlusion*: `c_i = p3d(x) - p3d(x with feature i set to its training median)`,
//! computed in one batched run of F + 1 rows. Positive means the feature's current value raised the
//! 3-day failure probability. It is exact for the model (no sampling) and deterministic, but unlike
//! SHAP the contributions need not sum to `p3d(x) - p3d(reference)` when features interact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::session::{cpu_session, environment, ModelError};

/// What a [`FailureModel`] returns for one machine at one window close.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailureOutput {
    /// Probability of a failure within 1, 3 and 7 days, each in [0, 1] (not yet made monotone).
    pub probability_1d: f64,
    pub probability_3d: f64,
    pub probability_7d: f64,
    /// Remaining useful life in hours, `None` when the model has no RUL part.
    pub rul_hours: Option<f64>,
    /// One signed contribution per feature (same order as the features), or empty.
    pub contributions: Vec<f64>,
}

/// A failure-prediction model: a pure function of its inputs (same input, same output).
pub trait FailureModel: Send {
    /// Input feature names, in input column order; the caller checks them against its features.
    fn feature_names(&self) -> &[String];
    /// Rows of history the model reads (K); 0 when it reads none.
    fn sequence_len(&self) -> usize;
    /// Alert thresholds on the 1-, 3- and 7-day probabilities (chosen on validation data).
    fn alert_thresholds(&self) -> [f64; 3];
    /// Model name -> version of every model that contributes.
    fn versions(&self) -> &BTreeMap<String, String>;
    /// `features`: F values; `history`: K x F values, oldest row first, the last row equal to
    /// `features` (empty when K = 0). Writes into `out` so callers can reuse its allocation.
    fn predict(
        &mut self,
        features: &[f64],
        history: &[f64],
        out: &mut FailureOutput,
    ) -> Result<(), ModelError>;
}

/// Contents of `predictive.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    pub feature_names: Vec<String>,
    pub sequence_len: usize,
    /// Thresholds on p1d, p3d, p7d.
    pub alert_thresholds: [f64; 3],
    /// Per-feature reference (training median) for occlusion contributions.
    pub reference_values: Vec<f64>,
    /// RUL estimates are clipped to [0, rul_cap_hours].
    pub rul_cap_hours: f64,
    pub versions: BTreeMap<String, String>,
}

/// File names inside the model directory.
pub const META_FILE: &str = "predictive.json";
pub const CLASSIFIER_FILES: [&str; 3] = ["clf_1d.onnx", "clf_3d.onnx", "clf_7d.onnx"];
pub const RUL_FILE: &str = "rul.onnx";

/// The ONNX implementation of [`FailureModel`]: three tree classifiers and a sequence RUL model.
pub struct OnnxFailureModel {
    meta: ModelMeta,
    classifiers: [Session; 3],
    rul: Session,
    /// Reused input buffers (f32: the tree thresholds and the network are float32).
    batch: Vec<f32>,
    seq: Vec<f32>,
}

impl std::fmt::Debug for OnnxFailureModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxFailureModel")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl OnnxFailureModel {
    /// Loads `dir/predictive.json` and the four ONNX files, finding ONNX Runtime through
    /// `ORT_DYLIB_PATH`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, ModelError> {
        Self::load_with_library(dir, None)
    }

    /// As [`OnnxFailureModel::load`], with an explicit ONNX Runtime library path.
    pub fn load_with_library(
        dir: impl AsRef<Path>,
        library: Option<&Path>,
    ) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        let meta = read_meta(&dir.join(META_FILE))?;
        let env = environment(library)?;
        let open = |name: &str| cpu_session(&env, &dir.join(name));
        let classifiers = [
            open(CLASSIFIER_FILES[0])?,
            open(CLASSIFIER_FILES[1])?,
            open(CLASSIFIER_FILES[2])?,
        ];
        let rul = open(RUL_FILE)?;
        let f = meta.feature_names.len();
        Ok(OnnxFailureModel {
            batch: Vec::with_capacity((f + 1) * f),
            seq: Vec::with_capacity(meta.sequence_len * f),
            meta,
            classifiers,
            rul,
        })
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// Positive-class probability of classifier `k` for `rows` rows of `self.batch`.
    fn run_classifier(
        &mut self,
        k: usize,
        rows: usize,
        probs: &mut Vec<f64>,
    ) -> Result<(), ModelError> {
        let f = self.meta.feature_names.len();
        let input = TensorRef::from_array_view(([rows, f], &self.batch[..rows * f]))
            .map_err(ModelError::runtime)?;
        let outputs = self.classifiers[k]
            .run(ort::inputs![input])
            .map_err(ModelError::runtime)?;
        let value = outputs.get("probabilities").ok_or_else(|| {
            ModelError::Mismatch(format!(
                "{} has no `probabilities` output",
                CLASSIFIER_FILES[k]
            ))
        })?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(ModelError::runtime)?;
        if shape.len() != 2 || shape[0] as usize != rows || shape[1] != 2 {
            return Err(ModelError::Mismatch(format!(
                "{}: probabilities shape {shape:?}, expected [{rows}, 2]",
                CLASSIFIER_FILES[k]
            )));
        }
        probs.clear();
        probs.extend((0..rows).map(|r| f64::from(data[2 * r + 1]).clamp(0.0, 1.0)));
        Ok(())
    }

    fn run_rul(&mut self) -> Result<f64, ModelError> {
        let f = self.meta.feature_names.len();
        let k = self.meta.sequence_len;
        let input =
            TensorRef::from_array_view(([1, k, f], &self.seq[..])).map_err(ModelError::runtime)?;
        let outputs = self
            .rul
            .run(ort::inputs![input])
            .map_err(ModelError::runtime)?;
        let value = outputs
            .get("rul_hours")
            .ok_or_else(|| ModelError::Mismatch(format!("{RUL_FILE} has no `rul_hours` output")))?;
        let (_, data) = value
            .try_extract_tensor::<f32>()
            .map_err(ModelError::runtime)?;
        let v = data
            .first()
            .copied()
            .ok_or_else(|| ModelError::Mismatch(format!("{RUL_FILE}: empty output")))?;
        Ok(f64::from(v).clamp(0.0, self.meta.rul_cap_hours))
    }
}

fn read_meta(path: &Path) -> Result<ModelMeta, ModelError> {
    let file_err = |reason: String| ModelError::File {
        path: PathBuf::from(path),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let meta: ModelMeta = serde_json::from_str(&text).map_err(|e| file_err(e.to_string()))?;
    let f = meta.feature_names.len();
    if f == 0 || meta.reference_values.len() != f {
        return Err(file_err(format!(
            "{} feature names but {} reference values",
            f,
            meta.reference_values.len()
        )));
    }
    if meta.sequence_len == 0 || meta.rul_cap_hours.is_nan() || meta.rul_cap_hours <= 0.0 {
        return Err(file_err(
            "sequence_len and rul_cap_hours must be positive".into(),
        ));
    }
    Ok(meta)
}

impl FailureModel for OnnxFailureModel {
    fn feature_names(&self) -> &[String] {
        &self.meta.feature_names
    }

    fn sequence_len(&self) -> usize {
        self.meta.sequence_len
    }

    fn alert_thresholds(&self) -> [f64; 3] {
        self.meta.alert_thresholds
    }

    fn versions(&self) -> &BTreeMap<String, String> {
        &self.meta.versions
    }

    fn predict(
        &mut self,
        features: &[f64],
        history: &[f64],
        out: &mut FailureOutput,
    ) -> Result<(), ModelError> {
        let f = self.meta.feature_names.len();
        let k = self.meta.sequence_len;
        if features.len() != f || history.len() != k * f {
            return Err(ModelError::Input(format!(
                "got {} features and {} history values, expected {f} and {}",
                features.len(),
                history.len(),
                k * f
            )));
        }
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Input(format!(
                "feature {} is not finite",
                self.meta.feature_names[i]
            )));
        }
        // Row 0: the features; row 1 + i: feature i replaced by its reference (occlusion).
        self.batch.clear();
        self.batch.extend(features.iter().map(|&v| v as f32));
        for i in 0..f {
            let start = self.batch.len();
            self.batch.extend_from_within(0..f);
            self.batch[start + i] = self.meta.reference_values[i] as f32;
        }
        let mut probs = Vec::with_capacity(f + 1);
        self.run_classifier(0, 1, &mut probs)?;
        out.probability_1d = probs[0];
        self.run_classifier(2, 1, &mut probs)?;
        out.probability_7d = probs[0];
        self.run_classifier(1, f + 1, &mut probs)?;
        out.probability_3d = probs[0];
        out.contributions.clear();
        out.contributions
            .extend(probs[1..].iter().map(|&p_ref| probs[0] - p_ref));

        self.seq.clear();
        self.seq.extend(history.iter().map(|&v| v as f32));
        out.rul_hours = Some(self.run_rul()?);
        Ok(())
    }
}
