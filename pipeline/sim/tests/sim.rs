//! Oracles for the simulator: determinism, time order, exact reading counts against the ground
//! truth, run-to-failure behaviour and its sensor signatures, job-event consistency, images
//! (procedural and from the labelled library).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use rand::RngCore;
use twinline_schemas::{JobEventKind, MachineEventKind, Payload, SensorKind};
use twinline_sim::{
    DefectLabel, DefectParams, FailureMode, ImageSource, LibraryImages, MaintenanceKind, SimConfig,
    SimError, Simulator, Span, TrajectoryEnd, WearParams,
};

const HOUR: u64 = 3_600_000;

fn small(seed: u64) -> SimConfig {
    SimConfig {
        machines: 5,
        seed,
        duration_ms: 3 * HOUR,
        sensor_interval_ms: 5_000,
        // Enough disturbance in 3 hours to exercise faults, silences and cancellations.
        fault_rate_per_hour: 0.1,
        silence_rate_per_day: 6.0,
        cancel_probability: 0.2,
        ..SimConfig::default()
    }
}

fn run(cfg: SimConfig) -> (Vec<Payload>, Simulator) {
    let mut sim = Simulator::new(cfg).expect("valid config");
    let mut all = Vec::new();
    let mut batch = Vec::new();
    while sim.next_batch(777, &mut batch) {
        all.append(&mut batch);
    }
    (all, sim)
}

/// Fast wear, no random faults or preventive maintenance: every machine runs to failure.
fn wear_cfg(seed: u64) -> SimConfig {
    SimConfig {
        machines: 8,
        seed,
        duration_ms: 6 * 24 * HOUR,
        sensor_interval_ms: 30_000,
        heartbeat_interval_ms: 600_000,
        image_every_part: false,
        fault_rate_per_hour: 0.0,
        preventive_interval_ms: 0,
        silence_rate_per_day: 0.0,
        wear: WearParams {
            life_hours: Span::new(10.0, 20.0),
            ..WearParams::default()
        },
        ..SimConfig::default()
    }
}

#[test]
fn same_seed_gives_identical_events_and_different_seed_differs() {
    let (a, _) = run(small(7));
    let (b, _) = run(small(7));
    let (c, _) = run(small(8));
    assert!(a.len() > 10_000);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn iterator_batches_and_paced_emission_give_the_same_sequence() {
    let (batched, _) = run(small(3));
    let iterated: Vec<Payload> = Simulator::new(small(3)).unwrap().collect();
    assert_eq!(batched, iterated);

    // Pacing: emit in slices of simulated time, as the realtime driver does.
    let mut sim = Simulator::new(small(3)).unwrap();
    let mut paced = Vec::new();
    let mut t = sim.config().start_time_ms;
    while !sim.is_finished() {
        t += 60_000;
        let before = paced.len();
        sim.emit_until(t, usize::MAX, &mut paced);
        assert!(paced[before..].iter().all(|p| p.event_time() <= t));
        if let Some(next) = sim.next_event_time() {
            assert!(next > t, "emit_until left an event at or before its limit");
        }
    }
    assert_eq!(batched, paced);
}

#[test]
fn event_times_are_nondecreasing_and_within_the_span() {
    let cfg = small(11);
    let (start, end) = (
        cfg.start_time_ms,
        cfg.start_time_ms + cfg.duration_ms as i64,
    );
    let (events, _) = run(cfg);
    assert_eq!(events[0].event_time(), start);
    for w in events.windows(2) {
        assert!(w[0].event_time() <= w[1].event_time());
    }
    assert!(events
        .iter()
        .all(|e| e.event_time() >= start && e.event_time() < end));
}

#[test]
fn reading_and_heartbeat_counts_match_ticks_minus_downtime() {
    let cfg = small(5);
    let (start, n_ticks) = (cfg.start_time_ms, cfg.duration_ms / cfg.sensor_interval_ms);
    let (interval, hb_interval) = (
        cfg.sensor_interval_ms as i64,
        cfg.heartbeat_interval_ms as i64,
    );
    let n_hb = cfg.duration_ms / cfg.heartbeat_interval_ms;
    let (events, sim) = run(cfg);
    let mut readings: HashMap<(&str, SensorKind), u64> = HashMap::new();
    let mut beats: HashMap<&str, u64> = HashMap::new();
    for e in &events {
        match e {
            Payload::SensorReading(r) => {
                *readings.entry((&r.machine_id, r.sensor)).or_default() += 1
            }
            Payload::MachineEvent(m) if m.kind == MachineEventKind::Heartbeat => {
                *beats.entry(&m.machine_id).or_default() += 1
            }
            _ => {}
        }
    }
    let truth = sim.ground_truth();
    let mut downtime_seen = false;
    for mt in &truth.machines {
        let ticks = (0..n_ticks as i64).map(|k| start + k * interval);
        let expected = ticks
            .filter(|&t| !mt.silent(t) && !mt.in_maintenance(t))
            .count() as u64;
        downtime_seen |= expected < n_ticks;
        for s in SensorKind::ALL {
            assert_eq!(
                readings
                    .get(&(mt.machine_id.as_str(), s))
                    .copied()
                    .unwrap_or(0),
                expected
            );
        }
        let hb = (0..n_hb as i64)
            .map(|k| start + k * hb_interval)
            .filter(|&t| !mt.silent(t))
            .count() as u64;
        assert_eq!(beats.get(mt.machine_id.as_str()).copied().unwrap_or(0), hb);
    }
    assert!(
        downtime_seen,
        "config should produce some silence or maintenance"
    );
}

#[test]
fn job_events_are_consistent_with_routings_and_machines() {
    let (events, _) = run(SimConfig {
        fault_rate_per_hour: 0.5,
        ..small(21)
    });
    struct J {
        ops: Vec<Vec<String>>,
        completed: usize,
        running: Option<(usize, String)>,
        closed: bool,
    }
    let mut jobs: BTreeMap<String, J> = BTreeMap::new();
    // machine -> job currently running on it
    let mut busy: HashMap<String, String> = HashMap::new();
    let (mut started, mut completed, mut cancelled, mut restarted) = (0, 0, 0, 0);
    let mut cycles: HashMap<String, u64> = HashMap::new();
    for e in &events {
        match e {
            Payload::JobEvent(j) => match j.kind {
                JobEventKind::Submitted => {
                    assert!((1..=5).contains(&j.priority));
                    let rel = j.release_time.unwrap();
                    assert!(rel >= j.event_time && j.due_date.unwrap() >= rel);
                    assert!((2..=6).contains(&j.operations.len()));
                    let ops = j
                        .operations
                        .iter()
                        .map(|o| {
                            assert!((1..=3).contains(&o.eligible.len()));
                            assert!(o.eligible.iter().all(|e| e.duration_ms > 0));
                            o.eligible.iter().map(|e| e.machine_id.clone()).collect()
                        })
                        .collect();
                    let fresh = J {
                        ops,
                        completed: 0,
                        running: None,
                        closed: false,
                    };
                    assert!(
                        jobs.insert(j.job_id.clone(), fresh).is_none(),
                        "duplicate job id"
                    );
                }
                JobEventKind::Started => {
                    started += 1;
                    let job = jobs
                        .get_mut(&j.job_id)
                        .expect("STARTED for an unsubmitted job");
                    assert!(!job.closed && job.running.is_none());
                    let k = j.operation_index.unwrap() as usize;
                    assert_eq!(k, job.completed, "operations must run in order");
                    let m = j.machine_id.clone().unwrap();
                    assert!(job.ops[k].contains(&m), "machine not eligible");
                    assert!(
                        busy.insert(m.clone(), j.job_id.clone()).is_none(),
                        "machine double-booked"
                    );
                    job.running = Some((k, m));
                }
                JobEventKind::Completed => {
                    completed += 1;
                    let job = jobs.get_mut(&j.job_id).unwrap();
                    let k = j.operation_index.unwrap() as usize;
                    let m = j.machine_id.clone().unwrap();
                    assert_eq!(
                        job.running.take(),
                        Some((k, m.clone())),
                        "COMPLETED without STARTED"
                    );
                    assert_eq!(busy.remove(&m), Some(j.job_id.clone()));
                    job.completed += 1;
                    if job.completed == job.ops.len() {
                        job.closed = true;
                    }
                }
                JobEventKind::Cancelled => {
                    cancelled += 1;
                    let job = jobs.get_mut(&j.job_id).unwrap();
                    assert!(!job.closed && job.running.is_none());
                    job.closed = true;
                }
            },
            Payload::MachineEvent(m) => match m.kind {
                MachineEventKind::Fault => {
                    // A fault interrupts the machine's operation: it must name that job.
                    let running = busy.remove(&m.machine_id);
                    assert_eq!(running, m.job_id);
                    if let Some(job_id) = running {
                        restarted += 1;
                        jobs.get_mut(&job_id).unwrap().running = None;
                    }
                }
                MachineEventKind::CycleCompleted => {
                    let job = m.job_id.as_ref().unwrap();
                    assert_eq!(
                        busy.get(&m.machine_id),
                        Some(job),
                        "part from an idle machine"
                    );
                    assert!(m.cycle_time_ms.unwrap() > 0);
                    *cycles.entry(m.machine_id.clone()).or_default() += 1;
                }
                _ => {}
            },
            _ => {}
        }
    }
    assert!(
        started > 100 && completed > 100,
        "started {started} completed {completed}"
    );
    assert!(cancelled > 0, "no cancellation in a 3 h run at 20 %");
    // Every STARTED ended in COMPLETED, was interrupted by a FAULT, or still runs at the end.
    assert_eq!(started, completed + restarted + busy.len());
    assert!(
        restarted > 0,
        "fault rate 0.5/h on 5 machines for 3 h should interrupt work"
    );
    assert_eq!(cycles.values().sum::<u64>(), completed as u64);
}

#[test]
fn wear_runs_to_failure_and_maintenance_resets_it() {
    let cfg = wear_cfg(99);
    let reset_max = cfg.wear.reset_max;
    let onset = cfg.wear.hazard_onset;
    let (events, sim) = run(cfg);
    let truth = sim.ground_truth();
    let faults: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Payload::MachineEvent(m) if m.kind == MachineEventKind::Fault => Some(m),
            _ => None,
        })
        .collect();
    let n_failures: usize = truth.machines.iter().map(|m| m.failures.len()).sum();
    assert_eq!(faults.len(), n_failures);
    for mt in &truth.machines {
        // Life 10-20 h at load 1, ~70 % busy: several failures in 6 days, none implausibly early.
        assert!(
            mt.failures.len() >= 2,
            "{} failed {} times",
            mt.machine_id,
            mt.failures.len()
        );
        for f in &mt.failures {
            let mode = f.mode.expect("no random faults configured");
            assert_eq!(f.fault_code, mode.fault_code());
            assert!(f.wear >= onset, "failure below hazard onset: {}", f.wear);
            assert!(faults.iter().any(|e| e.machine_id == mt.machine_id
                && e.event_time == f.time_ms
                && e.fault_code.as_deref() == Some(f.fault_code)));
        }
        for m in &mt.maintenance {
            assert_eq!(m.kind, MaintenanceKind::Repair);
            assert!(m.wear_before >= onset);
            if let Some(w) = m.wear_after {
                assert!(w <= reset_max);
            }
        }
        // Every closed trajectory ended in a wear failure and the next one starts after repair.
        for pair in mt.trajectories.windows(2) {
            assert_eq!(pair[0].end, TrajectoryEnd::WearFailure);
            assert!(pair[1].start_ms > pair[0].end_ms.unwrap());
            assert!(pair[1].wear_at_start <= reset_max);
        }
    }
    // Every FAULT is followed, on that machine, by MAINTENANCE_STARTED then _FINISHED (or the
    // run ends first).
    let mut state: HashMap<&str, u8> = HashMap::new();
    for e in &events {
        if let Payload::MachineEvent(m) = e {
            let s = state.entry(&m.machine_id).or_insert(0);
            match m.kind {
                MachineEventKind::Fault => {
                    assert_eq!(*s, 0);
                    *s = 1
                }
                MachineEventKind::MaintenanceStarted => {
                    assert_eq!(*s, 1);
                    *s = 2
                }
                MachineEventKind::MaintenanceFinished => {
                    assert_eq!(*s, 2);
                    *s = 0
                }
                MachineEventKind::CycleCompleted => assert_eq!(*s, 0, "part while down"),
                _ => {}
            }
        }
    }
}

/// Sensor series per (machine, sensor), in time order.
type Series = HashMap<(String, SensorKind), Vec<(i64, f64)>>;

fn series(events: &[Payload]) -> Series {
    let mut out: Series = HashMap::new();
    for e in events {
        if let Payload::SensorReading(r) = e {
            out.entry((r.machine_id.clone(), r.sensor))
                .or_default()
                .push((r.event_time, r.value));
        }
    }
    out
}

/// Mean of a sensor on a machine over `[from, to)`.
fn mean(s: &Series, machine: &str, sensor: SensorKind, from: i64, to: i64) -> f64 {
    let v = &s[&(machine.to_string(), sensor)];
    let (a, b) = (
        v.partition_point(|x| x.0 < from),
        v.partition_point(|x| x.0 < to),
    );
    assert!(b > a, "no readings in window");
    v[a..b].iter().map(|x| x.1).sum::<f64>() / (b - a) as f64
}

#[test]
fn each_failure_mode_has_its_own_sensor_signature() {
    let cfg = wear_cfg(4242);
    let (events, sim) = run(cfg);
    let events = series(&events);
    let hour = HOUR as i64;
    let mut checked = BTreeMap::new();
    for mt in &sim.ground_truth().machines {
        for pair in mt.trajectories.windows(2) {
            let (old, new) = (&pair[0], &pair[1]);
            let fail_at = old.end_ms.unwrap();
            // Compare the last 90 minutes before failure with the first 90 minutes after repair,
            // both while the machine runs (readings during a failure stop are excluded).
            let before = |s| mean(&events, &mt.machine_id, s, fail_at - 3 * hour / 2, fail_at);
            let after = |s| {
                mean(
                    &events,
                    &mt.machine_id,
                    s,
                    new.start_ms,
                    new.start_ms + 3 * hour / 2,
                )
            };
            use SensorKind::*;
            // Positive when the speed was lower before the failure than after the repair.
            let rel_speed = (after(Speed) - before(Speed)) / mt.baseline.speed_rpm;
            match old.mode {
                FailureMode::BearingWear => {
                    assert!(before(Vibration) - after(Vibration) > 3.0);
                    assert!((before(Pressure) - after(Pressure)).abs() < 0.5);
                }
                FailureMode::Overheating => {
                    assert!(before(Temperature) - after(Temperature) > 10.0);
                    assert!(rel_speed > 0.03, "speed drop {rel_speed}");
                    assert!((before(Pressure) - after(Pressure)).abs() < 0.5);
                }
                FailureMode::HydraulicLeak => {
                    assert!(after(Pressure) - before(Pressure) > 2.0);
                    assert!(before(Vibration) > after(Vibration));
                    assert!(rel_speed.abs() < 0.03);
                }
            }
            *checked.entry(old.mode).or_insert(0) += 1;
        }
    }
    assert_eq!(checked.len(), 3, "every mode should occur: {checked:?}");
}

#[test]
fn random_faults_and_preventive_maintenance_happen_and_are_labelled() {
    let cfg = SimConfig {
        machines: 6,
        duration_ms: 4 * 24 * HOUR,
        sensor_interval_ms: 60_000,
        heartbeat_interval_ms: 600_000,
        image_every_part: false,
        fault_rate_per_hour: 0.01,
        preventive_interval_ms: 24 * HOUR,
        ..SimConfig::default()
    };
    let (events, sim) = run(cfg);
    let truth = sim.ground_truth();
    let random: usize = truth
        .machines
        .iter()
        .flat_map(|m| &m.failures)
        .filter(|f| f.mode.is_none())
        .count();
    let pm: Vec<_> = truth
        .machines
        .iter()
        .flat_map(|m| &m.maintenance)
        .filter(|m| m.kind == MaintenanceKind::Preventive)
        .collect();
    assert!(
        random > 0 && pm.len() >= 6,
        "random {random} preventive {}",
        pm.len()
    );
    let pm_events = events
        .iter()
        .filter(|e| {
            matches!(e, Payload::MachineEvent(m) if m.kind == MachineEventKind::MaintenanceStarted
            && m.detail.as_deref() == Some("preventive"))
        })
        .count();
    assert_eq!(pm_events, pm.len());
    for m in truth.machines.iter().flat_map(|m| &m.trajectories) {
        if let TrajectoryEnd::RandomFault { fault_code } = m.end {
            assert!(twinline_sim::RANDOM_FAULT_CODES.contains(&fault_code));
        }
    }
}

#[test]
fn images_decode_as_png_and_labels_follow_wear() {
    let cfg = SimConfig {
        machines: 4,
        duration_ms: 6 * HOUR,
        sensor_interval_ms: 60_000,
        ..SimConfig::default()
    };
    let (events, sim) = run(cfg);
    let images: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Payload::Image(i) => Some(i),
            _ => None,
        })
        .collect();
    let parts = &sim.ground_truth().parts;
    assert!(images.len() > 50);
    assert_eq!(images.len(), parts.len());
    for (img, truth) in images.iter().zip(parts) {
        assert_eq!(img.part_id, truth.part_id);
        assert_eq!(img.media_type, "image/png");
        let decoded = image::load_from_memory_with_format(&img.data, image::ImageFormat::Png)
            .expect("valid PNG");
        assert_eq!((decoded.width(), decoded.height()), (64, 64));
    }
    // Parts carry the same ids as their CYCLE_COMPLETED events.
    let cycle_parts: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Payload::MachineEvent(m) if m.kind == MachineEventKind::CycleCompleted => {
                m.part_id.clone()
            }
            _ => None,
        })
        .collect();
    let image_parts: Vec<_> = images.iter().map(|i| i.part_id.clone()).collect();
    assert_eq!(cycle_parts, image_parts);
}

#[test]
fn defect_rate_rises_with_wear() {
    let base = SimConfig {
        machines: 6,
        duration_ms: 12 * HOUR,
        sensor_interval_ms: 60_000,
        fault_rate_per_hour: 0.0,
        preventive_interval_ms: 0,
        wear: WearParams {
            life_hours: Span::new(1e6, 1e6),
            ..WearParams::default()
        },
        ..SimConfig::default()
    };
    let rate = |wear: f64| {
        let mut sim = Simulator::new(base.clone()).unwrap();
        for i in 0..6 {
            sim.set_wear(i, wear);
        }
        let mut buf = Vec::new();
        while sim.next_batch(4096, &mut buf) {
            buf.clear();
        }
        let parts = &sim.ground_truth().parts;
        parts.iter().filter(|p| p.defect.is_some()).count() as f64 / parts.len() as f64
    };
    // Expected 0.02 at w = 0 and 0.02 + 0.25 * 0.8^2 = 0.18 at w = 0.8.
    let (low, high) = (rate(0.0), rate(0.8));
    assert!(low < 0.06, "low {low}");
    assert!((0.11..0.26).contains(&high), "high {high}");
}

/// An image source that returns fixed bytes: proves the source is pluggable and that it draws
/// from its own random stream (everything else stays identical).
struct Fixed;
impl ImageSource for Fixed {
    fn image(&mut self, rng: &mut dyn RngCore, p: f64) -> (Vec<u8>, Option<DefectLabel>) {
        (vec![1, 2, 3], twinline_sim::draw_defect(rng, p))
    }
    fn media_type(&self) -> &'static str {
        "image/x-test"
    }
}

#[test]
fn a_custom_image_source_changes_only_images() {
    let (normal, _) = run(small(9));
    let mut sim = Simulator::with_image_source(small(9), Box::new(Fixed)).unwrap();
    let custom: Vec<Payload> = sim.by_ref().collect();
    assert_eq!(normal.len(), custom.len());
    let mut n_images = 0;
    for (a, b) in normal.iter().zip(&custom) {
        match (a, b) {
            (Payload::Image(a), Payload::Image(b)) => {
                n_images += 1;
                assert_eq!(b.data, vec![1, 2, 3]);
                assert_eq!(b.media_type, "image/x-test");
                assert_eq!((&a.part_id, a.event_time), (&b.part_id, b.event_time));
            }
            _ => assert_eq!(a, b),
        }
    }
    assert!(n_images > 0);
}

/// This package's directory: cargo's value at run time, which stays right when the binary was built
/// from another checkout sharing the target directory; the compile-time value otherwise.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn simset() -> PathBuf {
    package_dir().join("../../models/vision/simset")
}

#[test]
fn a_library_simulator_serves_library_files_with_their_labels_and_changes_only_images() {
    let cfg = SimConfig {
        image_library: Some(simset()),
        // A high defect rate so that a short run shows every class.
        defects: DefectParams {
            base_rate: 0.6,
            wear_gain: 0.0,
        },
        ..small(9)
    };
    let (events, sim) = run(cfg.clone());
    let (procedural, _) = run(SimConfig {
        image_library: None,
        ..cfg
    });
    let lib = LibraryImages::load(&simset()).unwrap();
    let parts = &sim.ground_truth().parts;
    let images: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Payload::Image(i) => Some(i),
            _ => None,
        })
        .collect();
    assert!(images.len() > 100, "{} images", images.len());
    assert_eq!(images.len(), parts.len());
    let mut seen = BTreeMap::new();
    for (img, truth) in images.iter().zip(parts) {
        assert_eq!(img.part_id, truth.part_id);
        assert_eq!(img.media_type, "image/png");
        let (label, entry) = lib.lookup(&img.data).expect("bytes are a library file");
        // The truth record says what the library says the image shows.
        assert_eq!(label, truth.defect, "{} is {}", truth.part_id, entry.file);
        assert_eq!(img.data, std::fs::read(simset().join(&entry.file)).unwrap());
        *seen
            .entry(label.map_or("none", |l| l.as_str()))
            .or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 6, "classes served: {seen:?}");
    // The library draws from the image stream only: every other event is the procedural run's.
    assert_eq!(events.len(), procedural.len());
    for (a, b) in events.iter().zip(&procedural) {
        match (a, b) {
            (Payload::Image(a), Payload::Image(b)) => {
                assert_eq!((&a.part_id, a.event_time), (&b.part_id, b.event_time))
            }
            _ => assert_eq!(a, b),
        }
    }
}

#[test]
fn a_missing_image_library_fails_the_simulator_build() {
    let dir = simset().join("no-such-library");
    let cfg = SimConfig {
        image_library: Some(dir.clone()),
        ..SimConfig::default()
    };
    match Simulator::new(cfg) {
        Err(SimError::LibraryMissing { path }) => assert_eq!(path, dir),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("built a simulator on a missing library"),
    }
}

#[test]
fn image_library_is_optional_in_toml_and_absent_from_json_when_unset() {
    let cfg: SimConfig = toml::from_str("image_library = \"models/vision/simset\"").unwrap();
    assert_eq!(
        cfg.image_library.as_deref(),
        Some(std::path::Path::new("models/vision/simset"))
    );
    // Recorded configs from before the field existed must still compare equal.
    let json = serde_json::to_value(SimConfig::default()).unwrap();
    assert!(json.get("image_library").is_none(), "{json}");
    let back: SimConfig = serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn held_out_wear_params_change_failure_timing() {
    let fast = wear_cfg(1);
    let slow = SimConfig {
        wear: WearParams {
            life_hours: Span::new(30.0, 40.0),
            ..fast.wear
        },
        ..fast.clone()
    };
    let count = |cfg| {
        let (_, sim) = run(cfg);
        sim.ground_truth()
            .machines
            .iter()
            .map(|m| m.failures.len())
            .sum::<usize>()
    };
    let (f, s) = (count(fast), count(slow));
    assert!(f > s, "fast wear {f} failures, slow wear {s}");
}

#[test]
fn bad_configs_are_rejected_with_the_field_name() {
    let bad = |cfg: SimConfig| match Simulator::new(cfg) {
        Err(SimError::InvalidConfig { field, .. }) => field,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("accepted a bad config"),
    };
    assert_eq!(
        bad(SimConfig {
            machines: 0,
            ..SimConfig::default()
        }),
        "machines"
    );
    assert_eq!(
        bad(SimConfig {
            sensor_interval_ms: 0,
            ..SimConfig::default()
        }),
        "sensor_interval_ms"
    );
    assert_eq!(
        bad(SimConfig {
            ops_per_job: Span::new(4, 2),
            ..SimConfig::default()
        }),
        "ops_per_job"
    );
    let wear = WearParams {
        hazard_onset: 1.0,
        ..WearParams::default()
    };
    assert_eq!(
        bad(SimConfig {
            wear,
            ..SimConfig::default()
        }),
        "wear.hazard_onset"
    );
}

#[test]
fn config_deserializes_from_toml_with_defaults_and_rejects_unknown_keys() {
    let empty: SimConfig = toml::from_str("").unwrap();
    assert_eq!(empty, SimConfig::default());
    assert_eq!(empty.start_time_ms, 1_767_225_600_000);
    let cfg: SimConfig = toml::from_str(
        "machines = 50\nseed = 3\nops_per_job = { min = 3, max = 4 }\n[wear]\nlife_hours = { min = 5.0, max = 6.0 }\n",
    )
    .unwrap();
    assert_eq!(
        (cfg.machines, cfg.seed, cfg.ops_per_job),
        (50, 3, Span::new(3, 4))
    );
    assert_eq!(cfg.wear.life_hours, Span::new(5.0, 6.0));
    assert_eq!(cfg.wear.hazard_onset, WearParams::default().hazard_onset);
    assert!(toml::from_str::<SimConfig>("machine = 5").is_err());
}

#[test]
fn machine_ids_and_sensor_units_follow_the_contract() {
    // The binary moves the simulator into its producer task.
    fn assert_send<T: Send>() {}
    assert_send::<Simulator>();
    let sim = Simulator::new(SimConfig {
        machines: 12,
        ..small(1)
    })
    .unwrap();
    let ids: Vec<_> = sim.machine_ids().collect();
    assert_eq!(ids[0], "M001");
    assert_eq!(ids[11], "M012");
    for e in sim.take(2000) {
        match e {
            Payload::SensorReading(r) => {
                assert_eq!(r.unit, r.sensor.default_unit());
                assert!(r.value.is_finite() && r.value >= 0.0);
            }
            Payload::JobEvent(j) => {
                assert!(j.job_id.len() == 7 && j.job_id.starts_with('J'));
            }
            _ => {}
        }
    }
}

#[test]
fn default_plant_is_busy_but_stable_over_a_week() {
    let cfg = SimConfig {
        duration_ms: 7 * 24 * HOUR,
        sensor_interval_ms: 60_000,
        image_every_part: false,
        ..SimConfig::default()
    };
    let (events, sim) = run(cfg);
    let (mut beats, mut busy) = (0u64, 0u64);
    let mut submitted = 0u64;
    for e in &events {
        match e {
            Payload::MachineEvent(m) if m.kind == MachineEventKind::Heartbeat => {
                beats += 1;
                busy += u64::from(m.busy == Some(true));
            }
            Payload::JobEvent(j) if j.kind == JobEventKind::Submitted => submitted += 1,
            _ => {}
        }
    }
    let utilization = busy as f64 / beats as f64;
    eprintln!(
        "utilization {utilization:.3}, submitted {submitted}, open at end {}",
        sim.open_jobs()
    );
    // Aimed at 0.7; downtime and routing imbalance lower it, but the queue must not run away.
    assert!(
        (0.4..0.9).contains(&utilization),
        "utilization {utilization}"
    );
    assert!(
        sim.open_jobs() < (submitted / 20) as usize,
        "backlog {} of {submitted}",
        sim.open_jobs()
    );
    let failures: usize = sim
        .ground_truth()
        .machines
        .iter()
        .map(|m| m.failures.len())
        .sum();
    assert!(
        failures > 0,
        "a week of 10 machines with 48-240 h lives should see a failure"
    );
}
