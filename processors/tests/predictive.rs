//! Predictive processor tests without ONNX: features against a brute-force recomputation over the
//! raw readings, snapshot/restore equivalence, urgency boundaries, request lifecycle.

mod predictive_common;

use std::collections::BTreeMap;

use predictive_common::{drive, sim_config, Item};
use twinline_processors::predictive::features::stat_offset;
use twinline_processors::predictive::{
    assess, urgency_for, FailureModel, FailureOutput, FeatureConfig, FeatureRow, FeatureTracker,
    ModelError, PredictiveConfig, PredictiveProcessor, NUM_FEATURES,
};
use twinline_processors::{Emitted, Emitter, Event, Position, ProcessError, Processor};
use twinline_schemas::{
    MachineEvent, MachineEventKind, MaintenanceAction, Payload, SensorKind, SensorReading, Topic,
    Urgency,
};

const H: f64 = 3_600_000.0;

/// Everything a brute-force recomputation needs about one machine, in processing order.
#[derive(Default)]
struct Raw {
    /// (time, sensor index, value) since the last MAINTENANCE_FINISHED.
    readings: Vec<(i64, usize, f64)>,
    /// (time, defective) since the last MAINTENANCE_FINISHED.
    parts: Vec<(i64, bool)>,
    health: Option<f64>,
    cycles: u64,
    life_start: Option<i64>,
    up: bool,
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Two-pass mean, population std, least-squares slope per hour and max over `[t - w, t)`.
fn brute(raw: &Raw, sensor: usize, t: i64, w: i64) -> (usize, [f64; 4]) {
    let pts: Vec<(f64, f64)> = raw
        .readings
        .iter()
        .filter(|r| r.1 == sensor && r.0 >= t - w && r.0 < t)
        .map(|r| ((r.0 - t) as f64 / H, r.2))
        .collect();
    let n = pts.len();
    if n == 0 {
        return (0, [0.0; 4]);
    }
    let nf = n as f64;
    let mx = pts.iter().map(|p| p.1).sum::<f64>() / nf;
    let mt = pts.iter().map(|p| p.0).sum::<f64>() / nf;
    let var = pts.iter().map(|p| (p.1 - mx).powi(2)).sum::<f64>() / nf;
    let stt = pts.iter().map(|p| (p.0 - mt).powi(2)).sum::<f64>();
    let stx = pts.iter().map(|p| (p.0 - mt) * (p.1 - mx)).sum::<f64>();
    let slope = if n < 2 || stt <= 0.0 { 0.0 } else { stx / stt };
    let max = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    (n, [mx, var.sqrt(), slope, max])
}

fn check_row(raw: &Raw, cfg: &FeatureConfig, row: &FeatureRow<'_>) -> Result<(), String> {
    let t = row.window_end_ms;
    if !raw.up {
        return Err(format!(
            "{} reported a row at {t} while down",
            row.machine_id
        ));
    }
    for (wi, w) in [cfg.short_window_ms, cfg.long_window_ms]
        .into_iter()
        .enumerate()
    {
        for s in 0..4 {
            let (n, exp) = brute(raw, s, t, w);
            if wi == 0 && (n as u64) < cfg.min_readings {
                return Err(format!("row at {t} ready with {n} readings of sensor {s}"));
            }
            let o = stat_offset(wi, s);
            for (k, &want) in exp.iter().enumerate() {
                if !close(row.features[o + k], want) {
                    return Err(format!(
                        "{} at {t}: feature {o}+{k} (window {wi}, sensor {s}) = {} but brute force {}",
                        row.machine_id,
                        row.features[o + k],
                        want
                    ));
                }
            }
        }
        let (mut parts, mut defects) = (0u64, 0u64);
        for &(pt, d) in &raw.parts {
            if pt >= t - w && pt < t {
                parts += 1;
                defects += u64::from(d);
            }
        }
        let rate = if parts == 0 {
            0.0
        } else {
            defects as f64 / parts as f64
        };
        let got = row.features[stat_offset(2, 0) + wi];
        if !close(got, rate) {
            return Err(format!("defect rate window {wi} at {t}: {got} vs {rate}"));
        }
    }
    let b = stat_offset(2, 0);
    let hours = (t - raw.life_start.unwrap_or(t)) as f64 / H;
    let expect = [raw.health.unwrap_or(1.0), raw.cycles as f64, hours];
    for (k, e) in expect.into_iter().enumerate() {
        if !close(row.features[b + 2 + k], e) {
            return Err(format!(
                "feature {} at {t}: {} vs {e}",
                b + 2 + k,
                row.features[b + 2 + k]
            ));
        }
    }
    // The history ends with the row itself.
    let f = NUM_FEATURES;
    if row.history[row.history.len() - f..] != *row.features {
        return Err("history does not end with the row".into());
    }
    Ok(())
}

fn record(raw: &mut BTreeMap<String, Raw>, ev: &Event<'_>) {
    let t = ev.event_time;
    let r = raw.entry(ev.key.to_string()).or_insert_with(|| Raw {
        up: true,
        life_start: Some(t),
        ..Raw::default()
    });
    match ev.payload {
        Payload::SensorReading(s) => {
            let i = SensorKind::ALL
                .iter()
                .position(|k| *k == s.sensor)
                .unwrap_or(0);
            r.readings.push((t, i, s.value));
        }
        Payload::Defect(d) => r.parts.push((t, d.defect_detected)),
        Payload::TwinState(s) => r.health = Some(s.health_score),
        Payload::MachineEvent(e) => match e.kind {
            MachineEventKind::CycleCompleted => r.cycles += 1,
            MachineEventKind::Fault | MachineEventKind::MaintenanceStarted => r.up = false,
            MachineEventKind::MaintenanceFinished => {
                *r = Raw {
                    up: true,
                    life_start: Some(t),
                    ..Raw::default()
                };
            }
            MachineEventKind::Heartbeat => {}
        },
        _ => {}
    }
}

/// The simulator's history (with failures and maintenance) through the tracker, every ready row
/// compared with a recomputation from the raw events.
#[test]
fn features_equal_brute_force_recomputation() {
    let cfg = FeatureConfig::default();
    let mut tracker = FeatureTracker::new(cfg.clone()).expect("config");
    let mut raw: BTreeMap<String, Raw> = BTreeMap::new();
    let mut rows = 0usize;
    let mut lives = 0u64;
    let sim_cfg = sim_config(11, 2, 6, 20_000);
    drive(sim_cfg, |item| {
        let mut check = |row: FeatureRow<'_>| -> Result<(), StringErr> {
            rows += 1;
            lives = lives.max(row.life);
            let r = raw
                .get(row.machine_id)
                .ok_or(StringErr("row for an unseen machine".into()))?;
            check_row(r, &cfg, &row).map_err(StringErr)
        };
        match item {
            Item::Event(ev) => {
                tracker
                    .on_event(ev.event_time, ev.payload, &mut check)
                    .map_err(|e| e.0)?;
                record(&mut raw, ev);
                Ok(())
            }
            Item::Watermark(w) => tracker.on_watermark(w, &mut check).map_err(|e| e.0),
        }
    })
    .expect("run");
    // 2 machines x 6 days x 96 closes, minus down time.
    assert!(rows > 800, "only {rows} rows");
    assert!(lives >= 1, "the history should cross a maintenance");
}

impl From<twinline_processors::predictive::FeatureError> for StringErr {
    fn from(e: twinline_processors::predictive::FeatureError) -> Self {
        StringErr(e.to_string())
    }
}
struct StringErr(String);

/// A deterministic stand-in: risk grows with hours since maintenance and vibration.
struct FakeModel {
    names: Vec<String>,
    versions: BTreeMap<String, String>,
    /// Hours since maintenance at which p1d crosses 0.5.
    critical_after_hours: f64,
}

impl FakeModel {
    fn new(critical_after_hours: f64) -> Self {
        let names = FeatureTracker::new(FeatureConfig::default())
            .expect("cfg")
            .feature_names()
            .to_vec();
        let versions = BTreeMap::from([("fake".to_string(), "1".to_string())]);
        FakeModel {
            names,
            versions,
            critical_after_hours,
        }
    }
}

impl FailureModel for FakeModel {
    fn feature_names(&self) -> &[String] {
        &self.names
    }
    fn sequence_len(&self) -> usize {
        4
    }
    fn alert_thresholds(&self) -> [f64; 3] {
        [0.5, 0.5, 0.5]
    }
    fn versions(&self) -> &BTreeMap<String, String> {
        &self.versions
    }
    fn predict(
        &mut self,
        x: &[f64],
        history: &[f64],
        out: &mut FailureOutput,
    ) -> Result<(), ModelError> {
        if history.len() != 4 * x.len() {
            return Err(ModelError::Input("history length".into()));
        }
        let hours = x[NUM_FEATURES - 1];
        let vib = x[stat_offset(0, 1)];
        let z = (hours - self.critical_after_hours) / 2.0;
        out.probability_1d = 1.0 / (1.0 + (-z).exp());
        out.probability_3d = 1.0 / (1.0 + (-(z + 1.0)).exp());
        out.probability_7d = 1.0 / (1.0 + (-(z + 2.0)).exp());
        // The oldest history row must matter so restore bugs in the history show up.
        out.rul_hours = Some((self.critical_after_hours - hours).max(0.0) + history[0] * 1e-6);
        out.contributions = x.iter().map(|v| v * 1e-3).collect();
        out.contributions[stat_offset(0, 1)] = vib;
        Ok(())
    }
}

fn collect_events(seed: u64, machines: usize, days: u64) -> Vec<(Position, i64, Payload)> {
    let mut events = Vec::new();
    drive(sim_config(seed, machines, days, 30_000), |item| {
        if let Item::Event(ev) = item {
            events.push((ev.position, ev.event_time, ev.payload.clone()));
        }
        Ok(())
    })
    .expect("run");
    events
}

fn run(p: &mut PredictiveProcessor, events: &[(Position, i64, Payload)], out: &mut Vec<Emitted>) {
    let mut em = Emitter::new();
    let mut wm = i64::MIN;
    for (pos, t, payload) in events {
        let ev = Event {
            position: *pos,
            event_time: *t,
            key: payload.key(),
            payload,
        };
        p.on_event(&ev, &mut em).expect("event");
        out.extend(em.drain());
        if *t > wm {
            wm = *t;
            p.on_watermark(wm, &mut em).expect("watermark");
            out.extend(em.drain());
        }
    }
}

#[test]
fn snapshot_restore_mid_stream_equals_uninterrupted_run() {
    let events = collect_events(5, 3, 5);
    let new = || {
        PredictiveProcessor::new(PredictiveConfig::default(), Box::new(FakeModel::new(30.0)))
            .expect("new")
    };
    let mut whole = Vec::new();
    run(&mut new(), &events, &mut whole);
    let predictions = whole
        .iter()
        .filter(|e| e.topic == Topic::FailurePredictions)
        .count();
    let requests = whole
        .iter()
        .filter(|e| e.topic == Topic::MaintenanceRequests)
        .count();
    assert!(
        predictions > 500 && requests >= 2,
        "{predictions} predictions, {requests} requests"
    );

    for cut in [events.len() / 3, events.len() / 2 + 7] {
        let mut first = new();
        let mut out = Vec::new();
        run(&mut first, &events[..cut], &mut out);
        let bytes = first.snapshot().expect("snapshot");
        drop(first);
        let mut second = new();
        second.restore(&bytes).expect("restore");
        // The watermark restarts with the next event, as after a recovery.
        run(&mut second, &events[cut..], &mut out);
        assert_eq!(out.len(), whole.len(), "cut at {cut}");
        assert!(out == whole, "restored run differs (cut at {cut})");
        assert_eq!(second.snapshot().expect("snap"), {
            let mut p = new();
            run(&mut p, &events, &mut Vec::new());
            p.snapshot().expect("snap")
        });
    }
}

#[test]
fn urgency_boundaries() {
    assert_eq!(urgency_for(0.0), Urgency::Critical);
    assert_eq!(urgency_for(23.999), Urgency::Critical);
    assert_eq!(urgency_for(24.0), Urgency::High);
    assert_eq!(urgency_for(71.999), Urgency::High);
    assert_eq!(urgency_for(72.0), Urgency::Medium);
    assert_eq!(urgency_for(167.999), Urgency::Medium);
    assert_eq!(urgency_for(168.0), Urgency::Low);
    assert_eq!(urgency_for(1e9), Urgency::Low);

    let thr = [0.6, 0.5, 0.4];
    let out = |p1: f64, p3: f64, p7: f64, rul: Option<f64>| FailureOutput {
        probability_1d: p1,
        probability_3d: p3,
        probability_7d: p7,
        rul_hours: rul,
        contributions: vec![],
    };
    // Classifier bands decide the urgency; RUL is clamped into the band.
    let a = assess(&out(0.6, 0.1, 0.0, Some(500.0)), thr, 1440.0);
    assert_eq!(a.urgency, Urgency::Critical);
    assert!(a.time_to_failure_hours < 24.0 && a.probability_3d == 0.6 && a.probability_7d == 0.6);
    let a = assess(&out(0.59, 0.5, 0.0, Some(3.0)), thr, 1440.0);
    assert_eq!((a.urgency, a.time_to_failure_hours), (Urgency::High, 24.0));
    let a = assess(&out(0.0, 0.49, 0.4, Some(100.0)), thr, 1440.0);
    assert_eq!(
        (a.urgency, a.time_to_failure_hours),
        (Urgency::Medium, 100.0)
    );
    let a = assess(&out(0.0, 0.0, 0.39, Some(5000.0)), thr, 1440.0);
    assert_eq!((a.urgency, a.time_to_failure_hours), (Urgency::Low, 1440.0));
    let a = assess(&out(0.0, 0.0, 0.39, None), thr, 1440.0);
    assert_eq!(a.urgency, Urgency::Low);
}

fn reading(m: &str, sensor: SensorKind, value: f64, t: i64) -> Payload {
    Payload::SensorReading(SensorReading {
        machine_id: m.into(),
        sensor,
        value,
        unit: String::new(),
        event_time: t,
    })
}

#[test]
fn one_open_request_per_machine_closed_by_maintenance() {
    // p1d > 0.5 from 1 h after the machine is first seen: CRITICAL at every window after that.
    let mut p =
        PredictiveProcessor::new(PredictiveConfig::default(), Box::new(FakeModel::new(1.0)))
            .expect("new");
    let t0 = 1_767_225_600_000i64;
    let mut offset = 0u64;
    let mut outs: Vec<(Position, Emitted)> = Vec::new();
    let mut feed = |p: &mut PredictiveProcessor, payload: Payload| -> Result<(), ProcessError> {
        offset += 1;
        let topic = payload.topic();
        let pos = Position {
            topic,
            partition: 3,
            offset,
            origin: offset,
        };
        let t = payload.event_time();
        let mut em = Emitter::new();
        p.on_event(
            &Event {
                position: pos,
                event_time: t,
                key: payload.key(),
                payload: &payload,
            },
            &mut em,
        )?;
        outs.extend(em.drain().map(|e| (pos, e)));
        Ok(())
    };
    let sensors =
        |p: &mut PredictiveProcessor,
         feed: &mut dyn FnMut(&mut PredictiveProcessor, Payload) -> Result<(), ProcessError>,
         from: i64,
         to: i64| {
            let mut t = from;
            while t < to {
                for (i, s) in SensorKind::ALL.into_iter().enumerate() {
                    feed(p, reading("M1", s, 10.0 * i as f64 + (t % 7) as f64, t))
                        .expect("reading");
                }
                t += 60_000;
            }
        };
    sensors(&mut p, &mut feed, t0, t0 + 4 * 3_600_000);
    let me = |kind, t| Payload::MachineEvent(MachineEvent::new("M1", kind, t));
    feed(
        &mut p,
        me(MachineEventKind::MaintenanceStarted, t0 + 4 * 3_600_000),
    )
    .expect("ms");
    sensors(
        &mut p,
        &mut feed,
        t0 + 4 * 3_600_000 + 1,
        t0 + 5 * 3_600_000,
    );
    feed(
        &mut p,
        me(MachineEventKind::MaintenanceFinished, t0 + 5 * 3_600_000),
    )
    .expect("mf");
    sensors(&mut p, &mut feed, t0 + 5 * 3_600_000, t0 + 8 * 3_600_000);

    let requests: Vec<_> = outs
        .iter()
        .filter_map(|(pos, e)| match &e.payload {
            Payload::MaintenanceRequest(r) => Some((pos, r.clone())),
            _ => None,
        })
        .collect();
    let actions: Vec<_> = requests
        .iter()
        .map(|(_, r)| (r.action, r.request_id.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            (MaintenanceAction::Open, "MR-M1-1"),
            (MaintenanceAction::Close, "MR-M1-1"),
            (MaintenanceAction::Open, "MR-M1-2"),
        ]
    );
    assert_eq!(p.open_request("M1"), Some("MR-M1-2"));
    // Many CRITICAL predictions, never a second OPEN while one is open.
    let critical = outs
        .iter()
        .filter(|(_, e)| matches!(&e.payload, Payload::FailurePrediction(f) if f.urgency == Urgency::Critical))
        .count();
    assert!(critical >= 8, "{critical} critical predictions");
    // The OPEN names the prediction emitted by the same event, by the runtime's id rule.
    let (pos, open) = &requests[0];
    let expect = format!(
        "failure-predictions:{}/{}/{}/0",
        pos.topic.name(),
        pos.partition,
        pos.offset
    );
    assert_eq!(open.prediction_event_id.as_deref(), Some(expect.as_str()));
    assert!(outs
        .iter()
        .any(|(p2, e)| p2 == *pos && e.topic == Topic::FailurePredictions));
    // No prediction while the machine is in maintenance.
    let (ms, mf) = (t0 + 4 * 3_600_000, t0 + 5 * 3_600_000);
    assert!(!outs.iter().any(|(_, e)| matches!(&e.payload,
        Payload::FailurePrediction(f) if f.event_time > ms && f.event_time <= mf)));
}

#[test]
fn model_with_other_features_is_rejected() {
    let mut m = FakeModel::new(1.0);
    m.names.swap(0, 1);
    assert!(PredictiveProcessor::new(PredictiveConfig::default(), Box::new(m)).is_err());
}
