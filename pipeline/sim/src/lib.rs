//! The twinline plant simulator: a seeded, deterministic discrete-event model of a machine shop
//! that produces the pipeline's input events (`sensor-readings`, `images`, `job-events`,
//! `machine-events`) in nondecreasing event time.
//!
//! # Using it
//!
//! ```
//! use twinline_sim::{SimConfig, Simulator};
//! let cfg = SimConfig { machines: 3, duration_ms: 60_000, ..SimConfig::default() };
//! let mut sim = Simulator::new(cfg).unwrap();
//! let mut batch = Vec::new();
//! let mut n = 0;
//! while sim.next_batch(1024, &mut batch) {
//!     n += batch.len(); // hand the batch to the log here
//!     batch.clear();
//! }
//! assert!(n >= 3 * 4 * 60); // 60 ticks x 4 sensors x 3 machines, plus heartbeats and jobs
//! ```
//!
//! Same seed and config give the identical event sequence. [`Simulator::emit_until`] paces the
//! simulation against a clock (`--realtime`); [`Simulator::ground_truth`] exposes what the
//! events do not say (wear trajectories, failure modes, part labels).
//!
//! # The model
//!
//! **Time.** One event queue ordered by `(time, rank, sequence)`; state changes at a given
//! millisecond happen before the periodic ticks of that millisecond. Every `sensor_interval_ms`
//! a tick advances the physics of all machines by one step and emits their four readings; every
//! `heartbeat_interval_ms` each machine sends a HEARTBEAT with `busy`.
//!
//! **Machines** `M001..` have a base cycle time (drawn from `cycle_time_ms`), a sensor baseline
//! ([`Baseline`]: idle temperature 32–42 °C, vibration 0.8–2.0 mm/s RMS, pressure 5.5–7.5 bar,
//! speed 1200–3000 rpm) and a life at nominal load (drawn from `WearParams::life_hours`).
//! States: idle, busy, failed, maintenance ([`MachineState`]).
//!
//! **Jobs** `J000001..` arrive as a Poisson process (mean `job_interarrival_mean_ms`, by default
//! chosen for `target_utilization`). A job has `ops_per_job` ordered operations; each operation
//! has `eligible_per_op` distinct machines with durations `base cycle x work x U(0.9, 1.1)` and a
//! load drawn from `op_load`. SUBMITTED carries the routing, a priority 1–5 (higher = more
//! important), the release time (`release_delay_ms` after submission) and the due date (release
//! plus `due_slack` x the sum of the shortest durations). The built-in dispatcher gives released
//! ready operations, by priority, due date and age, to the free eligible machine with the
//! shortest duration; the actual cycle is `planned x (1 + cycle_slowdown x w) x lognormal(0.05)`.
//! STARTED and COMPLETED carry `operation_index` and `machine_id`. A job is CANCELLED with
//! probability `cancel_probability` at a random time before its due date; if an operation is
//! running then, the cancellation waits for its COMPLETED. A FAULT interrupts the running
//! operation (the FAULT carries its `job_id`, `detail = "interrupted operation k"`); the
//! operation goes back to the ready queue and gets a new STARTED later.
//!
//! **Parts.** Each operation completion is one part `P00000001..`: a CYCLE_COMPLETED
//! (`job_id`, `part_id`, `cycle_time_ms`) and, with `image_every_part`, an `Image` from the
//! [`ImageSource`] at the same time. A part is defective with probability
//! `defects.base_rate + defects.wear_gain x w^2`. Images are procedural grey surfaces
//! ([`ProceduralImages`]) or, with `image_library`, files of a labelled library such as
//! `models/vision/simset` ([`LibraryImages`]); either way the truth label is the image's class.
//!
//! **Wear** `w` in [0, 1] per machine. Each sensor step of `dt` hours while the machine runs:
//!
//! `w += dt / life_hours x f`, with `f = load` when busy and `f = wear.idle_factor` when idle
//! (no wear while stopped), plus with probability `shock_rate_per_hour x dt` a shock of size
//! `Exp(mean = shock_mean)`. Above `hazard_onset` the machine fails in a step with probability
//! `1 - exp(-h(w) dt)`, `h(w) = hazard_max_per_hour x ((w - onset) / (1 - onset))^hazard_exponent`;
//! at `w >= 1` it fails for certain. Machines start with `w ~ U(0, 0.5)`.
//!
//! **Failure modes** ([`FailureMode`]), one per trajectory (a trajectory runs from a reset to
//! its end), drawn with `wear.modes` weights. Sensor means for baseline `b`, load `L` (0 idle):
//!
//! | sensor | healthy | bearing wear | overheating | hydraulic leak |
//! |---|---|---|---|---|
//! | temperature °C | `b.T + 10 L`, first-order lag τ = 120 s | `+ 4 w²` | `+ 25 w²` | — |
//! | vibration mm/s | `b.V (1 + 0.6 L)` | `+ 7 w²` | — | spikes `U(3, 8)` with prob. `0.25 w²` per reading |
//! | pressure bar | `b.P - 0.3 L` | — | — | `- 3 w` |
//! | speed rpm | `b.S (1 - 0.02 L)` | — | `x (1 - 0.12 w²)` | — |
//!
//! Noise: Gaussian with σ = 0.15 °C, 0.08 mm/s, 0.04 bar, 0.2 % of base speed. A stopped
//! machine (failed; readings continue) reads speed 0, vibration and pressure near 0, and its
//! temperature relaxes to `b.T - 8`. The failure's FAULT has `fault_code` = the mode's code
//! (`BEARING_WEAR`, `OVERHEATING`, `HYDRAULIC_LEAK`).
//!
//! **Random faults** unrelated to wear strike running machines at `fault_rate_per_hour`
//! (`ELECTRICAL`, `MATERIAL_JAM`).
//!
//! **Maintenance.** After a FAULT, `repair_delay_ms` later MAINTENANCE_STARTED (`detail =
//! "repair <code>"`), `repair_duration_ms` later MAINTENANCE_FINISHED (`detail = "repair"`).
//! Preventive maintenance comes `preventive_interval_ms x U(0.8, 1.2)` after the last
//! maintenance (first one uniformly within the first interval); a busy machine finishes its
//! operation first (`detail = "preventive"`). Every maintenance leaves `w ~ U(0, reset_max)` and
//! draws the next trajectory's mode. No sensor readings during maintenance; heartbeats go on.
//!
//! **Silences.** At `silence_rate_per_day`, a machine's gateway goes silent for
//! `silence_duration_ms`: no heartbeats and no readings (the machine keeps working and its other
//! events still arrive), so the twin can detect OFFLINE.
//!
//! **Randomness.** ChaCha8 seeded with `seed`, one stream per concern (plant/jobs, images, each
//! machine), so changing the image source changes no other event.

mod config;
mod error;
mod images;
mod physics;
mod sim;
mod truth;

pub use config::{DefectParams, ModeWeights, SimConfig, Span, WearParams, DEFAULT_START_TIME_MS};
pub use error::SimError;
pub use images::{
    draw_defect, encode_png, render_surface, DefectLabel, ImageSource, LibraryImage, LibraryImages,
    ProceduralImages,
};
pub use physics::{
    hazard_per_hour, sensor_means, wear_increment, Activity, Baseline, FailureMode, SensorMeans,
    RANDOM_FAULT_CODES,
};
pub use sim::{job_id, machine_id, part_id, MachineState, Simulator};
pub use truth::{
    FailureRecord, GroundTruth, Interval, MachineTruth, MaintenanceKind, MaintenanceRecord,
    PartTruth, Trajectory, TrajectoryEnd,
};
