//! The learned dispatching policy as a candidate scorer of the solver's dispatching environment:
//! the ONNX policy of `twinline-models` checked against, and fed by, `twinline_solver::dispatch`.

use std::path::Path;

use twinline_models::dispatch::{OnnxDispatchPolicy, PolicyMeta};
use twinline_models::ModelError;
use twinline_solver::dispatch::{CandidateScorer, FEATURE_NAMES};

/// The ONNX policy, scoring the environment's observations.
#[derive(Debug)]
pub struct PolicyScorer(OnnxDispatchPolicy);

impl PolicyScorer {
    /// Loads the policy in `dir` (`policy.onnx`, `policy.json`) with `threads` intra-op threads;
    /// refused when it was trained on other observations than this build's environment.
    pub fn load(dir: &Path, library: Option<&Path>, threads: usize) -> Result<Self, ModelError> {
        OnnxDispatchPolicy::load(dir, library, threads, &FEATURE_NAMES).map(PolicyScorer)
    }

    pub fn meta(&self) -> &PolicyMeta {
        self.0.meta()
    }
}

impl CandidateScorer for PolicyScorer {
    type Error = ModelError;

    fn score(
        &mut self,
        features: &[f32],
        mask: &[f32],
        batch: usize,
        width: usize,
        logits: &mut Vec<f32>,
    ) -> Result<(), ModelError> {
        self.0.score(features, mask, batch, width, logits)
    }
}
