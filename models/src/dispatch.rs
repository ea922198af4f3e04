//! The learned dispatching policy (`models/rl/policy.onnx`, trained by `models/rl/train.py`)
//! served through ONNX Runtime: scores for the candidate operations of a dispatching decision.
//!
//! The policy reads `features [B, K, F]` and `mask [B, K]` (float32, 1 = real candidate) and
//! returns `logits [B, K]`. `policy.json` beside it names the features; the caller says which
//! features its environment produces, and a model trained on other observations is refused at
//! load.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::TensorRef;
use serde::Deserialize;

use crate::session::{environment, session_with, ModelError, Provider};

/// File names inside the policy directory.
pub const POLICY_FILE: &str = "policy.onnx";
pub const POLICY_META_FILE: &str = "policy.json";

/// `policy.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct PolicyMeta {
    pub name: String,
    pub version: String,
    pub features: Vec<String>,
}

/// The ONNX dispatching policy.
pub struct OnnxDispatchPolicy {
    session: Session,
    /// Observation columns per candidate.
    features: usize,
    meta: PolicyMeta,
    path: PathBuf,
}

impl std::fmt::Debug for OnnxDispatchPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxDispatchPolicy")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl OnnxDispatchPolicy {
    /// Loads `dir/policy.onnx` and `dir/policy.json` on the CPU with `threads` intra-op threads
    /// (ONNX Runtime found through `library` or `ORT_DYLIB_PATH`); `features` are the names of
    /// the observation columns the caller will pass, which must be the ones it was trained on.
    pub fn load(
        dir: impl AsRef<Path>,
        library: Option<&Path>,
        threads: usize,
        features: &[&str],
    ) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        let meta_path = dir.join(POLICY_META_FILE);
        let text = std::fs::read_to_string(&meta_path).map_err(|e| ModelError::File {
            path: meta_path.clone(),
            reason: e.to_string(),
        })?;
        let meta: PolicyMeta = serde_json::from_str(&text).map_err(|e| ModelError::File {
            path: meta_path.clone(),
            reason: e.to_string(),
        })?;
        if meta.features.len() != features.len()
            || meta.features.iter().zip(features).any(|(a, b)| a != b)
        {
            return Err(ModelError::Mismatch(format!(
                "{} was trained on other observations ({} features) than this build's environment ({}); retrain with models/rl/train.py",
                meta_path.display(),
                meta.features.len(),
                features.len()
            )));
        }
        let env = environment(library)?;
        let path = dir.join(POLICY_FILE);
        let session = session_with(&env, &path, Provider::Cpu, threads)?;
        Ok(OnnxDispatchPolicy {
            session,
            features: features.len(),
            meta,
            path,
        })
    }

    pub fn meta(&self) -> &PolicyMeta {
        &self.meta
    }

    /// One logit per `(b, k)` of `batch` observations padded to `width` candidates
    /// (`features[b][k][f]` row-major, `mask[b][k]` = 1 for a real candidate), into `logits`.
    pub fn score(
        &mut self,
        features: &[f32],
        mask: &[f32],
        batch: usize,
        width: usize,
        logits: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        let n = self.features;
        if features.len() != batch * width * n || mask.len() != batch * width {
            return Err(ModelError::Input(format!(
                "observation of {} values and mask of {} for batch {batch} x width {width}",
                features.len(),
                mask.len()
            )));
        }
        let f = TensorRef::from_array_view(([batch, width, n], features))
            .map_err(ModelError::runtime)?;
        let m = TensorRef::from_array_view(([batch, width], mask)).map_err(ModelError::runtime)?;
        let outputs = self
            .session
            .run(ort::inputs!["features" => f, "mask" => m])
            .map_err(ModelError::runtime)?;
        let value = outputs
            .get("logits")
            .ok_or_else(|| ModelError::Mismatch(format!("{POLICY_FILE} has no `logits` output")))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(ModelError::runtime)?;
        if shape.len() != 2 || shape[0] as usize != batch || shape[1] as usize != width {
            return Err(ModelError::Mismatch(format!(
                "logits shape {shape:?}, expected [{batch}, {width}]"
            )));
        }
        // A NaN would silently make every choice the first or the last candidate.
        if let Some(i) = data.iter().position(|v| v.is_nan()) {
            return Err(ModelError::Mismatch(format!(
                "the policy returned NaN for candidate {} of row {}",
                i % width.max(1),
                i / width.max(1)
            )));
        }
        logits.clear();
        logits.extend_from_slice(data);
        Ok(())
    }
}
