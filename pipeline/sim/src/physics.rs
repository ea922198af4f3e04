//! The machine physics: per-machine sensor baselines, the expected sensor values as a function of
//! activity, wear and failure mode, the wear growth law and the failure hazard.
//!
//! Everything here is a pure function of its arguments; the simulator adds the noise and keeps
//! the state. The coefficients are documented in the crate docs, which the predictive work
//! reads as the specification of the data it trains on.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{ModeWeights, WearParams};

/// How a machine degrades on its way to a wear failure. Each run-to-failure trajectory (from a
/// maintenance to the next) follows one mode, drawn with `WearParams::modes` weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureMode {
    /// Spindle bearing wear: vibration rises quadratically with wear, temperature mildly.
    BearingWear,
    /// Cooling degradation: temperature rises quadratically with wear, speed drops slightly.
    Overheating,
    /// Hydraulic leak: pressure drops linearly with wear, vibration spikes become frequent.
    HydraulicLeak,
}

impl FailureMode {
    pub const ALL: [FailureMode; 3] = [
        FailureMode::BearingWear,
        FailureMode::Overheating,
        FailureMode::HydraulicLeak,
    ];

    /// The `fault_code` of the FAULT machine event when this mode fails.
    pub fn fault_code(self) -> &'static str {
        match self {
            FailureMode::BearingWear => "BEARING_WEAR",
            FailureMode::Overheating => "OVERHEATING",
            FailureMode::HydraulicLeak => "HYDRAULIC_LEAK",
        }
    }

    /// Draws a mode with the given weights (validated to have a positive sum).
    pub fn draw<R: Rng + ?Sized>(rng: &mut R, w: &ModeWeights) -> FailureMode {
        let total = w.bearing_wear + w.overheating + w.hydraulic_leak;
        let x = rng.gen::<f64>() * total;
        if x < w.bearing_wear {
            FailureMode::BearingWear
        } else if x < w.bearing_wear + w.overheating {
            FailureMode::Overheating
        } else {
            FailureMode::HydraulicLeak
        }
    }
}

/// `fault_code`s of the random faults that have nothing to do with wear.
pub const RANDOM_FAULT_CODES: [&str; 2] = ["ELECTRICAL", "MATERIAL_JAM"];

/// A machine's healthy, idle sensor values, drawn once per machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Idle temperature, °C (drawn 32..42).
    pub temperature_c: f64,
    /// Idle vibration velocity RMS, mm/s (drawn 0.8..2.0).
    pub vibration_mm_s: f64,
    /// Hydraulic pressure, bar (drawn 5.5..7.5).
    pub pressure_bar: f64,
    /// Spindle speed, rpm (drawn 1200..3000).
    pub speed_rpm: f64,
}

impl Baseline {
    pub fn draw<R: Rng + ?Sized>(rng: &mut R) -> Baseline {
        Baseline {
            temperature_c: rng.gen_range(32.0..42.0),
            vibration_mm_s: rng.gen_range(0.8..2.0),
            pressure_bar: rng.gen_range(5.5..7.5),
            speed_rpm: rng.gen_range(1200.0..3000.0),
        }
    }
}

/// What the machine is physically doing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activity {
    /// Failed or under maintenance: spindle and pump off.
    Stopped,
    /// Powered, spindle turning, no part.
    Idle,
    /// Processing a part at the given load (1.0 = nominal).
    Busy { load: f64 },
}

/// Temperature rise at load 1.0 over the idle baseline, °C.
pub const TEMP_BUSY_PER_LOAD: f64 = 10.0;
/// Temperature of a stopped machine below its idle baseline (cooling toward ambient), °C.
pub const TEMP_STOPPED_DROP: f64 = 8.0;
/// Thermal time constant of the first-order lag toward the target temperature, seconds.
pub const THERMAL_TAU_S: f64 = 120.0;
/// Relative vibration increase at load 1.0.
pub const VIB_BUSY_PER_LOAD: f64 = 0.6;
/// Relative speed drop at load 1.0 (the spindle sags under cutting load).
pub const SPEED_BUSY_DROP_PER_LOAD: f64 = 0.02;
/// Pressure drop at load 1.0 (actuators draw oil), bar.
pub const PRESSURE_BUSY_DROP_PER_LOAD: f64 = 0.3;
/// Bearing wear: vibration += `BEARING_VIB * w^2` mm/s, temperature += `BEARING_TEMP * w^2` °C.
pub const BEARING_VIB: f64 = 7.0;
pub const BEARING_TEMP: f64 = 4.0;
/// Overheating: temperature += `OVERHEAT_TEMP * w^2` °C, speed *= `1 - OVERHEAT_SPEED * w^2`.
pub const OVERHEAT_TEMP: f64 = 25.0;
pub const OVERHEAT_SPEED: f64 = 0.12;
/// Hydraulic leak: pressure -= `LEAK_PRESSURE * w` bar; a reading spikes with probability
/// `LEAK_SPIKE_PROB * w^2` by `LEAK_SPIKE_MIN..LEAK_SPIKE_MAX` mm/s.
pub const LEAK_PRESSURE: f64 = 3.0;
pub const LEAK_SPIKE_PROB: f64 = 0.25;
pub const LEAK_SPIKE_MIN: f64 = 3.0;
pub const LEAK_SPIKE_MAX: f64 = 8.0;
/// Gaussian measurement noise (standard deviations): °C, mm/s, bar, and a fraction of base rpm.
pub const NOISE_TEMP: f64 = 0.15;
pub const NOISE_VIB: f64 = 0.08;
pub const NOISE_PRESSURE: f64 = 0.04;
pub const NOISE_SPEED_REL: f64 = 0.002;

/// Noise-free sensor values. `temperature_c` is the target the thermal lag relaxes toward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorMeans {
    pub temperature_c: f64,
    pub vibration_mm_s: f64,
    pub pressure_bar: f64,
    pub speed_rpm: f64,
}

/// Expected sensor values of a machine with `base`, doing `activity`, at wear `w` in mode `mode`.
pub fn sensor_means(base: &Baseline, activity: Activity, w: f64, mode: FailureMode) -> SensorMeans {
    let load = match activity {
        Activity::Stopped => {
            return SensorMeans {
                temperature_c: base.temperature_c - TEMP_STOPPED_DROP,
                vibration_mm_s: 0.0,
                pressure_bar: 0.0,
                speed_rpm: 0.0,
            }
        }
        Activity::Idle => 0.0,
        Activity::Busy { load } => load,
    };
    let w2 = w * w;
    let mut m = SensorMeans {
        temperature_c: base.temperature_c + TEMP_BUSY_PER_LOAD * load,
        vibration_mm_s: base.vibration_mm_s * (1.0 + VIB_BUSY_PER_LOAD * load),
        pressure_bar: base.pressure_bar - PRESSURE_BUSY_DROP_PER_LOAD * load,
        speed_rpm: base.speed_rpm * (1.0 - SPEED_BUSY_DROP_PER_LOAD * load),
    };
    match mode {
        FailureMode::BearingWear => {
            m.vibration_mm_s += BEARING_VIB * w2;
            m.temperature_c += BEARING_TEMP * w2;
        }
        FailureMode::Overheating => {
            m.temperature_c += OVERHEAT_TEMP * w2;
            m.speed_rpm *= 1.0 - OVERHEAT_SPEED * w2;
        }
        FailureMode::HydraulicLeak => {
            m.pressure_bar -= LEAK_PRESSURE * w;
        }
    }
    m
}

/// Wear added over `dt_hours` by a machine whose life at load 1.0 is `1 / rate_per_hour` hours.
pub fn wear_increment(
    rate_per_hour: f64,
    activity: Activity,
    p: &WearParams,
    dt_hours: f64,
) -> f64 {
    let factor = match activity {
        Activity::Stopped => 0.0,
        Activity::Idle => p.idle_factor,
        Activity::Busy { load } => load,
    };
    rate_per_hour * factor * dt_hours
}

/// Failure hazard (per hour) at wear `w`: zero below the onset, then a steep power ramp.
pub fn hazard_per_hour(w: f64, p: &WearParams) -> f64 {
    if w <= p.hazard_onset {
        return 0.0;
    }
    let x = ((w - p.hazard_onset) / (1.0 - p.hazard_onset)).min(1.0);
    p.hazard_max_per_hour * x.powf(p.hazard_exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Baseline = Baseline {
        temperature_c: 40.0,
        vibration_mm_s: 1.0,
        pressure_bar: 6.0,
        speed_rpm: 2000.0,
    };

    #[test]
    fn each_mode_moves_its_own_sensors() {
        let busy = Activity::Busy { load: 1.0 };
        let new = |mode| sensor_means(&BASE, busy, 0.0, mode);
        let worn = |mode| sensor_means(&BASE, busy, 1.0, mode);
        // A new machine looks the same whatever mode it will later fail in.
        assert_eq!(
            new(FailureMode::BearingWear),
            new(FailureMode::HydraulicLeak)
        );
        let (n, b) = (
            new(FailureMode::BearingWear),
            worn(FailureMode::BearingWear),
        );
        assert!((b.vibration_mm_s - n.vibration_mm_s - BEARING_VIB).abs() < 1e-9);
        assert!(b.temperature_c - n.temperature_c < 5.0);
        assert_eq!(b.pressure_bar, n.pressure_bar);
        let o = worn(FailureMode::Overheating);
        assert!(o.temperature_c - n.temperature_c > 20.0);
        assert!(o.speed_rpm < n.speed_rpm * 0.9);
        assert_eq!(o.vibration_mm_s, n.vibration_mm_s);
        let h = worn(FailureMode::HydraulicLeak);
        assert!((n.pressure_bar - h.pressure_bar - LEAK_PRESSURE).abs() < 1e-9);
        assert_eq!(h.temperature_c, n.temperature_c);
    }

    #[test]
    fn bearing_vibration_is_quadratic_in_wear() {
        let v = |w| sensor_means(&BASE, Activity::Idle, w, FailureMode::BearingWear).vibration_mm_s;
        let (d1, d2) = (v(0.25) - v(0.0), v(0.5) - v(0.0));
        assert!((d2 / d1 - 4.0).abs() < 1e-9);
    }

    #[test]
    fn wear_grows_with_load_and_stops_when_stopped() {
        let p = WearParams::default();
        let r = 0.01;
        let idle = wear_increment(r, Activity::Idle, &p, 1.0);
        let light = wear_increment(r, Activity::Busy { load: 0.6 }, &p, 1.0);
        let heavy = wear_increment(r, Activity::Busy { load: 1.4 }, &p, 1.0);
        assert!(0.0 < idle && idle < light && light < heavy);
        assert_eq!(wear_increment(r, Activity::Stopped, &p, 1.0), 0.0);
        assert!((wear_increment(r, Activity::Busy { load: 1.0 }, &p, 100.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn hazard_is_zero_below_onset_and_increasing_after() {
        let p = WearParams::default();
        assert_eq!(hazard_per_hour(p.hazard_onset, &p), 0.0);
        let a = hazard_per_hour(0.9, &p);
        let b = hazard_per_hour(0.97, &p);
        assert!(0.0 < a && a < b && b <= p.hazard_max_per_hour);
    }
}
