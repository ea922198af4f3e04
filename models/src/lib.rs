//! Model loading and inference over ONNX Runtime sessions (`ort`, loaded dynamically), and the
//! model interfaces the processors program against.
//!
//! - [`session`]: the one process-wide ONNX Runtime environment and session construction
//!   (deterministic CPU settings), with errors instead of panics when the library is missing.
//! - [`dispatch`]: the learned dispatching policy ([`dispatch::OnnxDispatchPolicy`]): scores for
//!   the candidate operations of a dispatching decision.
//! - [`predictive`]: the failure-prediction model interface ([`predictive::FailureModel`]) and
//!   its ONNX implementation ([`predictive::OnnxFailureModel`]).
//! - [`vision`]: image preprocessing, the defect-model interface ([`vision::DefectModel`]) and its
//!   ONNX implementation ([`vision::OnnxDefectModel`]).

pub mod dispatch;
pub mod predictive;
pub mod session;
pub mod vision;

pub use session::{ModelError, Provider};
