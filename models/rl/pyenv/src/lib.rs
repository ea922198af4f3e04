//! Python binding of the dispatching environment (`twinline_solver::dispatch`): batches of
//! environments stepped together, observations as raw little-endian `float32` bytes for
//! `numpy.frombuffer`, so that the training loop never reimplements the dynamics.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use twinline_solver::dispatch::{
    random_instance, DispatchEnv, DispatchRule, EnvBatch, FEATURE_NAMES, N_FEATURES,
};
use twinline_solver::{parse_orlib, Instance};

fn bytes_of(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Environments over `instances`, `copies` rollouts of each (consecutive), stepped together.
#[pyclass(unsendable)]
struct Batch {
    inner: EnvBatch,
    instances: Vec<Instance>,
    copies: usize,
    initial: Vec<f64>,
}

impl Batch {
    fn build(instances: Vec<Instance>, copies: usize) -> PyResult<Batch> {
        let copies = copies.max(1);
        let mut envs = Vec::with_capacity(instances.len() * copies);
        for inst in &instances {
            for _ in 0..copies {
                envs.push(
                    DispatchEnv::new(inst).map_err(|e| PyValueError::new_err(e.to_string()))?,
                );
            }
        }
        let initial = envs.iter_mut().map(DispatchEnv::take_reward).collect();
        Ok(Batch {
            inner: EnvBatch::new(envs),
            instances,
            copies,
            initial,
        })
    }
}

#[pymethods]
impl Batch {
    /// `count` random Taillard-style instances of `jobs` x `machines` (durations 1..=99) drawn from
    /// `seed`, `copies` environments each.
    #[staticmethod]
    fn random(
        jobs: usize,
        machines: usize,
        count: usize,
        copies: usize,
        seed: u64,
    ) -> PyResult<Batch> {
        let instances = (0..count)
            .map(|i| {
                random_instance(
                    jobs,
                    machines,
                    99,
                    seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                )
            })
            .collect();
        Batch::build(instances, copies)
    }

    /// Instances in the OR-Library job-shop format, `copies` environments each.
    #[staticmethod]
    fn from_orlib(texts: Vec<String>, copies: usize) -> PyResult<Batch> {
        let instances = texts
            .iter()
            .map(|t| parse_orlib(t).map_err(|e| PyValueError::new_err(e.to_string())))
            .collect::<PyResult<Vec<_>>>()?;
        Batch::build(instances, copies)
    }

    fn __len__(&self) -> usize {
        self.inner.envs.len()
    }

    #[getter]
    fn copies(&self) -> usize {
        self.copies
    }

    /// Reward each environment collected before its first decision (single-candidate steps).
    fn initial_rewards(&self) -> Vec<f64> {
        self.initial.clone()
    }

    /// `(features bytes [B, K, F] float32, mask bytes [B, K] float32, K)`.
    fn observe<'py>(
        &mut self,
        py: Python<'py>,
    ) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>, usize) {
        self.inner.observe();
        (
            PyBytes::new(py, &bytes_of(&self.inner.features)),
            PyBytes::new(py, &bytes_of(&self.inner.mask)),
            self.inner.width,
        )
    }

    /// Takes candidate `actions[b]` in every unfinished environment; returns the rewards.
    fn step(&mut self, actions: Vec<usize>) -> PyResult<Vec<f64>> {
        if actions.len() != self.inner.envs.len() {
            return Err(PyValueError::new_err(format!(
                "{} actions for {} environments",
                actions.len(),
                self.inner.envs.len()
            )));
        }
        let mut out = Vec::with_capacity(actions.len());
        for (env, &a) in self.inner.envs.iter_mut().zip(&actions) {
            if env.done() {
                out.push(0.0);
                continue;
            }
            if a >= env.candidates().len() {
                return Err(PyValueError::new_err(format!(
                    "action {a} out of range ({} candidates)",
                    env.candidates().len()
                )));
            }
            out.push(env.step(a));
        }
        Ok(out)
    }

    fn done(&self) -> Vec<bool> {
        self.inner.envs.iter().map(DispatchEnv::done).collect()
    }

    fn all_done(&self) -> bool {
        self.inner.all_done()
    }

    fn makespans(&self) -> Vec<i64> {
        self.inner.envs.iter().map(DispatchEnv::makespan).collect()
    }

    fn lower_bounds(&self) -> Vec<i64> {
        self.inner
            .envs
            .iter()
            .map(DispatchEnv::initial_lower_bound)
            .collect()
    }

    /// Makespan of each instance under a classic rule (SPT, MWKR, MOPNR, FDD/MWKR).
    fn rule_makespans(&self, rule: &str) -> PyResult<Vec<i64>> {
        let r = DispatchRule::parse(rule)
            .ok_or_else(|| PyValueError::new_err(format!("unknown rule {rule}")))?;
        self.instances
            .iter()
            .map(|i| {
                twinline_solver::dispatch::rule_schedule(i, r)
                    .map(|(_, mk)| mk)
                    .map_err(|e| PyValueError::new_err(e.to_string()))
            })
            .collect()
    }
}

#[pymodule]
fn twinline_rl_env(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("N_FEATURES", N_FEATURES)?;
    m.add("FEATURE_NAMES", FEATURE_NAMES.to_vec())?;
    m.add_class::<Batch>()?;
    Ok(())
}
