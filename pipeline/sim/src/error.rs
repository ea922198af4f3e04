//! The simulator's error type: everything that can go wrong is a bad configuration or image setup.

use std::path::PathBuf;

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
    /// The image library directory, its `labels.json` or a file it lists is not there; the
    /// caller's fault (wrong `image_library` path, or an incomplete library).
    #[error("image library: `{}` does not exist", path.display())]
    LibraryMissing { path: PathBuf },
    /// A library file exists but could not be read (permissions, I/O); an environment problem.
    #[error("image library: cannot read `{}`: {source}", path.display())]
    LibraryRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `labels.json` is not valid JSON of the expected shape; the library is broken.
    #[error("image library: malformed `{}`: {source}", path.display())]
    LibraryLabels {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// An entry of `labels.json` names a `type` that is neither `none` nor a `DefectLabel`.
    #[error(
        "image library: `{file}` has unknown type `{kind}` \
         (expected none, scratch, crack, hole, stain or contamination)"
    )]
    LibraryUnknownType { file: String, kind: String },
    /// A class has no image, so a part of that class could not be shown; every class needs one.
    #[error("image library `{}` has no `{class}` image; every class needs at least one", dir.display())]
    LibraryEmptyClass { dir: PathBuf, class: &'static str },
    /// A listed file does not start with the PNG signature, so it would be served under a wrong
    /// media type.
    #[error("image library: `{}` is not a PNG file", path.display())]
    LibraryNotPng { path: PathBuf },
}
