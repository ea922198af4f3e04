//! Predictive throughput on one core: feature updates per second (the tracker over a simulated
//! plant's events, window closes included) and model predictions per second (ONNX models when
//! `ORT_DYLIB_PATH` is set; the processor path with a constant model otherwise).
//!
//! `cargo bench -p twinline-processors --bench predictive`

#[path = "../tests/predictive_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use twinline_models::predictive::OnnxFailureModel;
use twinline_processors::predictive::{
    FailureModel, FailureOutput, FeatureConfig, FeatureError, FeatureTracker, ModelError,
    PredictiveConfig, PredictiveProcessor,
};
use twinline_processors::{Emitter, Event, Position, Processor};
use twinline_schemas::Payload;

fn events() -> Vec<(Position, i64, Payload)> {
    let mut v = Vec::new();
    common::drive(common::sim_config(3, 5, 1, 1_000), |item| {
        if let common::Item::Event(ev) = item {
            v.push((ev.position, ev.event_time, ev.payload.clone()));
        }
        Ok(())
    })
    .expect("sim");
    v
}

struct Constant {
    names: Vec<String>,
    versions: BTreeMap<String, String>,
}

impl FailureModel for Constant {
    fn feature_names(&self) -> &[String] {
        &self.names
    }
    fn sequence_len(&self) -> usize {
        16
    }
    fn alert_thresholds(&self) -> [f64; 3] {
        [0.9, 0.9, 0.9]
    }
    fn versions(&self) -> &BTreeMap<String, String> {
        &self.versions
    }
    fn predict(
        &mut self,
        x: &[f64],
        _h: &[f64],
        out: &mut FailureOutput,
    ) -> Result<(), ModelError> {
        out.probability_1d = 0.01;
        out.probability_3d = 0.02;
        out.probability_7d = 0.03;
        out.rul_hours = Some(500.0);
        out.contributions.clear();
        out.contributions.extend(x.iter().map(|v| v * 1e-3));
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    let evs = events();
    let readings = evs
        .iter()
        .filter(|e| matches!(e.2, Payload::SensorReading(_)))
        .count();
    let mut g = c.benchmark_group("predictive");
    g.sample_size(10);
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.bench_function(
        format!(
            "feature_updates ({} events, {readings} readings)",
            evs.len()
        ),
        |b| {
            b.iter(|| {
                let mut t = FeatureTracker::new(FeatureConfig::default()).expect("cfg");
                let mut rows = 0u64;
                for (_, time, p) in &evs {
                    t.on_event(*time, p, |_| {
                        rows += 1;
                        Ok::<(), FeatureError>(())
                    })
                    .expect("event");
                }
                black_box(rows)
            })
        },
    );
    let names = FeatureTracker::new(FeatureConfig::default())
        .expect("cfg")
        .feature_names()
        .to_vec();
    g.bench_function("processor_with_constant_model", |b| {
        b.iter(|| {
            let model = Constant {
                names: names.clone(),
                versions: BTreeMap::new(),
            };
            let mut p =
                PredictiveProcessor::new(PredictiveConfig::default(), Box::new(model)).expect("p");
            let mut em = Emitter::new();
            let mut n = 0usize;
            for (pos, t, payload) in &evs {
                let ev = Event {
                    position: *pos,
                    event_time: *t,
                    key: payload.key(),
                    payload,
                };
                p.on_event(&ev, &mut em).expect("event");
                n += em.drain().count();
            }
            black_box(n)
        })
    });
    match OnnxFailureModel::load(common::shipped_model_dir()) {
        Ok(mut model) => {
            let f = model.feature_names().len();
            let k = model.sequence_len();
            let x: Vec<f64> = model.meta().reference_values.clone();
            let hist: Vec<f64> = (0..k).flat_map(|_| x.iter().copied()).collect();
            let mut out = FailureOutput::default();
            g.throughput(Throughput::Elements(1));
            g.bench_function(
                format!("onnx_prediction ({f} features, K = {k}, with attributions)"),
                |b| {
                    b.iter(|| {
                        model
                            .predict(black_box(&x), &hist, &mut out)
                            .expect("predict");
                        black_box(out.probability_3d)
                    })
                },
            );
        }
        Err(e) => eprintln!("onnx_prediction skipped: {e}"),
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
