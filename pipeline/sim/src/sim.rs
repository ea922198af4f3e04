//! The discrete-event engine: the event queue, machine and job state, the built-in dispatcher, and
//! the translation of what happens into schema payloads in nondecreasing event time.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use rand::{seq::index::sample, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, StandardNormal};
use twinline_schemas::{
    EligibleMachine, Image, JobEvent, JobEventKind, MachineEvent, MachineEventKind, Operation,
    Payload, SensorKind, SensorReading,
};

use crate::config::{SimConfig, Span};
use crate::error::SimError;
use crate::images::{ImageSource, LibraryImages, ProceduralImages};
use crate::physics::{
    hazard_per_hour, sensor_means, wear_increment, Activity, Baseline, FailureMode, LEAK_SPIKE_MAX,
    LEAK_SPIKE_MIN, LEAK_SPIKE_PROB, NOISE_PRESSURE, NOISE_SPEED_REL, NOISE_TEMP, NOISE_VIB,
    RANDOM_FAULT_CODES, THERMAL_TAU_S,
};
use crate::truth::{
    FailureRecord, GroundTruth, Interval, MachineTruth, MaintenanceKind, MaintenanceRecord,
    PartTruth, Trajectory, TrajectoryEnd,
};

// ChaCha stream numbers: each concern draws from its own stream, so that for example replacing
// the image source does not change a single sensor value.
const STREAM_PLANT: u64 = 1;
const STREAM_IMAGES: u64 = 2;
pub(crate) const STREAM_IMAGE_POOL: u64 = 3;
const STREAM_MACHINE_BASE: u64 = 1 << 32;

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Operational state of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    Idle,
    Busy,
    Failed,
    Maintenance,
}

/// What a busy machine is doing.
#[derive(Debug, Clone, Copy)]
struct Running {
    job: u64,
    load: f64,
    cycle_ms: u64,
}

struct Machine {
    id: String,
    rng: ChaCha8Rng,
    base: Baseline,
    cycle_base_ms: u64,
    /// Wear per hour at load 1.0.
    wear_per_hour: f64,
    wear: f64,
    mode: FailureMode,
    state: MachineState,
    /// Thermal state (°C); relaxes toward the target of `sensor_means`.
    temp: f64,
    running: Option<Running>,
    /// Bumped when a running operation is interrupted, so its pending OpFinish is ignored.
    epoch: u32,
    /// Preventive maintenance is due and waits for the current operation to finish.
    pm_pending: bool,
    /// Bumped whenever preventive maintenance is rescheduled, so stale PreventiveDue are ignored.
    pm_gen: u32,
    maintenance_kind: MaintenanceKind,
    silent: bool,
}

impl Machine {
    fn activity(&self) -> Activity {
        match (self.state, self.running) {
            (MachineState::Busy, Some(r)) => Activity::Busy { load: r.load },
            (MachineState::Idle, _) | (MachineState::Busy, None) => Activity::Idle,
            _ => Activity::Stopped,
        }
    }

    fn available(&self) -> bool {
        self.state == MachineState::Idle && !self.pm_pending
    }
}

struct OpSpec {
    /// (machine index, planned duration ms), ascending by machine index.
    eligible: Vec<(usize, u64)>,
    load: f64,
}

struct Job {
    id: String,
    ops: Vec<OpSpec>,
    priority: i32,
    due_ms: i64,
    next_op: usize,
    running_on: Option<usize>,
    released: bool,
    cancel_requested: bool,
}

/// Dispatch order: priority (higher first), then due date, then submission order.
type ReadyKey = (Reverse<i32>, i64, u64);

#[derive(Debug, Clone, Copy)]
enum Ev {
    SensorTick,
    HeartbeatTick,
    JobArrival,
    JobRelease(u64),
    JobCancel(u64),
    OpFinish { m: usize, epoch: u32 },
    RandomFault(usize),
    RepairStart(usize),
    MaintenanceEnd(usize),
    PreventiveDue { m: usize, gen: u32 },
    SilenceStart(usize),
    SilenceEnd(usize),
}

impl Ev {
    /// At equal times, state changes (rank 0) happen before the periodic ticks (rank 1), so a
    /// tick observes every change with time <= its own.
    fn rank(self) -> u8 {
        match self {
            Ev::SensorTick | Ev::HeartbeatTick => 1,
            _ => 0,
        }
    }
}

struct Scheduled {
    time: i64,
    rank: u8,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and we want the earliest (time, rank, seq) first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.time, o.rank, o.seq).cmp(&(self.time, self.rank, self.seq))
    }
}

fn draw_u64<R: Rng + ?Sized>(rng: &mut R, s: &Span<u64>) -> u64 {
    if s.min == s.max {
        s.min
    } else {
        rng.gen_range(s.min..=s.max)
    }
}

fn draw_f64<R: Rng + ?Sized>(rng: &mut R, s: &Span<f64>) -> f64 {
    if s.min == s.max {
        s.min
    } else {
        rng.gen_range(s.min..=s.max)
    }
}

fn draw_u32<R: Rng + ?Sized>(rng: &mut R, s: &Span<u32>) -> u32 {
    rng.gen_range(s.min..=s.max)
}

/// Exponential waiting time with the given mean, in whole ms (at least 1).
fn exp_ms<R: Rng + ?Sized>(rng: &mut R, mean_ms: f64) -> i64 {
    let x = match Exp::new(1.0 / mean_ms) {
        Ok(d) => d.sample(rng),
        Err(_) => f64::INFINITY,
    };
    if x.is_finite() && x < i64::MAX as f64 / 2.0 {
        (x as i64).max(1)
    } else {
        i64::MAX / 2
    }
}

fn as_i64(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX / 2)
}

/// Formats `M001`-style machine ids (wider when there are more than 999 machines).
pub fn machine_id(index: usize) -> String {
    format!("M{:03}", index + 1)
}

/// Formats `J000001`-style job ids from a 1-based sequence number.
pub fn job_id(seq: u64) -> String {
    format!("J{seq:06}")
}

/// Formats `P00000001`-style part ids from a 1-based sequence number.
pub fn part_id(seq: u64) -> String {
    format!("P{seq:08}")
}

/// The plant simulator. See the crate docs for the model; build with [`Simulator::new`], pull
/// events with [`Simulator::next_batch`], [`Simulator::emit_until`] or as an `Iterator`.
pub struct Simulator {
    cfg: SimConfig,
    end_ms: i64,
    now_ms: i64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    /// Handlers append their payloads here. During `emit_until` this *is* the caller's `Vec`
    /// (swapped in), so most payloads are written once, straight where they are consumed.
    sink: Vec<Payload>,
    /// Payloads handled but not yet emitted (overflow past `max`), all with `event_time == now_ms`.
    pending: VecDeque<Payload>,
    machines: Vec<Machine>,
    plant_rng: ChaCha8Rng,
    image_rng: ChaCha8Rng,
    images: Box<dyn ImageSource>,
    jobs: BTreeMap<u64, Job>,
    ready: BTreeSet<ReadyKey>,
    next_job_seq: u64,
    next_part_seq: u64,
    interarrival_mean_ms: f64,
    truth: GroundTruth,
    // Precomputed per-tick constants of the physics step.
    dt_hours: f64,
    thermal_alpha: f64,
    // Scratch buffers reused by the dispatcher.
    scratch_taken: Vec<bool>,
    scratch_assign: Vec<(ReadyKey, usize)>,
}

impl Simulator {
    /// Builds a simulator whose images come from the library at `image_library` when it is set,
    /// otherwise from the built-in procedural source.
    pub fn new(cfg: SimConfig) -> Result<Simulator, SimError> {
        cfg.validate()?;
        // Loaded even with `image_every_part` off, so that a wrong path fails now rather than
        // when images are switched on.
        let images: Box<dyn ImageSource> = match &cfg.image_library {
            Some(dir) => Box::new(LibraryImages::load(dir)?),
            None => Box::new(ProceduralImages::new(
                cfg.image_size,
                cfg.image_pool_size,
                cfg.seed,
            )?),
        };
        Self::with_image_source(cfg, images)
    }

    /// Builds a simulator whose part images come from `images`.
    pub fn with_image_source(
        cfg: SimConfig,
        images: Box<dyn ImageSource>,
    ) -> Result<Simulator, SimError> {
        cfg.validate()?;
        let start = cfg.start_time_ms;
        let end_ms = if cfg.duration_ms == 0 {
            i64::MAX
        } else {
            start.saturating_add(as_i64(cfg.duration_ms))
        };
        let mut plant_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        plant_rng.set_stream(STREAM_PLANT);
        let mut image_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        image_rng.set_stream(STREAM_IMAGES);

        let mut machines = Vec::with_capacity(cfg.machines);
        let mut truth = GroundTruth::default();
        for i in 0..cfg.machines {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(STREAM_MACHINE_BASE + i as u64);
            let base = Baseline::draw(&mut rng);
            let cycle_base_ms = draw_u64(&mut rng, &cfg.cycle_time_ms);
            let life_hours = draw_f64(&mut rng, &cfg.wear.life_hours);
            // Machines start part-way through their life so that failures do not all cluster
            // one life after the start.
            let wear = rng.gen_range(0.0..0.5);
            let mode = FailureMode::draw(&mut rng, &cfg.wear.modes);
            let id = machine_id(i);
            truth.machines.push(MachineTruth {
                machine_id: id.clone(),
                baseline: base,
                cycle_time_base_ms: cycle_base_ms,
                life_hours,
                trajectories: vec![Trajectory {
                    start_ms: start,
                    end_ms: None,
                    mode,
                    end: TrajectoryEnd::Open,
                    wear_at_start: wear,
                    wear_at_end: None,
                }],
                failures: Vec::new(),
                maintenance: Vec::new(),
                silences: Vec::new(),
            });
            machines.push(Machine {
                id,
                rng,
                base,
                cycle_base_ms,
                wear_per_hour: 1.0 / life_hours,
                wear,
                mode,
                state: MachineState::Idle,
                temp: base.temperature_c,
                running: None,
                epoch: 0,
                pm_pending: false,
                pm_gen: 0,
                maintenance_kind: MaintenanceKind::Repair,
                silent: false,
            });
        }

        let interarrival_mean_ms = match cfg.job_interarrival_mean_ms {
            Some(m) => m as f64,
            None => {
                let work_per_job =
                    cfg.ops_per_job.mean() * cfg.cycle_time_ms.mean() * cfg.op_work.mean();
                (work_per_job / (cfg.machines as f64 * cfg.target_utilization)).max(1.0)
            }
        };
        let dt_ms = cfg.sensor_interval_ms as f64;
        let n = cfg.machines;
        let mut sim = Simulator {
            end_ms,
            now_ms: start,
            seq: 0,
            queue: BinaryHeap::new(),
            sink: Vec::new(),
            pending: VecDeque::with_capacity(4 * n + 64),
            machines,
            plant_rng,
            image_rng,
            images,
            jobs: BTreeMap::new(),
            ready: BTreeSet::new(),
            next_job_seq: 1,
            next_part_seq: 1,
            interarrival_mean_ms,
            truth,
            dt_hours: dt_ms / MS_PER_HOUR,
            thermal_alpha: 1.0 - (-dt_ms / 1000.0 / THERMAL_TAU_S).exp(),
            scratch_taken: vec![false; n],
            scratch_assign: Vec::new(),
            cfg,
        };
        sim.schedule(start, Ev::SensorTick);
        sim.schedule(start, Ev::HeartbeatTick);
        let first = exp_ms(&mut sim.plant_rng, sim.interarrival_mean_ms);
        sim.schedule(start.saturating_add(first), Ev::JobArrival);
        for m in 0..n {
            sim.schedule_random_fault(m, start);
            sim.schedule_silence(m, start);
            // The first preventive maintenance falls anywhere in the first interval, so that
            // machines are not all serviced at once.
            if sim.cfg.preventive_interval_ms > 0 {
                let frac: f64 = sim.machines[m].rng.gen_range(0.1..1.0);
                let at = start + (sim.cfg.preventive_interval_ms as f64 * frac) as i64;
                sim.schedule(at, Ev::PreventiveDue { m, gen: 0 });
            }
        }
        Ok(sim)
    }

    // ---- public stepping API -------------------------------------------------------------

    /// Appends up to `max` next events to `out`. Returns `true` if it appended any; `false` means
    /// the simulation is over (or `max == 0`), so `while sim.next_batch(n, &mut buf) { .. }`
    /// sees every event.
    pub fn next_batch(&mut self, max: usize, out: &mut Vec<Payload>) -> bool {
        self.emit_until(i64::MAX, max, out) > 0
    }

    /// Appends up to `max` next events whose event time is `<= t_ms`, and returns how many. For
    /// pacing (`--realtime`): call with the simulated time that the wall clock has reached.
    pub fn emit_until(&mut self, t_ms: i64, max: usize, out: &mut Vec<Payload>) -> usize {
        let mut n = 0;
        // `pending` may hold events of a time past the limit when `next_event_time` looked ahead.
        if !self.pending.is_empty() {
            if self.now_ms > t_ms {
                return 0;
            }
            let k = max.min(self.pending.len());
            out.extend(self.pending.drain(..k));
            n = k;
            if !self.pending.is_empty() {
                return n;
            }
        }
        if n >= max {
            return n;
        }
        std::mem::swap(&mut self.sink, out);
        let base = self.sink.len() - n;
        while self.sink.len() - base < max {
            if !self.step(t_ms) {
                break;
            }
        }
        // The last event may have produced more than fits (a tick emits 4 per machine).
        let limit = base.saturating_add(max);
        if self.sink.len() > limit {
            self.pending.extend(self.sink.drain(limit..));
        }
        let n = self.sink.len() - base;
        std::mem::swap(&mut self.sink, out);
        n
    }

    /// Event time of the next event to be emitted, or `None` when the simulation is over.
    pub fn next_event_time(&mut self) -> Option<i64> {
        loop {
            if !self.pending.is_empty() {
                return Some(self.now_ms);
            }
            // Handling an event may emit nothing (a stale finish, a release), so look further.
            if !self.step_to_pending() {
                return None;
            }
        }
    }

    /// Handles the next event outside `emit_until`, keeping its payloads in `pending`.
    fn step_to_pending(&mut self) -> bool {
        let stepped = self.step(i64::MAX);
        self.pending.extend(self.sink.drain(..));
        stepped
    }

    /// Whether every event has been emitted.
    pub fn is_finished(&mut self) -> bool {
        self.next_event_time().is_none()
    }

    /// Simulated time of the last handled event (start time before the first).
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// End of the simulated span (`i64::MAX` when unbounded).
    pub fn end_ms(&self) -> i64 {
        self.end_ms
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Ground truth so far (wear trajectories, failures, maintenance, silences, part labels).
    pub fn ground_truth(&self) -> &GroundTruth {
        &self.truth
    }

    /// Current wear of machine `index` (0-based).
    pub fn wear(&self, index: usize) -> Option<f64> {
        self.machines.get(index).map(|m| m.wear)
    }

    /// Current failure mode (of the open trajectory) of machine `index`.
    pub fn failure_mode(&self, index: usize) -> Option<FailureMode> {
        self.machines.get(index).map(|m| m.mode)
    }

    /// Current state of machine `index`.
    pub fn machine_state(&self, index: usize) -> Option<MachineState> {
        self.machines.get(index).map(|m| m.state)
    }

    /// Machine ids in index order.
    pub fn machine_ids(&self) -> impl Iterator<Item = &str> {
        self.machines.iter().map(|m| m.id.as_str())
    }

    /// Jobs submitted and not yet completed or cancelled.
    pub fn open_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Overrides wear of machine `index` (clamped to [0, 1)); for tests and what-if studies.
    pub fn set_wear(&mut self, index: usize, wear: f64) {
        if let Some(m) = self.machines.get_mut(index) {
            m.wear = wear.clamp(0.0, 0.999_999);
        }
    }

    // ---- engine ----------------------------------------------------------------------------

    fn schedule(&mut self, time: i64, ev: Ev) {
        if time >= self.end_ms {
            return;
        }
        self.seq += 1;
        self.queue.push(Scheduled {
            time,
            rank: ev.rank(),
            seq: self.seq,
            ev,
        });
    }

    /// Handles the next queued event if its time is `<= limit`.
    fn step(&mut self, limit: i64) -> bool {
        match self.queue.peek() {
            Some(s) if s.time <= limit => {}
            _ => return false,
        }
        let Some(s) = self.queue.pop() else {
            return false;
        };
        self.now_ms = s.time;
        let t = s.time;
        match s.ev {
            Ev::SensorTick => self.sensor_tick(t),
            Ev::HeartbeatTick => self.heartbeat_tick(t),
            Ev::JobArrival => self.job_arrival(t),
            Ev::JobRelease(j) => self.job_release(t, j),
            Ev::JobCancel(j) => self.job_cancel(t, j),
            Ev::OpFinish { m, epoch } => {
                if self.machines[m].epoch == epoch && self.machines[m].running.is_some() {
                    self.op_finish(t, m);
                }
            }
            Ev::RandomFault(m) => self.random_fault(t, m),
            Ev::RepairStart(m) => {
                if self.machines[m].state == MachineState::Failed {
                    self.start_maintenance(t, m, MaintenanceKind::Repair);
                }
            }
            Ev::MaintenanceEnd(m) => self.finish_maintenance(t, m),
            Ev::PreventiveDue { m, gen } => self.preventive_due(t, m, gen),
            Ev::SilenceStart(m) => self.silence_start(t, m),
            Ev::SilenceEnd(m) => self.silence_end(t, m),
        }
        true
    }

    fn sensor_tick(&mut self, t: i64) {
        let wp = self.cfg.wear;
        let dt_h = self.dt_hours;
        let alpha = self.thermal_alpha;
        let shock_p = wp.shock_rate_per_hour * dt_h;
        let mut failed_any = false;
        for i in 0..self.machines.len() {
            let m = &mut self.machines[i];
            let act = m.activity();
            let mut fail = false;
            if act != Activity::Stopped {
                m.wear += wear_increment(m.wear_per_hour, act, &wp, dt_h);
                if shock_p > 0.0 && m.rng.gen::<f64>() < shock_p {
                    m.wear += wp.shock_mean * m.rng.sample::<f64, _>(rand_distr::Exp1);
                }
                if m.wear >= 1.0 {
                    m.wear = 1.0;
                    fail = true;
                } else if m.wear > wp.hazard_onset {
                    let p = 1.0 - (-hazard_per_hour(m.wear, &wp) * dt_h).exp();
                    fail = m.rng.gen::<f64>() < p;
                }
            }
            let means = sensor_means(&m.base, act, m.wear, m.mode);
            m.temp += (means.temperature_c - m.temp) * alpha;
            if fail {
                let mode = m.mode;
                self.fail(t, i, mode.fault_code(), Some(mode));
                failed_any = true;
            }
            let m = &mut self.machines[i];
            if m.silent || m.state == MachineState::Maintenance {
                continue;
            }
            // After a failure in this very tick the machine reads as stopped.
            let act = m.activity();
            let means = if fail {
                sensor_means(&m.base, act, m.wear, m.mode)
            } else {
                means
            };
            let n = |rng: &mut ChaCha8Rng| rng.sample::<f64, _>(StandardNormal);
            let temp = m.temp + NOISE_TEMP * n(&mut m.rng);
            let (vib, pres, speed) = if act == Activity::Stopped {
                (
                    (0.02 * n(&mut m.rng)).abs(),
                    (NOISE_PRESSURE * n(&mut m.rng)).abs(),
                    0.0,
                )
            } else {
                let mut vib = means.vibration_mm_s + NOISE_VIB * n(&mut m.rng);
                if m.mode == FailureMode::HydraulicLeak
                    && m.rng.gen::<f64>() < LEAK_SPIKE_PROB * m.wear * m.wear
                {
                    vib += m.rng.gen_range(LEAK_SPIKE_MIN..LEAK_SPIKE_MAX);
                }
                (
                    vib.max(0.0),
                    (means.pressure_bar + NOISE_PRESSURE * n(&mut m.rng)).max(0.0),
                    (means.speed_rpm * (1.0 + NOISE_SPEED_REL * n(&mut m.rng))).max(0.0),
                )
            };
            for (sensor, value) in [
                (SensorKind::Temperature, temp),
                (SensorKind::Vibration, vib),
                (SensorKind::Pressure, pres),
                (SensorKind::Speed, speed),
            ] {
                self.sink.push(Payload::SensorReading(SensorReading {
                    machine_id: m.id.clone(),
                    sensor,
                    value,
                    unit: sensor.default_unit().to_string(),
                    event_time: t,
                }));
            }
        }
        self.schedule(
            t.saturating_add(as_i64(self.cfg.sensor_interval_ms)),
            Ev::SensorTick,
        );
        if failed_any {
            self.dispatch(t);
        }
    }

    fn heartbeat_tick(&mut self, t: i64) {
        for m in &self.machines {
            if m.silent {
                continue;
            }
            self.sink.push(Payload::MachineEvent(machine_event(
                &m.id,
                MachineEventKind::Heartbeat,
                t,
                MachineEventExtra {
                    busy: Some(m.state == MachineState::Busy),
                    ..Default::default()
                },
            )));
        }
        self.schedule(
            t.saturating_add(as_i64(self.cfg.heartbeat_interval_ms)),
            Ev::HeartbeatTick,
        );
    }

    fn job_arrival(&mut self, t: i64) {
        let seq = self.next_job_seq;
        self.next_job_seq += 1;
        let cfg = &self.cfg;
        let rng = &mut self.plant_rng;
        let n_machines = self.machines.len();
        let n_ops = draw_u32(rng, &cfg.ops_per_job) as usize;
        let mut ops = Vec::with_capacity(n_ops);
        let mut total_min = 0u64;
        for _ in 0..n_ops {
            let k = (draw_u32(rng, &cfg.eligible_per_op) as usize).min(n_machines);
            let work = draw_f64(rng, &cfg.op_work);
            let load = draw_f64(rng, &cfg.op_load);
            let mut chosen = sample(rng, n_machines, k).into_vec();
            chosen.sort_unstable();
            let eligible: Vec<(usize, u64)> = chosen
                .into_iter()
                .map(|m| {
                    let jitter: f64 = rng.gen_range(0.9..1.1);
                    let d = (self.machines[m].cycle_base_ms as f64 * work * jitter).round();
                    (m, (d as u64).max(1))
                })
                .collect();
            total_min += eligible.iter().map(|e| e.1).min().unwrap_or(0);
            ops.push(OpSpec { eligible, load });
        }
        let priority = rng.gen_range(1..=5);
        let release = t.saturating_add(as_i64(draw_u64(rng, &cfg.release_delay_ms)));
        let slack = draw_f64(rng, &cfg.due_slack);
        let due = release.saturating_add((total_min as f64 * slack) as i64);
        let cancel_at = if rng.gen::<f64>() < cfg.cancel_probability {
            Some(release + (rng.gen::<f64>() * (due - release) as f64) as i64)
        } else {
            None
        };
        let id = job_id(seq);
        let operations = ops
            .iter()
            .map(|op| Operation {
                eligible: op
                    .eligible
                    .iter()
                    .map(|&(m, d)| EligibleMachine {
                        machine_id: self.machines[m].id.clone(),
                        duration_ms: as_i64(d),
                    })
                    .collect(),
            })
            .collect();
        self.sink.push(Payload::JobEvent(JobEvent {
            job_id: id.clone(),
            kind: JobEventKind::Submitted,
            event_time: t,
            priority,
            due_date: Some(due),
            release_time: Some(release),
            operations,
            operation_index: None,
            machine_id: None,
        }));
        self.jobs.insert(
            seq,
            Job {
                id,
                ops,
                priority,
                due_ms: due,
                next_op: 0,
                running_on: None,
                released: false,
                cancel_requested: false,
            },
        );
        self.schedule(release, Ev::JobRelease(seq));
        if let Some(c) = cancel_at {
            self.schedule(c, Ev::JobCancel(seq));
        }
        let gap = exp_ms(&mut self.plant_rng, self.interarrival_mean_ms);
        self.schedule(t.saturating_add(gap), Ev::JobArrival);
    }

    fn job_release(&mut self, t: i64, seq: u64) {
        if let Some(job) = self.jobs.get_mut(&seq) {
            job.released = true;
            self.ready.insert((Reverse(job.priority), job.due_ms, seq));
            self.dispatch(t);
        }
    }

    fn job_cancel(&mut self, t: i64, seq: u64) {
        let Some(job) = self.jobs.get_mut(&seq) else {
            return; // already completed
        };
        if job.running_on.is_some() {
            // Cancelling mid-operation would leave a started operation without an end; the
            // cancellation takes effect when the running operation finishes.
            job.cancel_requested = true;
            return;
        }
        if job.released {
            self.ready.remove(&(Reverse(job.priority), job.due_ms, seq));
        }
        self.cancel_now(t, seq);
    }

    fn cancel_now(&mut self, t: i64, seq: u64) {
        if let Some(job) = self.jobs.remove(&seq) {
            self.sink.push(Payload::JobEvent(job_event(
                job.id,
                JobEventKind::Cancelled,
                t,
            )));
        }
    }

    /// Assigns ready operations to available eligible machines, best key first, each to its
    /// eligible machine with the shortest planned duration.
    fn dispatch(&mut self, t: i64) {
        if self.ready.is_empty() {
            return;
        }
        let mut free = 0usize;
        for (i, m) in self.machines.iter().enumerate() {
            let a = m.available();
            self.scratch_taken[i] = !a;
            free += usize::from(a);
        }
        if free == 0 {
            return;
        }
        let mut assign = std::mem::take(&mut self.scratch_assign);
        assign.clear();
        for key in &self.ready {
            let Some(job) = self.jobs.get(&key.2) else {
                continue;
            };
            let best = job.ops[job.next_op]
                .eligible
                .iter()
                .filter(|(m, _)| !self.scratch_taken[*m])
                .min_by_key(|(m, d)| (*d, *m));
            if let Some(&(m, _)) = best {
                self.scratch_taken[m] = true;
                assign.push((*key, m));
                free -= 1;
                if free == 0 {
                    break;
                }
            }
        }
        for &(key, m) in &assign {
            self.ready.remove(&key);
            self.start_op(t, key.2, m);
        }
        self.scratch_assign = assign;
    }

    fn start_op(&mut self, t: i64, seq: u64, mi: usize) {
        let Some(job) = self.jobs.get_mut(&seq) else {
            return;
        };
        let op_index = job.next_op;
        let op = &job.ops[op_index];
        let planned = op.eligible.iter().find(|e| e.0 == mi).map_or(1, |e| e.1);
        let m = &mut self.machines[mi];
        let noise = (0.05 * m.rng.sample::<f64, _>(StandardNormal)).exp();
        let cycle_ms =
            ((planned as f64) * (1.0 + self.cfg.wear.cycle_slowdown * m.wear) * noise).round();
        let cycle_ms = (cycle_ms as u64).max(1);
        m.state = MachineState::Busy;
        m.running = Some(Running {
            job: seq,
            load: op.load,
            cycle_ms,
        });
        let epoch = m.epoch;
        job.running_on = Some(mi);
        let mut ev = job_event(job.id.clone(), JobEventKind::Started, t);
        ev.operation_index = Some(op_index as i32);
        ev.machine_id = Some(m.id.clone());
        self.sink.push(Payload::JobEvent(ev));
        self.schedule(
            t.saturating_add(as_i64(cycle_ms)),
            Ev::OpFinish { m: mi, epoch },
        );
    }

    fn op_finish(&mut self, t: i64, mi: usize) {
        let Some(run) = self.machines[mi].running.take() else {
            return;
        };
        let part_seq = self.next_part_seq;
        self.next_part_seq += 1;
        let part = part_id(part_seq);
        let Some(job) = self.jobs.get_mut(&run.job) else {
            return;
        };
        let op_index = job.next_op;
        job.next_op += 1;
        job.running_on = None;
        let job_id_s = job.id.clone();
        let finished = job.next_op >= job.ops.len();
        let cancel = job.cancel_requested;
        let key = (Reverse(job.priority), job.due_ms, run.job);

        let m = &mut self.machines[mi];
        m.state = MachineState::Idle;
        self.sink.push(Payload::MachineEvent(machine_event(
            &m.id,
            MachineEventKind::CycleCompleted,
            t,
            MachineEventExtra {
                job_id: Some(job_id_s.clone()),
                part_id: Some(part.clone()),
                cycle_time_ms: Some(as_i64(run.cycle_ms)),
                ..Default::default()
            },
        )));
        if self.cfg.image_every_part {
            let d = &self.cfg.defects;
            let p = (d.base_rate + d.wear_gain * m.wear * m.wear).clamp(0.0, 1.0);
            let (data, label) = self.images.image(&mut self.image_rng, p);
            self.sink.push(Payload::Image(Image {
                machine_id: m.id.clone(),
                part_id: part.clone(),
                media_type: self.images.media_type().to_string(),
                data,
                event_time: t,
                request_id: None,
            }));
            self.truth.parts.push(PartTruth {
                part_id: part,
                machine: mi,
                time_ms: t,
                defect: label,
            });
        }
        let mut ev = job_event(job_id_s, JobEventKind::Completed, t);
        ev.operation_index = Some(op_index as i32);
        ev.machine_id = Some(m.id.clone());
        self.sink.push(Payload::JobEvent(ev));

        if finished {
            self.jobs.remove(&run.job);
        } else if cancel {
            self.cancel_now(t, run.job);
        } else {
            self.ready.insert(key);
        }
        if self.machines[mi].pm_pending {
            self.machines[mi].pm_pending = false;
            self.start_maintenance(t, mi, MaintenanceKind::Preventive);
        }
        self.dispatch(t);
    }

    /// The machine stops with `code`; an operation in progress goes back to the ready queue.
    fn fail(&mut self, t: i64, mi: usize, code: &'static str, mode: Option<FailureMode>) {
        let m = &mut self.machines[mi];
        let wear = m.wear;
        let interrupted = m.running.take();
        m.epoch = m.epoch.wrapping_add(1);
        m.state = MachineState::Failed;
        m.pm_pending = false;
        let mut extra = MachineEventExtra {
            fault_code: Some(code.to_string()),
            ..Default::default()
        };
        let mut requeue = None;
        if let Some(run) = interrupted {
            if let Some(job) = self.jobs.get_mut(&run.job) {
                job.running_on = None;
                extra.job_id = Some(job.id.clone());
                extra.detail = Some(format!("interrupted operation {}", job.next_op));
                requeue = Some((
                    run.job,
                    job.cancel_requested,
                    (Reverse(job.priority), job.due_ms, run.job),
                ));
            }
        }
        let id = &self.machines[mi].id;
        self.sink.push(Payload::MachineEvent(machine_event(
            id,
            MachineEventKind::Fault,
            t,
            extra,
        )));
        if let Some((seq, cancel, key)) = requeue {
            if cancel {
                self.cancel_now(t, seq);
            } else {
                self.ready.insert(key);
            }
        }
        let tr = &mut self.truth.machines[mi];
        tr.failures.push(FailureRecord {
            time_ms: t,
            fault_code: code,
            mode,
            wear,
        });
        if let Some(open) = tr.trajectories.last_mut() {
            open.end_ms = Some(t);
            open.wear_at_end = Some(wear);
            open.end = match mode {
                Some(_) => TrajectoryEnd::WearFailure,
                None => TrajectoryEnd::RandomFault { fault_code: code },
            };
        }
        let m = &mut self.machines[mi];
        let delay = as_i64(draw_u64(&mut m.rng, &self.cfg.repair_delay_ms));
        self.schedule(t.saturating_add(delay), Ev::RepairStart(mi));
    }

    fn start_maintenance(&mut self, t: i64, mi: usize, kind: MaintenanceKind) {
        let m = &mut self.machines[mi];
        m.state = MachineState::Maintenance;
        m.maintenance_kind = kind;
        let wear = m.wear;
        let dur = match kind {
            MaintenanceKind::Repair => &self.cfg.repair_duration_ms,
            MaintenanceKind::Preventive => &self.cfg.preventive_duration_ms,
        };
        let dur = as_i64(draw_u64(&mut m.rng, dur));
        let fault = self.truth.machines[mi]
            .failures
            .last()
            .map_or("", |f| f.fault_code);
        let detail = match kind {
            MaintenanceKind::Repair => format!("repair {fault}"),
            MaintenanceKind::Preventive => "preventive".to_string(),
        };
        self.sink.push(Payload::MachineEvent(machine_event(
            &m.id,
            MachineEventKind::MaintenanceStarted,
            t,
            MachineEventExtra {
                detail: Some(detail),
                ..Default::default()
            },
        )));
        let tr = &mut self.truth.machines[mi];
        if kind == MaintenanceKind::Preventive {
            if let Some(open) = tr.trajectories.last_mut() {
                open.end_ms = Some(t);
                open.wear_at_end = Some(wear);
                open.end = TrajectoryEnd::Preventive;
            }
        }
        tr.maintenance.push(MaintenanceRecord {
            start_ms: t,
            end_ms: None,
            kind,
            wear_before: wear,
            wear_after: None,
        });
        self.schedule(t.saturating_add(dur), Ev::MaintenanceEnd(mi));
    }

    fn finish_maintenance(&mut self, t: i64, mi: usize) {
        let wp = self.cfg.wear;
        let m = &mut self.machines[mi];
        if m.state != MachineState::Maintenance {
            return;
        }
        m.wear = if wp.reset_max > 0.0 {
            m.rng.gen_range(0.0..wp.reset_max)
        } else {
            0.0
        };
        m.mode = FailureMode::draw(&mut m.rng, &wp.modes);
        m.state = MachineState::Idle;
        m.pm_gen = m.pm_gen.wrapping_add(1);
        let (wear, mode, gen) = (m.wear, m.mode, m.pm_gen);
        let kind = m.maintenance_kind;
        self.sink.push(Payload::MachineEvent(machine_event(
            &m.id,
            MachineEventKind::MaintenanceFinished,
            t,
            MachineEventExtra {
                detail: Some(kind.as_str().to_string()),
                ..Default::default()
            },
        )));
        let pm_at = if self.cfg.preventive_interval_ms > 0 {
            let jitter: f64 = m.rng.gen_range(0.8..1.2);
            Some(t.saturating_add((self.cfg.preventive_interval_ms as f64 * jitter) as i64))
        } else {
            None
        };
        let tr = &mut self.truth.machines[mi];
        if let Some(rec) = tr.maintenance.last_mut() {
            rec.end_ms = Some(t);
            rec.wear_after = Some(wear);
        }
        tr.trajectories.push(Trajectory {
            start_ms: t,
            end_ms: None,
            mode,
            end: TrajectoryEnd::Open,
            wear_at_start: wear,
            wear_at_end: None,
        });
        if let Some(at) = pm_at {
            self.schedule(at, Ev::PreventiveDue { m: mi, gen });
        }
        self.dispatch(t);
    }

    fn preventive_due(&mut self, t: i64, mi: usize, gen: u32) {
        let m = &mut self.machines[mi];
        if m.pm_gen != gen {
            return;
        }
        match m.state {
            MachineState::Idle => self.start_maintenance(t, mi, MaintenanceKind::Preventive),
            MachineState::Busy => m.pm_pending = true,
            // A repair is under way and will reschedule preventive maintenance when it ends.
            MachineState::Failed | MachineState::Maintenance => {}
        }
    }

    fn schedule_random_fault(&mut self, mi: usize, from: i64) {
        let rate = self.cfg.fault_rate_per_hour;
        if rate <= 0.0 {
            return;
        }
        let gap = exp_ms(&mut self.machines[mi].rng, MS_PER_HOUR / rate);
        self.schedule(from.saturating_add(gap), Ev::RandomFault(mi));
    }

    fn random_fault(&mut self, t: i64, mi: usize) {
        let m = &mut self.machines[mi];
        // Faults strike running machines only; the process is memoryless, so simply drawing the
        // next one from now is the same Poisson process restricted to running time.
        if matches!(m.state, MachineState::Idle | MachineState::Busy) {
            let code = RANDOM_FAULT_CODES[m.rng.gen_range(0..RANDOM_FAULT_CODES.len())];
            self.fail(t, mi, code, None);
            self.dispatch(t);
        }
        self.schedule_random_fault(mi, t);
    }

    fn schedule_silence(&mut self, mi: usize, from: i64) {
        let rate = self.cfg.silence_rate_per_day;
        if rate <= 0.0 {
            return;
        }
        let gap = exp_ms(&mut self.machines[mi].rng, 24.0 * MS_PER_HOUR / rate);
        self.schedule(from.saturating_add(gap), Ev::SilenceStart(mi));
    }

    fn silence_start(&mut self, t: i64, mi: usize) {
        let m = &mut self.machines[mi];
        m.silent = true;
        let dur = as_i64(draw_u64(&mut m.rng, &self.cfg.silence_duration_ms));
        self.truth.machines[mi].silences.push(Interval {
            start_ms: t,
            end_ms: None,
        });
        self.schedule(t.saturating_add(dur), Ev::SilenceEnd(mi));
    }

    fn silence_end(&mut self, t: i64, mi: usize) {
        self.machines[mi].silent = false;
        if let Some(s) = self.truth.machines[mi].silences.last_mut() {
            s.end_ms = Some(t);
        }
        self.schedule_silence(mi, t);
    }
}

impl Iterator for Simulator {
    type Item = Payload;

    fn next(&mut self) -> Option<Payload> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(p);
            }
            if !self.step_to_pending() {
                return None;
            }
        }
    }
}

#[derive(Default)]
struct MachineEventExtra {
    job_id: Option<String>,
    part_id: Option<String>,
    cycle_time_ms: Option<i64>,
    fault_code: Option<String>,
    detail: Option<String>,
    busy: Option<bool>,
}

fn machine_event(id: &str, kind: MachineEventKind, t: i64, x: MachineEventExtra) -> MachineEvent {
    MachineEvent {
        machine_id: id.to_string(),
        kind,
        event_time: t,
        job_id: x.job_id,
        part_id: x.part_id,
        cycle_time_ms: x.cycle_time_ms,
        fault_code: x.fault_code,
        detail: x.detail,
        busy: x.busy,
    }
}

fn job_event(job_id: String, kind: JobEventKind, t: i64) -> JobEvent {
    JobEvent {
        job_id,
        kind,
        event_time: t,
        priority: 1,
        due_date: None,
        release_time: None,
        operations: Vec::new(),
        operation_index: None,
        machine_id: None,
    }
}
