//! The surface-defect model: image preprocessing (the exact contract of `models/vision/preprocess.py`),
//! the [`DefectModel`] interface the vision processor programs against, and its ONNX Runtime
//! implementation [`OnnxDefectModel`].
//!
//! # Contract (see `models/vision/MODEL_CARD.md`)
//! - input `image`: float32 `[N, 1, 64, 64]`, grey, `(u8 / 255 - 0.5) / 0.25`, row-major;
//! - outputs `class_probs` float32 `[N, 6]` (softmax, order [`CLASS_NAMES`]) and `bbox` float32
//!   `[N, 4]` = (x, y, w, h) normalised to the image, meaningful only when a defect is predicted.
//!
//! Preprocessing decodes PNG or JPEG with the `image` crate, converts to 8-bit luma with
//! `to_luma8`, and resizes to 64x64 with the triangle filter only when the size differs. The
//! Python training code reproduces these steps bit for bit (a test compares both on fixtures).
//!
//! With one intra-op thread the CPU kernels give every image the same output bits whatever batch
//! it is in (tested), so micro-batching never changes what the pipeline derives.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{GrayImage, ImageFormat, ImageReader, Limits};
use ort::session::Session;
use ort::value::TensorRef;

use crate::session::{environment, session_with, ModelError, Provider};

/// Side of the square model input, pixels.
pub const INPUT_SIZE: u32 = 64;
/// Values per preprocessed image.
pub const INPUT_LEN: usize = (INPUT_SIZE * INPUT_SIZE) as usize;
/// Normalisation: `x = (u8 / 255 - MEAN) / STD`.
pub const MEAN: f32 = 0.5;
pub const STD: f32 = 0.25;
/// Class order of `class_probs`; index 0 is "no defect". Equal to `Defect.defect_type` values.
pub const CLASS_NAMES: [&str; 6] = ["none", "scratch", "crack", "hole", "stain", "contamination"];

/// The largest image (either side, pixels) the decoder accepts; larger ones are bad input.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// The most memory one decode may allocate.
const MAX_DECODE_ALLOC: u64 = 256 << 20;

/// The model's answer for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DefectOutput {
    /// Index into [`CLASS_NAMES`] of the most probable class.
    pub class_id: usize,
    /// Probability of that class.
    pub confidence: f32,
    /// All class probabilities.
    pub probs: [f32; 6],
    /// (x, y, width, height) normalised 0..1; only meaningful when `class_id != 0`.
    pub bbox: [f32; 4],
}

impl DefectOutput {
    pub fn defect_detected(&self) -> bool {
        self.class_id != 0
    }

    pub fn defect_type(&self) -> &'static str {
        CLASS_NAMES[self.class_id]
    }

    /// The image-level defect score `1 - P(none)` (what the model card's AUROC ranks by).
    pub fn defect_score(&self) -> f32 {
        1.0 - self.probs[0]
    }
}

/// A defect model: a pure function of its input tensor (same input, same output bits).
pub trait DefectModel: Send {
    /// Model name, e.g. `defect-int8`.
    fn name(&self) -> &str;
    /// Model version (content hash of the model file).
    fn version(&self) -> &str;
    /// Runs `n` preprocessed images (`input.len() == n * INPUT_LEN`), replacing `out` with `n`
    /// answers in input order.
    fn infer(
        &mut self,
        input: &[f32],
        n: usize,
        out: &mut Vec<DefectOutput>,
    ) -> Result<(), ModelError>;
}

/// Media types the decoder accepts, by their IANA names.
pub fn format_of_media_type(media_type: &str) -> Option<ImageFormat> {
    match media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" | "image/jpg" => Some(ImageFormat::Jpeg),
        _ => None,
    }
}

/// Decodes PNG or JPEG bytes (the format is sniffed from the bytes) to 8-bit luma, with size and
/// memory limits. Errors are [`ModelError::Input`]: the image is bad, not the model.
pub fn decode_grey(bytes: &[u8]) -> Result<GrayImage, ModelError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ModelError::Input(format!("cannot read image: {e}")))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        Some(other) => {
            return Err(ModelError::Input(format!(
                "image format {other:?} is not supported (PNG or JPEG)"
            )))
        }
        None => {
            return Err(ModelError::Input(
                "not a PNG or JPEG image (unrecognised signature)".into(),
            ))
        }
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| ModelError::Input(format!("cannot decode image: {e}")))?;
    // `into_luma8` hands back an 8-bit grey buffer as it is (PNG from the plant cameras) and
    // converts anything else exactly as `to_luma8` does.
    Ok(img.into_luma8())
}

/// The model's 64x64 grey input for `bytes` (before normalisation): [`decode_grey`], then the
/// triangle-filter resize when the size differs.
pub fn model_grey(bytes: &[u8]) -> Result<GrayImage, ModelError> {
    let grey = decode_grey(bytes)?;
    if grey.dimensions() == (INPUT_SIZE, INPUT_SIZE) {
        Ok(grey)
    } else {
        Ok(image::imageops::resize(
            &grey,
            INPUT_SIZE,
            INPUT_SIZE,
            FilterType::Triangle,
        ))
    }
}

/// Writes the normalised tensor of a 64x64 grey image into `out` (`INPUT_LEN` values).
pub fn normalise_into(grey: &GrayImage, out: &mut [f32]) {
    debug_assert_eq!(grey.dimensions(), (INPUT_SIZE, INPUT_SIZE));
    for (o, &v) in out.iter_mut().zip(grey.as_raw()) {
        *o = (f32::from(v) / 255.0 - MEAN) / STD;
    }
}

/// Full preprocessing of one encoded image into `out` (`INPUT_LEN` values).
pub fn preprocess_into(bytes: &[u8], out: &mut [f32]) -> Result<(), ModelError> {
    if out.len() != INPUT_LEN {
        return Err(ModelError::Input(format!(
            "output buffer has {} values, expected {INPUT_LEN}",
            out.len()
        )));
    }
    let grey = model_grey(bytes)?;
    normalise_into(&grey, out);
    Ok(())
}

/// The ONNX Runtime implementation of [`DefectModel`] (`defect_fp32.onnx` or `defect_int8.onnx`).
pub struct OnnxDefectModel {
    session: Session,
    name: String,
    version: String,
    path: PathBuf,
}

impl std::fmt::Debug for OnnxDefectModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxDefectModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How to open a defect model.
#[derive(Debug, Clone)]
pub struct VisionModelOptions {
    /// `libonnxruntime.so`; `None` = `ORT_DYLIB_PATH`.
    pub library: Option<PathBuf>,
    pub provider: Provider,
    /// Intra-op threads; 1 keeps outputs independent of the batch (the pipeline's setting).
    pub intra_threads: usize,
}

impl Default for VisionModelOptions {
    fn default() -> Self {
        VisionModelOptions {
            library: None,
            provider: Provider::Cpu,
            intra_threads: 1,
        }
    }
}

/// The file name of a variant inside the vision model directory.
pub fn variant_file(variant: &str) -> Result<&'static str, ModelError> {
    match variant {
        "int8" => Ok("defect_int8.onnx"),
        "fp32" => Ok("defect_fp32.onnx"),
        other => Err(ModelError::Mismatch(format!(
            "vision model variant `{other}` is not one of int8, fp32"
        ))),
    }
}

impl OnnxDefectModel {
    /// Opens `dir/defect_<variant>.onnx` (`variant` = `int8` or `fp32`).
    pub fn load_variant(
        dir: &Path,
        variant: &str,
        options: &VisionModelOptions,
    ) -> Result<Self, ModelError> {
        Self::load(&dir.join(variant_file(variant)?), options)
    }

    /// Opens the model at `path` and checks its inputs and outputs against the contract.
    pub fn load(path: &Path, options: &VisionModelOptions) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let env = environment(options.library.as_deref())?;
        let session = session_with(&env, path, options.provider, options.intra_threads)?;
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if inputs != ["image"] {
            return Err(ModelError::Mismatch(format!(
                "{}: inputs {inputs:?}, expected [\"image\"]",
                path.display()
            )));
        }
        for want in ["class_probs", "bbox"] {
            if !session.outputs().iter().any(|o| o.name() == want) {
                return Err(ModelError::Mismatch(format!(
                    "{}: no `{want}` output",
                    path.display()
                )));
            }
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("defect")
            .replace('_', "-");
        Ok(OnnxDefectModel {
            session,
            name: stem,
            version: format!("crc32c-{:08x}", crc32c::crc32c(&bytes)),
            path: path.to_path_buf(),
        })
    }
}

impl DefectModel for OnnxDefectModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn infer(
        &mut self,
        input: &[f32],
        n: usize,
        out: &mut Vec<DefectOutput>,
    ) -> Result<(), ModelError> {
        out.clear();
        if n == 0 {
            return Ok(());
        }
        if input.len() != n * INPUT_LEN {
            return Err(ModelError::Input(format!(
                "{} input values for {n} images, expected {}",
                input.len(),
                n * INPUT_LEN
            )));
        }
        let s = INPUT_SIZE as usize;
        let tensor =
            TensorRef::from_array_view(([n, 1, s, s], input)).map_err(ModelError::runtime)?;
        let outputs = self
            .session
            .run(ort::inputs![tensor])
            .map_err(ModelError::runtime)?;
        let (pshape, probs) = outputs["class_probs"]
            .try_extract_tensor::<f32>()
            .map_err(ModelError::runtime)?;
        let (bshape, boxes) = outputs["bbox"]
            .try_extract_tensor::<f32>()
            .map_err(ModelError::runtime)?;
        if pshape.len() != 2 || pshape[0] as usize != n || pshape[1] != 6 {
            return Err(ModelError::Mismatch(format!(
                "class_probs shape {pshape:?}, expected [{n}, 6]"
            )));
        }
        if bshape.len() != 2 || bshape[0] as usize != n || bshape[1] != 4 {
            return Err(ModelError::Mismatch(format!(
                "bbox shape {bshape:?}, expected [{n}, 4]"
            )));
        }
        out.reserve(n);
        for i in 0..n {
            let mut p = [0f32; 6];
            p.copy_from_slice(&probs[6 * i..6 * i + 6]);
            let mut b = [0f32; 4];
            b.copy_from_slice(&boxes[4 * i..4 * i + 4]);
            // First maximum wins on ties, as numpy's argmax does in the evaluation scripts.
            let mut best = 0;
            for (k, &v) in p.iter().enumerate() {
                if v > p[best] {
                    best = k;
                }
            }
            out.push(DefectOutput {
                class_id: best,
                confidence: p[best],
                probs: p,
                bbox: b.map(|v| v.clamp(0.0, 1.0)),
            });
        }
        Ok(())
    }
}
