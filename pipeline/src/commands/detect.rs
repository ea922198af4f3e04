//! `twinline detect <image>`: runs the defect model on one image file and prints the same JSON
//! as `POST /api/v1/vision/detect` (without the pipeline fields), for scripts and quick checks.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use twinline_models::vision::{preprocess_into, DefectModel, OnnxDefectModel, INPUT_LEN};
use twinline_schemas::{BoundingBox, Defect};

use crate::config::Config;

/// Largest image file accepted (the API's request body limit).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// The PNG or JPEG file to inspect.
    pub image: PathBuf,
    /// Model variant, `int8` or `fp32` (default: `vision.variant` from the config).
    #[arg(long)]
    pub variant: Option<String>,
    /// An ONNX model file to use instead of `<models.dir>/vision/defect_<variant>.onnx`.
    #[arg(long)]
    pub model: Option<PathBuf>,
}

pub fn run(cfg: Config, args: DetectArgs) -> Result<()> {
    let meta = std::fs::metadata(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        bail!(
            "{} is {} bytes; the limit is {MAX_FILE_BYTES}",
            args.image.display(),
            meta.len()
        );
    }
    let data = std::fs::read(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    let options = cfg.models.vision_options()?;
    let mut model = match &args.model {
        Some(path) => OnnxDefectModel::load(path, &options),
        None => OnnxDefectModel::load_variant(
            &cfg.models.dir.join("vision"),
            args.variant.as_deref().unwrap_or(&cfg.vision.variant),
            &options,
        ),
    }
    .context("loading the defect model")?;
    let started = Instant::now();
    let mut input = vec![0f32; INPUT_LEN];
    preprocess_into(&data, &mut input)
        .with_context(|| format!("{} is not a readable image", args.image.display()))?;
    let mut out = Vec::with_capacity(1);
    model.infer(&input, 1, &mut out).context("inference")?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let a = out.first().context("the model returned no answer")?;
    let detected = a.defect_detected();
    let [x, y, w, h] = a.bbox;
    let defect = Defect {
        defect_detected: detected,
        defect_type: a.defect_type().to_string(),
        confidence: f64::from(a.confidence),
        bbox: detected.then(|| BoundingBox {
            x: f64::from(x),
            y: f64::from(y),
            width: f64::from(w),
            height: f64::from(h),
        }),
        model_name: model.name().to_string(),
        model_version: model.version().to_string(),
        ..Defect::default()
    };
    let body = twinline_queries::api::detect_json(&defect, Some(elapsed_ms));
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}
