//! Per-sensor statistics of one machine (EWMA smoothing, Welford baselines) and the health formula.
//!
//! Everything here runs on the sensor-reading hot path: no allocation, no map lookups, only a few
//! floating-point operations per reading. The formula itself is documented in `super` (the module
//! doc of `twin`).

use serde::{Deserialize, Serialize};

use super::TwinConfig;

/// Number of sensor kinds the twin tracks (temperature, vibration, pressure, speed).
pub(crate) const SENSORS: usize = 4;
pub(crate) const TEMPERATURE: usize = 0;
pub(crate) const VIBRATION: usize = 1;
pub(crate) const PRESSURE: usize = 2;
pub(crate) const SPEED: usize = 3;

/// The direction in which a sensor drifts when the machine degrades: wear heats the machine and
/// makes it vibrate (+1), leaks drop pressure and overheating drops speed (-1). A drift the other
/// way (a cooler, quieter machine) is not a health problem, so it carries no penalty.
const HARM_DIRECTION: [f64; SENSORS] = [1.0, 1.0, -1.0, -1.0];

/// Constants derived once from [`TwinConfig`] so the hot path multiplies instead of dividing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthParams {
    alpha: f64,
    one_minus_alpha: f64,
    baseline_readings: u32,
    min_std_relative: f64,
    min_std_absolute: f64,
    dead_zone: f64,
    /// Largest excess z (after the dead zone) that still counts; beyond it the penalty is flat.
    excess_clip: f64,
    /// `0.5 / z_scale²`, the exponent factor of the Gaussian-shaped penalty.
    gauss_k: f64,
    sensor_weights: [f64; SENSORS],
    defect_weight: f64,
    inv_defect_rate_full: f64,
}

impl HealthParams {
    pub(crate) fn new(cfg: &TwinConfig) -> Self {
        let w = &cfg.weights;
        Self {
            alpha: cfg.ewma_alpha,
            one_minus_alpha: 1.0 - cfg.ewma_alpha,
            baseline_readings: cfg.baseline_readings,
            min_std_relative: cfg.min_std_relative,
            min_std_absolute: cfg.min_std_absolute,
            dead_zone: cfg.z_dead_zone,
            excess_clip: (cfg.z_clip - cfg.z_dead_zone).max(0.0),
            gauss_k: 0.5 / (cfg.z_scale * cfg.z_scale),
            sensor_weights: [w.temperature, w.vibration, w.pressure, w.speed],
            defect_weight: w.defect_rate,
            inv_defect_rate_full: 1.0 / cfg.defect_rate_full,
        }
    }

    /// Health from the cached per-sensor penalties and the windowed defect rate.
    #[inline]
    pub(crate) fn health(&self, sensors: &[SensorState; SENSORS], defect_rate: f64) -> f64 {
        let mut loss = 0.0;
        for (s, w) in sensors.iter().zip(self.sensor_weights.iter()) {
            loss += w * s.penalty;
        }
        loss += self.defect_weight * (defect_rate * self.inv_defect_rate_full).min(1.0);
        (1.0 - loss).clamp(0.0, 1.0)
    }
}

/// Online mean and variance (Welford) of the first `baseline_readings` readings of one sensor.
/// Once that many are in, the baseline freezes and `inv_scale` holds `1 / max(std, floor)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Baseline {
    pub(crate) count: u32,
    pub(crate) mean: f64,
    pub(crate) m2: f64,
    /// `Some` once learned; the reciprocal of the (floored) standard deviation.
    pub(crate) inv_scale: Option<f64>,
}

impl Baseline {
    #[inline]
    fn observe(&mut self, x: f64, p: &HealthParams) {
        if self.inv_scale.is_some() {
            return;
        }
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / f64::from(self.count);
        self.m2 += delta * (x - self.mean);
        if self.count >= p.baseline_readings {
            let std = self.std();
            // A floor so that a nearly noise-free sensor does not turn a 0.1 % drift into z = 50.
            let floor = p.min_std_absolute.max(p.min_std_relative * self.mean.abs());
            self.inv_scale = Some(1.0 / std.max(floor));
        }
    }

    /// The sample standard deviation of the readings seen so far.
    pub(crate) fn std(&self) -> f64 {
        if self.count > 1 {
            (self.m2 / f64::from(self.count - 1)).sqrt()
        } else {
            0.0
        }
    }
}

/// One sensor of one machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SensorState {
    /// EWMA of the readings; `None` until the first reading (or the first after maintenance).
    pub(crate) ewma: Option<f64>,
    pub(crate) baseline: Baseline,
    /// Cached penalty in `[0, 1]` from the last reading; 0 while the baseline is being learned.
    pub(crate) penalty: f64,
}

impl SensorState {
    /// Take one reading: smooth it, feed the baseline if `learn`, and refresh the penalty.
    #[inline]
    pub(crate) fn observe(&mut self, sensor: usize, x: f64, learn: bool, p: &HealthParams) {
        let ewma = match self.ewma {
            Some(prev) => p.alpha * x + p.one_minus_alpha * prev,
            None => x,
        };
        self.ewma = Some(ewma);
        if learn {
            self.baseline.observe(x, p);
        }
        self.penalty = match self.baseline.inv_scale {
            Some(inv_scale) => {
                let z = (ewma - self.baseline.mean) * inv_scale * HARM_DIRECTION[sensor];
                let excess = (z - p.dead_zone).clamp(0.0, p.excess_clip);
                1.0 - (-(excess * excess) * p.gauss_k).exp()
            }
            None => 0.0,
        };
    }

    /// Forget everything (after maintenance): the machine's normal is learned again.
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(baseline_readings: u32) -> HealthParams {
        HealthParams::new(&TwinConfig {
            baseline_readings,
            ..TwinConfig::default()
        })
    }

    #[test]
    fn welford_matches_two_pass_statistics() {
        let p = params(1000);
        let xs: Vec<f64> = (0..500)
            .map(|i| 50.0 + ((i * 37) % 11) as f64 * 0.3 - 1.5)
            .collect();
        let mut b = Baseline::default();
        for &x in &xs {
            b.observe(x, &p);
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert!((b.mean - mean).abs() < 1e-9, "{} vs {}", b.mean, mean);
        assert!((b.std() - var.sqrt()).abs() < 1e-9);
        assert!(b.inv_scale.is_none(), "500 < 1000 readings: still learning");
    }

    #[test]
    fn baseline_freezes_after_the_window() {
        let p = params(10);
        let mut s = SensorState::default();
        for i in 0..10 {
            s.observe(VIBRATION, 1.0 + f64::from(i % 2) * 0.1, true, &p);
        }
        let frozen = s.baseline.clone();
        assert!(frozen.inv_scale.is_some());
        s.observe(VIBRATION, 100.0, true, &p);
        assert_eq!(
            s.baseline, frozen,
            "readings after the window must not move the baseline"
        );
        assert!(
            s.penalty > 0.9,
            "a huge vibration jump is penalised: {}",
            s.penalty
        );
    }

    #[test]
    fn penalty_is_one_sided() {
        let p = params(10);
        let mut up = SensorState::default();
        let mut down = SensorState::default();
        for i in 0..10 {
            let x = 100.0 + f64::from(i % 3);
            up.observe(PRESSURE, x, true, &p);
            down.observe(PRESSURE, x, true, &p);
        }
        for _ in 0..50 {
            up.observe(PRESSURE, 150.0, true, &p);
            down.observe(PRESSURE, 50.0, true, &p);
        }
        assert_eq!(up.penalty, 0.0, "rising pressure is not a leak");
        assert!(down.penalty > 0.9, "falling pressure is: {}", down.penalty);
    }
}
