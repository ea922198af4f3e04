//! Drives the plant simulator through the twin and hands every event to a predictive consumer in
//! the order the runtime's partition task would (shared by the predictive tests, the export
//! example and the bench), and turns such a history into the training export's feature rows.
//!
//! Vision is replaced by a perfect inspector: each part `Image` becomes a `Defect` whose
//! `defect_detected` is the simulator's ground truth for that part.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use twinline_processors::predictive::{FeatureConfig, FeatureError, FeatureRow, FeatureTracker};
use twinline_processors::twin::{TwinConfig, TwinProcessor};
use twinline_processors::{Emitter, Event, EventTime, Position, Processor};
use twinline_schemas::{Defect, Payload, Topic};
use twinline_sim::{GroundTruth, SimConfig, Simulator};

/// What the consumer sees, in processing order.
pub enum Item<'a> {
    Event(&'a Event<'a>),
    /// The task watermark crossed a multiple of `tick_ms` (as the runtime calls `on_watermark`).
    Watermark(EventTime),
}

/// Watermark tick of the driver, as the runtime's default `watermark_tick_ms`.
pub const TICK_MS: i64 = 1_000;

/// The shipped predictive model (`models/predictive`). The package directory is cargo's value at
/// run time, which stays right when the binary was built from another checkout sharing the target
/// directory; the compile-time value otherwise.
pub fn shipped_model_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../models/predictive")
}

/// A simulator config for predictive work: coarse sensors and heartbeats, small images.
pub fn sim_config(seed: u64, machines: usize, days: u64, sensor_interval_ms: u64) -> SimConfig {
    SimConfig {
        machines,
        seed,
        duration_ms: days * 86_400_000,
        sensor_interval_ms,
        heartbeat_interval_ms: 60_000,
        image_size: 16,
        image_pool_size: 2,
        ..SimConfig::default()
    }
}

/// Runs the whole simulation; returns the simulator (for its ground truth).
pub fn drive(
    cfg: SimConfig,
    mut consumer: impl FnMut(Item<'_>) -> Result<(), String>,
) -> Result<Simulator, String> {
    let mut sim = Simulator::new(cfg).map_err(|e| e.to_string())?;
    let mut twin = TwinProcessor::new(TwinConfig::default()).map_err(|e| e.to_string())?;
    let mut emitter = Emitter::new();
    let mut batch = Vec::with_capacity(4096);
    let mut offsets: HashMap<Topic, u64> = HashMap::new();
    let mut origin = 0u64;
    let mut parts_seen = 0usize;
    let mut part_defects: HashMap<String, bool> = HashMap::new();
    let mut watermark = i64::MIN;
    let mut last_tick = i64::MIN;
    let mut derived: Vec<(Position, Payload)> = Vec::new();

    while sim.next_batch(4096, &mut batch) {
        // Part labels recorded since the last batch (the images of this batch among them).
        let parts = &sim.ground_truth().parts;
        for p in &parts[parts_seen..] {
            part_defects.insert(p.part_id.clone(), p.defect.is_some());
        }
        parts_seen = parts.len();

        for payload in batch.drain(..) {
            origin += 1;
            let t = payload.event_time();
            let input = match &payload {
                Payload::Image(img) => {
                    let detected = part_defects.remove(&img.part_id).unwrap_or(false);
                    Payload::Defect(Defect {
                        machine_id: img.machine_id.clone(),
                        part_id: img.part_id.clone(),
                        event_time: t,
                        defect_detected: detected,
                        defect_type: if detected { "scratch" } else { "none" }.into(),
                        confidence: 1.0,
                        model_name: "ground-truth".into(),
                        model_version: "sim".into(),
                        ..Defect::default()
                    })
                }
                Payload::SensorReading(_) | Payload::MachineEvent(_) => payload,
                _ => continue, // job events: neither twin nor predictive read them
            };
            let topic = input.topic();
            let position = next_position(topic, origin, &mut offsets);
            let event = Event {
                position,
                event_time: t,
                key: input.key(),
                payload: &input,
            };
            twin.on_event(&event, &mut emitter)
                .map_err(|e| e.to_string())?;
            consumer(Item::Event(&event))?;
            forward_twin_output(
                &mut emitter,
                &mut derived,
                origin,
                &mut offsets,
                &mut consumer,
            )?;
            if t > watermark {
                watermark = t;
                let tick = t.div_euclid(TICK_MS);
                if tick > last_tick {
                    last_tick = tick;
                    twin.on_watermark(tick * TICK_MS, &mut emitter)
                        .map_err(|e| e.to_string())?;
                    consumer(Item::Watermark(tick * TICK_MS))?;
                    forward_twin_output(
                        &mut emitter,
                        &mut derived,
                        origin,
                        &mut offsets,
                        &mut consumer,
                    )?;
                }
            }
        }
    }
    Ok(sim)
}

/// The next offset of `topic` in the harness's single-partition log.
fn next_position(topic: Topic, origin: u64, offsets: &mut HashMap<Topic, u64>) -> Position {
    let o = offsets.entry(topic).or_insert(0);
    let p = Position {
        topic,
        partition: 0,
        offset: *o,
        origin,
    };
    *o += 1;
    p
}

/// Hands what the twin just emitted to the consumer, each with its own log position.
fn forward_twin_output(
    emitter: &mut Emitter,
    derived: &mut Vec<(Position, Payload)>,
    origin: u64,
    offsets: &mut HashMap<Topic, u64>,
    consumer: &mut impl FnMut(Item<'_>) -> Result<(), String>,
) -> Result<(), String> {
    for e in emitter.drain() {
        derived.push((next_position(e.topic, origin, offsets), e.payload));
    }
    for (p, d) in derived.drain(..) {
        let ev = Event {
            position: p,
            event_time: d.event_time(),
            key: d.key(),
            payload: &d,
        };
        consumer(Item::Event(&ev))?;
    }
    Ok(())
}

/// Index of machine `id` (`M001` -> 0) in the ground truth.
pub fn machine_index(truth: &GroundTruth, id: &str) -> Option<usize> {
    truth.machines.iter().position(|m| m.machine_id == id)
}

/// One ready window close, as `examples/export_features.rs` writes it (before the labels).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub machine: String,
    /// Maintenances the machine had finished before the window (its life number).
    pub life: u64,
    pub window_end_ms: i64,
    pub features: Vec<f64>,
}

/// The training export's feature rows for the history `cfg` simulates: every event and watermark
/// of [`drive`] through the production [`FeatureTracker`] with the default [`FeatureConfig`], one
/// row per ready window close, in the order the tracker reports them. Also returns the simulator
/// (the labels come from its ground truth).
pub fn export_rows(cfg: SimConfig) -> Result<(Vec<ExportRow>, Simulator), String> {
    let mut tracker = FeatureTracker::new(FeatureConfig::default()).map_err(|e| e.to_string())?;
    let mut rows: Vec<ExportRow> = Vec::new();
    let mut push = |r: FeatureRow<'_>| -> Result<(), FeatureError> {
        rows.push(ExportRow {
            machine: r.machine_id.to_string(),
            life: r.life,
            window_end_ms: r.window_end_ms,
            features: r.features.to_vec(),
        });
        Ok(())
    };
    let sim = drive(cfg, |item| match item {
        Item::Event(ev) => tracker
            .on_event(ev.event_time, ev.payload, &mut push)
            .map_err(|e| e.to_string()),
        Item::Watermark(w) => tracker
            .on_watermark(w, &mut push)
            .map_err(|e| e.to_string()),
    })?;
    Ok((rows, sim))
}
