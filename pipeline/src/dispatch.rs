//! The learned dispatching policy (`<models.dir>/rl`) as the API's planner for
//! `POST /api/v1/scheduling/rl/predict`: one ONNX session shared by request threads.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use twinline_models::ModelError;
use twinline_processors::dispatch::PolicyScorer;
use twinline_queries::api::scheduling::{DispatchPlanner, PlanError};
use twinline_solver::dispatch::{policy_schedule, Decode, PolicyPlan};
use twinline_solver::Instance;

use crate::config::Config;

/// Plans with the ONNX policy; requests take turns on its session.
pub struct PolicyPlanner {
    policy: Mutex<PolicyScorer>,
    name: String,
    version: String,
}

impl PolicyPlanner {
    /// Opens the policy in `dir` with `threads` intra-op threads.
    pub fn load(dir: &Path, library: Option<&Path>, threads: usize) -> Result<Self, ModelError> {
        let policy = PolicyScorer::load(dir, library, threads)?;
        let (name, version) = (policy.meta().name.clone(), policy.meta().version.clone());
        Ok(PolicyPlanner {
            policy: Mutex::new(policy),
            name,
            version,
        })
    }

    /// The configured policy (`<models.dir>/rl`), or `None` with a warning when it cannot be
    /// loaded (the endpoint then answers 503; the rest of the API is unaffected).
    pub fn from_config(cfg: &Config) -> Option<Arc<dyn DispatchPlanner>> {
        let dir = cfg.models.policy_dir();
        match PolicyPlanner::load(&dir, cfg.models.library().as_deref(), 1) {
            Ok(p) => {
                tracing::info!(dir = %dir.display(), version = %p.version, "dispatching policy loaded");
                Some(Arc::new(p))
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "no dispatching policy: rl/predict will answer 503");
                None
            }
        }
    }
}

impl DispatchPlanner for PolicyPlanner {
    fn plan(&self, inst: &Instance, rollouts: usize, seed: u64) -> Result<PolicyPlan, PlanError> {
        let mut policy = self.policy.lock();
        policy_schedule(inst, &mut *policy, Decode::for_rollouts(rollouts, seed))
            .map_err(PlanError::Instance)?
            .map_err(|e| PlanError::Model(e.to_string()))
    }

    fn model(&self) -> (String, String) {
        (self.name.clone(), self.version.clone())
    }
}
