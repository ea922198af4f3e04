//! The simulator's error type: everything that can go wrong is a bad configuration or image setup.

use thiserror::Error;

/// Errors from building a simulator. Running it cannot fail once built.
#[derive(Debug, Error)]
pub enum SimError {
    /// The configuration is unusable; the caller's fault (fix the TOML).
    #[error("invalid simulator config `{field}`: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    /// The image source could not produce its images (an internal or environment problem).
    #[error("image source: {0}")]
    Image(String),
}
