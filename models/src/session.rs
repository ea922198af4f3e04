//! The process-wide ONNX Runtime environment and deterministic CPU session construction.
//!
//! `ort` is built with `load-dynamic`: the ONNX Runtime shared library is found at run time, from
//! an explicit path or from the `ORT_DYLIB_PATH` environment variable. `ort::init()` panics when
//! the library is missing, so everything here goes through `ort::init_from(path)`, which returns
//! an error; a missing library is a [`ModelError::RuntimeMissing`] the caller can act on (the
//! pipeline skips model-backed processors with a warning).
//!
//! Sessions run on one intra-op thread with sequential execution: ONNX Runtime's CPU kernels are
//! then deterministic (same input, same output bits), which replays depend on, and the runtime
//! already gives every task its own thread.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;

/// The environment variable naming the ONNX Runtime shared library.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No ONNX Runtime library configured or found (external: install it or set `ORT_DYLIB_PATH`).
    #[error("ONNX Runtime library not available: {0}")]
    RuntimeMissing(String),
    /// A model file or its metadata is missing or unreadable.
    #[error("model file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// The model files do not match what the caller expects (feature names, shapes, outputs).
    #[error("model mismatch: {0}")]
    Mismatch(String),
    /// The caller passed inputs of the wrong shape or with non-finite values.
    #[error("bad model input: {0}")]
    Input(String),
    /// ONNX Runtime failed to build a session or to run it.
    #[error("onnx runtime: {0}")]
    Runtime(String),
}

impl ModelError {
    pub(crate) fn runtime(e: impl std::fmt::Display) -> Self {
        ModelError::Runtime(e.to_string())
    }
}

/// The library path: `explicit` if given, else `ORT_DYLIB_PATH`.
pub fn ort_library_path(explicit: Option<&Path>) -> Result<PathBuf, ModelError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    match std::env::var_os(ORT_DYLIB_ENV) {
        Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
        _ => Err(ModelError::RuntimeMissing(format!(
            "{ORT_DYLIB_ENV} is not set and no library path is configured \
             (point it at libonnxruntime.so.1.31.x, e.g. from the onnxruntime==1.31.1 wheel)"
        ))),
    }
}

/// The ONNX Runtime library that the PyPI `onnxruntime` wheel installed into the Python virtual
/// environment `venv` (`lib/python3.*/site-packages/onnxruntime/capi/libonnxruntime.so*`), if any.
/// The project's scripts install it into `.venv` and pass it on as `ORT_DYLIB_PATH`; tests run
/// without them look here.
pub fn ort_library_in_venv(venv: &Path) -> Option<PathBuf> {
    let pythons = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = pythons
        .flatten()
        .map(|d| d.path().join("site-packages/onnxruntime/capi"))
        .filter_map(|capi| std::fs::read_dir(capi).ok())
        .flat_map(|files| files.flatten().map(|f| f.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    // Directory order is arbitrary: the same venv gives the same answer every time.
    found.sort();
    found.into_iter().next()
}

/// The library a run without configuration uses: `ORT_DYLIB_PATH` if set, else the wheel's library
/// in `venv` ([`ort_library_in_venv`]). For tests, which run with or without the project's scripts.
pub fn ort_library_or_venv(venv: &Path) -> Option<PathBuf> {
    ort_library_path(None)
        .ok()
        .or_else(|| ort_library_in_venv(venv))
}

// The library can be loaded once per process; the environment is shared by every session. A
// failed attempt is not cached so that a later call with a corrected path can succeed.
static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// The shared ONNX Runtime environment, loading the library on first use (see
/// [`ort_library_path`] for where it is looked up). Never panics.
pub fn environment(library: Option<&Path>) -> Result<Environment, ModelError> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env.clone());
    }
    // A poisoned lock only means another thread panicked while loading; loading is idempotent.
    let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env.clone());
    }
    let path = ort_library_path(library)?;
    if !path.is_file() {
        return Err(ModelError::RuntimeMissing(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let builder = ort::init_from(&path)
        .map_err(|e| ModelError::RuntimeMissing(format!("{}: {e}", path.display())))?;
    let env = builder
        .with_name("twinline")
        .build()
        .map_err(ModelError::runtime)?;
    Ok(ENVIRONMENT.get_or_init(|| env).clone())
}

/// Where a session runs its kernels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// ONNX Runtime's CPU kernels (always available; deterministic with one intra-op thread).
    #[default]
    Cpu,
    /// NVIDIA CUDA; needs a GPU build of ONNX Runtime (`onnxruntime-gpu`) and the CUDA libraries.
    Cuda,
    /// NVIDIA TensorRT; needs a GPU build of ONNX Runtime with TensorRT.
    Tensorrt,
}

impl std::str::FromStr for Provider {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            "tensorrt" => Ok(Provider::Tensorrt),
            other => Err(ModelError::Mismatch(format!(
                "execution provider `{other}` is not one of cpu, cuda, tensorrt"
            ))),
        }
    }
}

/// Opens `path` as a deterministic CPU session (one intra-op thread, sequential execution).
pub fn cpu_session(env: &Environment, path: &Path) -> Result<Session, ModelError> {
    session_with(env, path, Provider::Cpu, 1)
}

/// Opens `path` on `provider` with `intra_threads` intra-op threads and sequential execution.
/// A GPU provider that cannot be registered (CPU-only library, no device) is an error, not a
/// silent fall-back to the CPU: the operator asked for it.
pub fn session_with(
    env: &Environment,
    path: &Path,
    provider: Provider,
    intra_threads: usize,
) -> Result<Session, ModelError> {
    if !path.is_file() {
        return Err(ModelError::File {
            path: path.to_path_buf(),
            reason: "not found".into(),
        });
    }
    let builder = Session::builder(env).map_err(ModelError::runtime)?;
    let builder = builder
        .with_intra_threads(intra_threads.max(1))
        .map_err(ModelError::runtime)?;
    let builder = builder.with_inter_threads(1).map_err(ModelError::runtime)?;
    let builder = builder
        .with_parallel_execution(false)
        .map_err(ModelError::runtime)?;
    let ep = match provider {
        Provider::Cpu => None,
        Provider::Cuda => Some(ort::ep::CUDA::default().build().error_on_failure()),
        Provider::Tensorrt => Some(ort::ep::TensorRT::default().build().error_on_failure()),
    };
    let mut builder = match ep {
        None => builder,
        Some(ep) => builder.with_execution_providers([ep]).map_err(|e| {
            ModelError::Runtime(format!(
                "execution provider {provider:?} cannot be used with this ONNX Runtime library: {e}"
            ))
        })?,
    };
    builder
        .commit_from_file(path)
        .map_err(|e| ModelError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wheel_library_is_found_in_a_venv_and_nothing_elsewhere() {
        let venv = tempfile::tempdir().unwrap();
        assert_eq!(ort_library_in_venv(venv.path()), None);
        let capi = venv
            .path()
            .join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("onnxruntime_pybind11_state.so"), b"").unwrap();
        assert_eq!(ort_library_in_venv(venv.path()), None);
        std::fs::write(capi.join("libonnxruntime.so.1.31.1"), b"").unwrap();
        assert_eq!(
            ort_library_in_venv(venv.path()),
            Some(capi.join("libonnxruntime.so.1.31.1"))
        );
    }
}
