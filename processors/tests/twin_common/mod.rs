//! Test harness for the twin processor: builds input payloads and drives a processor the way the
//! runtime does (event, then `on_watermark` when event time advances).

#![allow(dead_code)]

use twinline_processors::twin::{TwinConfig, TwinProcessor};
use twinline_processors::{Emitter, Event, Position, ProcessError, Processor};
use twinline_schemas::{
    Defect, MachineEvent, MachineEventKind, Payload, SensorKind, SensorReading, Topic, TwinState,
};

pub fn reading(machine: &str, sensor: SensorKind, value: f64, t: i64) -> Payload {
    Payload::SensorReading(SensorReading {
        machine_id: machine.to_owned(),
        sensor,
        value,
        unit: String::new(),
        event_time: t,
    })
}

pub fn machine_event(machine: &str, kind: MachineEventKind, t: i64) -> MachineEvent {
    MachineEvent {
        machine_id: machine.to_owned(),
        kind,
        event_time: t,
        job_id: None,
        part_id: None,
        cycle_time_ms: None,
        fault_code: None,
        detail: None,
        busy: None,
    }
}

pub fn cycle(machine: &str, t: i64) -> Payload {
    Payload::MachineEvent(machine_event(machine, MachineEventKind::CycleCompleted, t))
}

pub fn heartbeat(machine: &str, busy: Option<bool>, t: i64) -> Payload {
    Payload::MachineEvent(MachineEvent {
        busy,
        ..machine_event(machine, MachineEventKind::Heartbeat, t)
    })
}

pub fn fault(machine: &str, code: &str, t: i64) -> Payload {
    Payload::MachineEvent(MachineEvent {
        fault_code: Some(code.to_owned()),
        ..machine_event(machine, MachineEventKind::Fault, t)
    })
}

pub fn maintenance_started(machine: &str, t: i64) -> Payload {
    Payload::MachineEvent(machine_event(
        machine,
        MachineEventKind::MaintenanceStarted,
        t,
    ))
}

pub fn maintenance_finished(machine: &str, t: i64) -> Payload {
    Payload::MachineEvent(machine_event(
        machine,
        MachineEventKind::MaintenanceFinished,
        t,
    ))
}

pub fn defect(machine: &str, detected: bool, t: i64) -> Payload {
    Payload::Defect(Defect {
        machine_id: machine.to_owned(),
        part_id: format!("part-{t}"),
        event_time: t,
        defect_detected: detected,
        defect_type: if detected { "scratch" } else { "none" }.to_owned(),
        confidence: 0.9,
        ..Defect::default()
    })
}

/// (topic, key, event time) of an input payload, as the runtime would derive them.
pub fn meta(p: &Payload) -> (Topic, &str, i64) {
    match p {
        Payload::SensorReading(r) => (Topic::SensorReadings, &r.machine_id, r.event_time),
        Payload::MachineEvent(e) => (Topic::MachineEvents, &e.machine_id, e.event_time),
        Payload::Defect(d) => (Topic::Defects, &d.machine_id, d.event_time),
        other => panic!("not a twin input: {other:?}"),
    }
}

/// Drives one processor like a partition task: events in order, watermark = max event time.
pub struct Harness {
    pub twin: TwinProcessor,
    pub watermark: i64,
    offset: u64,
    out: Emitter,
}

impl Harness {
    pub fn new(cfg: TwinConfig) -> Self {
        Self {
            twin: TwinProcessor::new(cfg).expect("valid config"),
            watermark: i64::MIN,
            offset: 0,
            out: Emitter::new(),
        }
    }

    pub fn from_processor(twin: TwinProcessor, watermark: i64, offset: u64) -> Self {
        Self {
            twin,
            watermark,
            offset,
            out: Emitter::new(),
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Process one event (and the watermark it advances); returns the twin states emitted.
    pub fn feed(&mut self, p: &Payload) -> Result<Vec<TwinState>, ProcessError> {
        let (topic, key, t) = meta(p);
        self.feed_keyed(p, topic, key, t)
    }

    pub fn feed_keyed(
        &mut self,
        p: &Payload,
        topic: Topic,
        key: &str,
        t: i64,
    ) -> Result<Vec<TwinState>, ProcessError> {
        let ev = Event {
            position: Position {
                topic,
                partition: 0,
                offset: self.offset,
                origin: self.offset,
            },
            event_time: t,
            key,
            payload: p,
        };
        self.offset += 1;
        self.twin.on_event(&ev, &mut self.out)?;
        if t > self.watermark {
            self.watermark = t;
            self.twin.on_watermark(t, &mut self.out)?;
        }
        Ok(self.take())
    }

    /// Advance the watermark without an event (as when another partition of the task moves on).
    pub fn advance(&mut self, t: i64) -> Vec<TwinState> {
        if t > self.watermark {
            self.watermark = t;
            self.twin.on_watermark(t, &mut self.out).expect("watermark");
        }
        self.take()
    }

    fn take(&mut self) -> Vec<TwinState> {
        self.out
            .drain()
            .map(|e| {
                assert_eq!(e.topic, Topic::TwinState);
                match e.payload {
                    Payload::TwinState(s) => {
                        assert_eq!(e.key, s.machine_id, "key is the machine id");
                        assert!(s.event_id.is_empty(), "the runtime fills event_id");
                        s
                    }
                    other => panic!("twin emitted {other:?}"),
                }
            })
            .collect()
    }

    pub fn feed_ok(&mut self, p: &Payload) -> Vec<TwinState> {
        self.feed(p).expect("event accepted")
    }
}

/// Deterministic noise in [-1, 1) (a 64-bit LCG), so tests need no RNG crate.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }

    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}
