//! `twinline bench --vision`: the defect model's figures, printed as a table.
//!
//! For each model variant (FP32, INT8), intra-op thread count and batch size:
//! - bare: a loop of `session.run` over preprocessed tensors (the baseline);
//! - processor: the vision processor over encoded PNG image events (decode, preprocess, batched
//!   inference, defect construction), as the pipeline runs it;
//!
//! images/s, p50/p99 per call (per batch) and the processor's throughput as a ratio to bare.
//! Images come from the simulator library (`<models.dir>/vision/simset`).

use std::time::Instant;

use anyhow::{Context, Result};
use twinline_models::vision::{
    preprocess_into, DefectModel, OnnxDefectModel, VisionModelOptions, INPUT_LEN,
};
use twinline_processors::vision::VisionProcessor;
use twinline_processors::{Emitter, Event, Position, Processor};
use twinline_schemas::{Image, Payload, Topic};

use crate::config::Config;

pub struct VisionBenchArgs {
    pub seconds: f64,
    pub batches: Vec<usize>,
    pub threads: Vec<usize>,
}

struct Row {
    variant: &'static str,
    threads: usize,
    batch: usize,
    bare_ips: f64,
    bare_p50: f64,
    bare_p99: f64,
    proc_ips: f64,
    proc_p50: f64,
    proc_p99: f64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Call times (ms) of `f` (one call over a batch) for about `seconds`.
fn time_calls(seconds: f64, times: &mut Vec<f64>, mut f: impl FnMut() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(())
}

/// images/s, p50 and p99 ms per call of `batch`-image calls timed in `times`.
fn summarise(times: &mut [f64], batch: usize) -> (f64, f64, f64) {
    let total_ms: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    (
        (times.len() * batch) as f64 / (total_ms / 1000.0),
        percentile(times, 0.5),
        percentile(times, 0.99),
    )
}

/// Slices of the measurement time per cell; bare and processor alternate slice by slice, so a
/// change in machine load hits both sides of the ratio alike.
const SLICES: usize = 6;

pub fn run(cfg: &Config, args: &VisionBenchArgs) -> Result<()> {
    let dir = cfg.models.dir.join("vision");
    let library = twinline_sim::LibraryImages::load(&dir.join("simset"))
        .context("loading the simulator image library")?;
    let files: Vec<Vec<u8>> = library.iter().map(|(_, img)| img.bytes.clone()).collect();
    anyhow::ensure!(!files.is_empty(), "the image library is empty");
    let max_batch = args.batches.iter().copied().max().unwrap_or(1);
    let payloads: Vec<Payload> = (0..max_batch)
        .map(|i| {
            Payload::Image(Image {
                machine_id: "M001".into(),
                part_id: format!("P{i}"),
                media_type: "image/png".into(),
                data: files[i % files.len()].clone(),
                event_time: 1_767_225_600_000 + i as i64,
                request_id: None,
            })
        })
        .collect();
    let mut tensor = vec![0f32; max_batch * INPUT_LEN];
    for (i, chunk) in tensor.chunks_mut(INPUT_LEN).enumerate() {
        preprocess_into(&files[i % files.len()], chunk)?;
    }
    let mut rows = Vec::new();
    for variant in ["fp32", "int8"] {
        for &threads in &args.threads {
            let options = VisionModelOptions {
                intra_threads: threads,
                ..cfg.models.vision_options()?
            };
            let mut bare = OnnxDefectModel::load_variant(&dir, variant, &options)
                .with_context(|| format!("loading the {variant} model"))?;
            let mut processor = VisionProcessor::new(
                Box::new(OnnxDefectModel::load_variant(&dir, variant, &options)?),
                max_batch,
            );
            for &batch in &args.batches {
                let mut out = Vec::with_capacity(batch);
                let x = &tensor[..batch * INPUT_LEN];
                let events: Vec<Event<'_>> = payloads[..batch]
                    .iter()
                    .enumerate()
                    .map(|(i, p)| Event {
                        position: Position {
                            topic: Topic::Images,
                            partition: 0,
                            offset: i as u64,
                            origin: i as u64,
                        },
                        event_time: p.event_time(),
                        key: "M001",
                        payload: p,
                    })
                    .collect();
                let mut emitter = Emitter::new();
                let mut run_bare = || -> Result<()> {
                    bare.infer(x, batch, &mut out)?;
                    Ok(())
                };
                let mut run_processor = || -> Result<()> {
                    processor
                        .prepare(&events)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    for e in &events {
                        processor
                            .on_event(e, &mut emitter)
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                    }
                    anyhow::ensure!(emitter.len() == batch, "one defect per image");
                    emitter.drain().for_each(drop);
                    Ok(())
                };
                // Warm-up, then alternating slices.
                for _ in 0..3 {
                    run_bare()?;
                    run_processor()?;
                }
                let (mut tb, mut tp) = (Vec::new(), Vec::new());
                let slice = args.seconds / SLICES as f64;
                for _ in 0..SLICES {
                    time_calls(slice, &mut tb, &mut run_bare)?;
                    time_calls(slice, &mut tp, &mut run_processor)?;
                }
                let (bare_ips, bare_p50, bare_p99) = summarise(&mut tb, batch);
                let (proc_ips, proc_p50, proc_p99) = summarise(&mut tp, batch);
                rows.push(Row {
                    variant,
                    threads,
                    batch,
                    bare_ips,
                    bare_p50,
                    bare_p99,
                    proc_ips,
                    proc_p50,
                    proc_p99,
                });
            }
        }
    }
    println!(
        "vision: defect model {}x{} grey, onnxruntime CPU, {} s per side per cell (bare and processor alternate); images from {}",
        twinline_models::vision::INPUT_SIZE,
        twinline_models::vision::INPUT_SIZE,
        args.seconds,
        dir.join("simset").display()
    );
    println!(
        "| model | threads | batch | bare images/s | bare p50 ms | bare p99 ms | processor images/s | processor p50 ms | processor p99 ms | processor / bare |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} | {:.2} |",
            r.variant,
            r.threads,
            r.batch,
            r.bare_ips,
            r.bare_p50,
            r.bare_p99,
            r.proc_ips,
            r.proc_p50,
            r.proc_p99,
            r.proc_ips / r.bare_ips
        );
    }
    for variant in ["fp32", "int8"] {
        if let Some(best) = rows
            .iter()
            .filter(|r| r.variant == variant)
            .max_by(|a, b| a.proc_ips.total_cmp(&b.proc_ips))
        {
            println!(
                "best {variant}: processor {:.0} images/s at batch {} with {} thread(s) ({:.2} of bare)",
                best.proc_ips,
                best.batch,
                best.threads,
                best.proc_ips / best.bare_ips
            );
        }
    }
    Ok(())
}
