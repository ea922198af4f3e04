//! The rescheduling processor: plans are valid, disruptions move work off a machine at once,
//! routine job events are batched, equal plans emit nothing, and state survives snapshots.

use std::collections::BTreeMap;

use twinline_processors::scheduler::{JobEventValidator, SchedulerConfig, SchedulerProcessor};
use twinline_processors::{Emitter, Event, Position, ProcessError, Processor};
use twinline_schemas::{
    EligibleMachine, JobEvent, JobEventKind, MachineStatus, MaintenanceAction, MaintenanceRequest,
    Operation, Payload, ScheduleChange, Topic, TwinState, Urgency,
};

const T0: i64 = 1_790_000_000_000;
const MIN: i64 = 60_000;

fn job(id: &str, t: i64, ops: &[&[(&str, i64)]]) -> Payload {
    let mut e = JobEvent::new(id, JobEventKind::Submitted, t);
    e.release_time = Some(t);
    e.due_date = Some(t + 60 * MIN);
    e.operations = ops
        .iter()
        .map(|alts| Operation {
            eligible: alts
                .iter()
                .map(|(m, d)| EligibleMachine {
                    machine_id: m.to_string(),
                    duration_ms: *d,
                })
                .collect(),
        })
        .collect();
    Payload::JobEvent(e)
}

fn progress(id: &str, kind: JobEventKind, t: i64, op: i32, m: &str) -> Payload {
    let mut e = JobEvent::new(id, kind, t);
    e.operation_index = Some(op);
    e.machine_id = Some(m.into());
    Payload::JobEvent(e)
}

fn twin(m: &str, t: i64, status: MachineStatus) -> Payload {
    Payload::TwinState(TwinState {
        machine_id: m.into(),
        event_time: t,
        status,
        last_seen: t,
        ..Default::default()
    })
}

fn request(m: &str, t: i64, id: &str, action: MaintenanceAction, urgency: Urgency) -> Payload {
    Payload::MaintenanceRequest(MaintenanceRequest {
        machine_id: m.into(),
        event_time: t,
        request_id: id.into(),
        action,
        urgency,
        ..Default::default()
    })
}

/// Feeds events in order; returns the schedule changes emitted per event.
struct Driver {
    p: SchedulerProcessor,
    offset: u64,
}

impl Driver {
    fn new(cfg: SchedulerConfig) -> Self {
        Driver {
            p: SchedulerProcessor::new(cfg).expect("valid config"),
            offset: 0,
        }
    }

    fn feed(&mut self, payload: &Payload) -> Vec<ScheduleChange> {
        let topic = payload.topic();
        let position = Position {
            topic,
            partition: 0,
            offset: self.offset,
            origin: self.offset,
        };
        self.offset += 1;
        let key = payload.key().to_string();
        let ev = Event {
            position,
            event_time: payload.event_time(),
            key: &key,
            payload,
        };
        let mut out = Emitter::new();
        self.p.on_event(&ev, &mut out).expect("processed");
        changes(out)
    }

    fn watermark(&mut self, t: i64) -> Vec<ScheduleChange> {
        let mut out = Emitter::new();
        self.p.on_watermark(t, &mut out).expect("watermark");
        changes(out)
    }
}

fn changes(mut out: Emitter) -> Vec<ScheduleChange> {
    out.drain()
        .map(|e| {
            assert_eq!(e.topic, Topic::ScheduleChanges);
            assert_eq!(e.key, "plant");
            match e.payload {
                Payload::ScheduleChange(c) => c,
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect()
}

/// Checks a plan against the routings: eligible machine and duration, job order, no overlap,
/// nothing planned before `t` unless started.
fn assert_valid(c: &ScheduleChange, routings: &BTreeMap<&str, Vec<Vec<(&str, i64)>>>) {
    let mut by_job: BTreeMap<&str, Vec<(i32, i64, i64)>> = BTreeMap::new();
    let mut by_machine: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for p in &c.plan {
        let alts = &routings[p.job_id.as_str()][p.operation_index as usize];
        let d = alts
            .iter()
            .find(|(m, _)| *m == p.machine_id)
            .unwrap_or_else(|| panic!("{p:?}: machine not eligible"))
            .1;
        if !p.started {
            assert_eq!(p.end - p.start, d, "{p:?}: duration");
            assert!(p.start >= c.event_time, "{p:?} planned in the past");
        }
        by_job
            .entry(&p.job_id)
            .or_default()
            .push((p.operation_index, p.start, p.end));
        by_machine
            .entry(&p.machine_id)
            .or_default()
            .push((p.start, p.end));
    }
    for (j, mut ops) in by_job {
        ops.sort();
        for w in ops.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1, "job {j}: operations missing");
            assert!(
                w[1].1 >= w[0].2,
                "job {j}: {:?} before its predecessor ends",
                w[1]
            );
        }
    }
    for (m, mut iv) in by_machine {
        iv.sort();
        for w in iv.windows(2) {
            assert!(w[1].0 >= w[0].1, "machine {m}: overlap {w:?}");
        }
    }
    assert_eq!(
        c.makespan_ms,
        c.plan.iter().map(|p| p.end).max().unwrap() - c.event_time
    );
}

fn routings() -> BTreeMap<&'static str, Vec<Vec<(&'static str, i64)>>> {
    let mut r = BTreeMap::new();
    r.insert(
        "J1",
        vec![
            vec![("M1", 10 * MIN), ("M2", 12 * MIN)],
            vec![("M3", 5 * MIN)],
        ],
    );
    r.insert(
        "J2",
        vec![
            vec![("M1", 8 * MIN), ("M3", 9 * MIN)],
            vec![("M2", 6 * MIN)],
        ],
    );
    r.insert(
        "J3",
        vec![
            vec![("M2", 7 * MIN), ("M1", 7 * MIN)],
            vec![("M1", 4 * MIN), ("M3", 6 * MIN)],
            vec![("M3", 3 * MIN)],
        ],
    );
    r
}

fn submit_all(d: &mut Driver, t: i64) -> Vec<ScheduleChange> {
    let mut all = Vec::new();
    for (id, ops) in routings() {
        let ops: Vec<&[(&str, i64)]> = ops.iter().map(|v| v.as_slice()).collect();
        all.extend(d.feed(&job(id, t, &ops)));
    }
    all
}

#[test]
fn routine_events_are_batched_and_the_plan_is_valid() {
    let mut d = Driver::new(SchedulerConfig::default());
    // The first job plans at once (no plan yet); the next two wait for the interval.
    let first = submit_all(&mut d, T0);
    assert_eq!(
        first.len(),
        1,
        "one replan for three submissions in one interval"
    );
    assert_eq!(first[0].plan_version, 1);
    assert!(
        first[0].reason.contains("1 submitted"),
        "{}",
        first[0].reason
    );
    assert!(d.watermark(T0 + MIN).is_empty(), "interval not yet passed");
    let c = d.watermark(T0 + 5 * MIN);
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!(c.plan_version, 2);
    assert!(c.reason.contains("2 submitted"), "{}", c.reason);
    assert_eq!(
        c.plan.len(),
        7,
        "every operation of the three jobs is planned"
    );
    assert_valid(c, &routings());
    // The moves name the new operations (J2, J3 were not in version 1).
    assert!(c
        .moves
        .iter()
        .any(|m| m.job_id == "J3" && m.previous_machine_id.is_none()));
    // Nothing changed: a later watermark emits nothing.
    assert!(d.watermark(T0 + 20 * MIN).is_empty());
}

#[test]
fn critical_maintenance_moves_work_off_the_machine_at_once() {
    let mut d = Driver::new(SchedulerConfig::default());
    submit_all(&mut d, T0);
    let base = d.watermark(T0 + 5 * MIN).pop().expect("plan");
    let on_m1 = base.plan.iter().filter(|p| p.machine_id == "M1").count();
    assert!(on_m1 > 0, "the plan uses M1: {:?}", base.plan);
    let t = T0 + 6 * MIN;
    let c = d.feed(&request(
        "M1",
        t,
        "R1",
        MaintenanceAction::Open,
        Urgency::Critical,
    ));
    assert_eq!(c.len(), 1, "a critical request replans at once");
    let c = &c[0];
    assert_eq!(c.event_time, t);
    assert!(
        c.reason.contains("R1") && c.reason.contains("CRITICAL"),
        "{}",
        c.reason
    );
    assert_valid(c, &routings());
    // M1 is blocked on [t, t + 2 h): nothing planned there in that window, and the operations
    // that were on M1 now run elsewhere (every one of them has an alternative, except J3 op 1
    // which may wait but not inside the window).
    for p in c.plan.iter().filter(|p| p.machine_id == "M1") {
        assert!(
            p.start >= t + 120 * MIN,
            "{p:?} inside the maintenance window"
        );
    }
    let moved_off: Vec<_> = c
        .moves
        .iter()
        .filter(|m| m.previous_machine_id.as_deref() == Some("M1") && m.machine_id != "M1")
        .collect();
    assert!(!moved_off.is_empty(), "moves: {:?}", c.moves);
    // Closing the request lets M1 work again.
    let c2 = d.feed(&request(
        "M1",
        t + MIN,
        "R1",
        MaintenanceAction::Close,
        Urgency::Critical,
    ));
    assert_eq!(c2.len(), 1);
    assert!(c2[0].reason.contains("closed"), "{}", c2[0].reason);
    assert_valid(&c2[0], &routings());
    assert!(
        c2[0].makespan_ms <= c.makespan_ms,
        "{} > {}",
        c2[0].makespan_ms,
        c.makespan_ms
    );
}

#[test]
fn a_fault_interrupts_the_running_operation_and_recovery_replans() {
    let mut d = Driver::new(SchedulerConfig::default());
    submit_all(&mut d, T0);
    d.watermark(T0 + 5 * MIN);
    d.feed(&progress(
        "J1",
        JobEventKind::Started,
        T0 + 5 * MIN,
        0,
        "M1",
    ));
    let c = d.feed(&twin("M1", T0 + 7 * MIN, MachineStatus::Error));
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert!(
        c.reason.contains("M1 entered ERROR") && c.reason.contains("J1"),
        "{}",
        c.reason
    );
    assert_valid(c, &routings());
    // J1 op 0 is no longer started; it is planned again, not on M1 while M1 is down (1 h).
    let j1 = c
        .plan
        .iter()
        .find(|p| p.job_id == "J1" && p.operation_index == 0)
        .unwrap();
    assert!(!j1.started);
    assert!(j1.machine_id != "M1" || j1.start >= T0 + 67 * MIN, "{j1:?}");
    // Warning is not a disruption; RUNNING again is.
    assert!(d
        .feed(&twin("M2", T0 + 8 * MIN, MachineStatus::Warning))
        .is_empty());
    let back = d.feed(&twin("M1", T0 + 9 * MIN, MachineStatus::Running));
    assert_eq!(back.len(), 1);
    assert!(back[0].reason.contains("M1 is back"), "{}", back[0].reason);
}

#[test]
fn started_operations_stay_and_completed_jobs_leave_the_plan() {
    let mut d = Driver::new(SchedulerConfig::default());
    submit_all(&mut d, T0);
    d.watermark(T0 + 5 * MIN);
    d.feed(&progress(
        "J2",
        JobEventKind::Started,
        T0 + 5 * MIN,
        0,
        "M3",
    ));
    let c = d.watermark(T0 + 10 * MIN).pop().expect("routine replan");
    let j2 = c
        .plan
        .iter()
        .find(|p| p.job_id == "J2" && p.operation_index == 0)
        .unwrap();
    assert!(j2.started);
    assert_eq!(
        (j2.machine_id.as_str(), j2.start, j2.end),
        ("M3", T0 + 5 * MIN, T0 + 14 * MIN)
    );
    assert_valid(&c, &routings());
    let mut c = d.feed(&progress(
        "J2",
        JobEventKind::Completed,
        T0 + 14 * MIN,
        0,
        "M3",
    ));
    c.extend(d.feed(&progress(
        "J2",
        JobEventKind::Started,
        T0 + 14 * MIN,
        1,
        "M2",
    )));
    assert!(c.is_empty(), "within the interval: batched");
    let mut c = d.feed(&progress(
        "J2",
        JobEventKind::Completed,
        T0 + 20 * MIN,
        1,
        "M2",
    ));
    assert_eq!(
        c.len(),
        1,
        "the interval passed: the routine changes replan"
    );
    let c = c.pop().unwrap();
    assert!(
        c.reason.contains("2 completed") && c.reason.contains("1 started"),
        "{}",
        c.reason
    );
    assert!(
        c.plan.iter().all(|p| p.job_id != "J2"),
        "a finished job leaves the plan"
    );
    assert_valid(&c, &routings());
}

fn scenario() -> Vec<Payload> {
    let mut v = Vec::new();
    for (id, ops) in routings() {
        let ops: Vec<&[(&str, i64)]> = ops.iter().map(|v| v.as_slice()).collect();
        v.push(job(id, T0, &ops));
    }
    v.push(progress("J1", JobEventKind::Started, T0 + 6 * MIN, 0, "M2"));
    v.push(request(
        "M3",
        T0 + 7 * MIN,
        "R9",
        MaintenanceAction::Open,
        Urgency::High,
    ));
    v.push(twin("M2", T0 + 8 * MIN, MachineStatus::Offline));
    for k in 0..6 {
        let id = format!("K{k}");
        v.push(job(
            &id,
            T0 + (9 + k) * MIN,
            &[&[("M1", 3 * MIN), ("M2", 4 * MIN)], &[("M3", 2 * MIN)]],
        ));
    }
    v.push(twin("M2", T0 + 30 * MIN, MachineStatus::Idle));
    v
}

fn run(d: &mut Driver, events: &[Payload]) -> Vec<ScheduleChange> {
    events.iter().flat_map(|e| d.feed(e)).collect()
}

#[test]
fn same_events_same_plans_and_snapshots_resume_identically() {
    let events = scenario();
    let a = run(&mut Driver::new(SchedulerConfig::default()), &events);
    let b = run(&mut Driver::new(SchedulerConfig::default()), &events);
    assert!(a.len() >= 4, "{} changes", a.len());
    assert_eq!(a, b);
    // Stop half-way, restore the snapshot into a fresh processor, continue.
    let mut d = Driver::new(SchedulerConfig::default());
    let mut c = run(&mut d, &events[..6]);
    let snap = d.p.snapshot().unwrap();
    let mut d2 = Driver::new(SchedulerConfig::default());
    d2.p.restore(&snap).unwrap();
    d2.offset = d.offset;
    c.extend(run(&mut d2, &events[6..]));
    assert_eq!(a, c);
    assert!(d2.p.restore(b"{}").is_err(), "a bad snapshot is an error");
}

#[test]
fn equal_objective_keeps_the_previous_placements() {
    let mut d = Driver::new(SchedulerConfig::default());
    submit_all(&mut d, T0);
    let base = d.watermark(T0 + 5 * MIN).pop().unwrap();
    // A LOW request (its window 3 days out) does not touch this plan: the re-timed previous plan
    // is as good as anything the search finds, so nothing moves and nothing is emitted.
    let c = d.feed(&request(
        "M2",
        T0 + 5 * MIN,
        "R2",
        MaintenanceAction::Open,
        Urgency::Low,
    ));
    assert!(c.is_empty(), "no change expected, got {:?}", c);
    assert_eq!(d.p.plan(), base.plan.as_slice());
}

#[test]
fn validator_dead_letters_unusable_job_events() {
    let mut v = JobEventValidator;
    let check = |v: &mut JobEventValidator, p: Payload| {
        let key = p.key().to_string();
        let ev = Event {
            position: Position {
                topic: Topic::JobEvents,
                partition: 0,
                offset: 0,
                origin: 0,
            },
            event_time: T0,
            key: &key,
            payload: &p,
        };
        v.on_event(&ev, &mut Emitter::new())
    };
    assert!(check(&mut v, job("J", T0, &[&[("M1", 5)]])).is_ok());
    for (bad, why) in [
        (job("J", T0, &[]), "without operations"),
        (job("J", T0, &[&[]]), "no eligible machine"),
        (job("J", T0, &[&[("M1", -1)]]), "negative duration"),
        (job("J", T0, &[&[("M1", 5), ("M1", 6)]]), "listed twice"),
        (
            job("J", T0, &[&[("M1", 400 * 24 * 60 * MIN)]]),
            "over a year",
        ),
        (job("J", -5, &[&[("M1", 5)]]), "outside 1970"),
        (
            Payload::JobEvent(JobEvent::new("J", JobEventKind::Started, T0)),
            "without operation_index",
        ),
    ] {
        match check(&mut v, bad) {
            Err(ProcessError::BadInput(m)) => assert!(m.contains(why), "{m}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    // The scheduler skips them without failing.
    let mut d = Driver::new(SchedulerConfig::default());
    assert!(d.feed(&job("J", T0, &[])).is_empty());
    assert_eq!(d.p.open_jobs(), 0);
}

#[test]
fn a_maintenance_window_starts_after_the_running_operation_and_keeps_its_length() {
    // A short window, so that M1 is worth using soon after it (a window that ended too early
    // would get work planned inside it).
    let mut d = Driver::new(SchedulerConfig {
        maintenance_duration_ms: 10 * MIN,
        ..SchedulerConfig::default()
    });
    submit_all(&mut d, T0);
    d.watermark(T0 + 5 * MIN);
    // J1 op 0 runs on M1 from T0 + 5 min for 10 min; a critical request opens 1 min later.
    d.feed(&progress(
        "J1",
        JobEventKind::Started,
        T0 + 5 * MIN,
        0,
        "M1",
    ));
    let t = T0 + 6 * MIN;
    let c = d
        .feed(&request(
            "M1",
            t,
            "R1",
            MaintenanceAction::Open,
            Urgency::Critical,
        ))
        .pop()
        .expect("replan");
    assert_valid(&c, &routings());
    let running_end = T0 + 15 * MIN;
    let window_end = running_end + 10 * MIN;
    for p in c.plan.iter().filter(|p| p.machine_id == "M1") {
        if p.started {
            assert_eq!(p.end, running_end);
        } else {
            assert!(
                p.start >= window_end,
                "{p:?} inside [{running_end}, {window_end})"
            );
        }
    }
}

#[test]
fn repeated_and_late_job_events_do_not_move_progress_back() {
    let mut d = Driver::new(SchedulerConfig::default());
    submit_all(&mut d, T0);
    d.watermark(T0 + 5 * MIN);
    d.feed(&progress(
        "J3",
        JobEventKind::Started,
        T0 + 5 * MIN,
        0,
        "M2",
    ));
    d.feed(&progress(
        "J3",
        JobEventKind::Completed,
        T0 + 12 * MIN,
        0,
        "M2",
    ));
    d.feed(&progress(
        "J3",
        JobEventKind::Started,
        T0 + 12 * MIN,
        1,
        "M1",
    ));
    // A repeated submission, a late report of operation 0: ignored.
    let r = routings();
    let ops: Vec<&[(&str, i64)]> = r["J3"].iter().map(|v| v.as_slice()).collect();
    d.feed(&job("J3", T0 + 13 * MIN, &ops));
    d.feed(&progress(
        "J3",
        JobEventKind::Completed,
        T0 + 13 * MIN,
        0,
        "M2",
    ));
    let c = d.watermark(T0 + 20 * MIN).pop().expect("routine replan");
    assert_valid(&c, &routings());
    let j3: Vec<_> = c.plan.iter().filter(|p| p.job_id == "J3").collect();
    assert_eq!(j3.len(), 2, "operations 1 and 2 remain: {j3:?}");
    let op1 = j3.iter().find(|p| p.operation_index == 1).unwrap();
    assert!(
        op1.started && op1.machine_id == "M1" && op1.start == T0 + 12 * MIN,
        "{op1:?}"
    );
}

/// A stand-in policy for the quick-plan mechanism: scores each candidate by its job's remaining
/// work (observation column 2), i.e. most-work-remaining. The real ONNX policy is exercised by the
/// end-to-end scheduling test.
struct MostWorkRemaining;

impl twinline_solver::dispatch::CandidateScorer for MostWorkRemaining {
    type Error = twinline_models::ModelError;
    fn score(
        &mut self,
        features: &[f32],
        mask: &[f32],
        batch: usize,
        width: usize,
        logits: &mut Vec<f32>,
    ) -> Result<(), Self::Error> {
        let f = twinline_solver::dispatch::N_FEATURES;
        logits.clear();
        for i in 0..batch * width {
            logits.push(if mask[i] > 0.0 {
                features[i * f + 2]
            } else {
                -1e9
            });
        }
        Ok(())
    }
}

fn quick_driver() -> Driver {
    let cfg = SchedulerConfig {
        quick_plan: true,
        ..SchedulerConfig::default()
    };
    Driver {
        p: SchedulerProcessor::new(cfg)
            .expect("valid config")
            .with_policy(Box::new(MostWorkRemaining), "most-work-remaining test"),
        offset: 0,
    }
}

#[test]
fn quick_plan_answers_a_disruption_at_once_and_the_solver_follows() {
    let mut d = quick_driver();
    submit_all(&mut d, T0);
    let base = d.watermark(T0 + 5 * MIN).pop().expect("plan");
    assert!(
        !base.reason.contains("policy"),
        "routine replans use the solver: {}",
        base.reason
    );
    let t = T0 + 6 * MIN;
    let quick = d.feed(&request(
        "M1",
        t,
        "R1",
        MaintenanceAction::Open,
        Urgency::Critical,
    ));
    assert_eq!(quick.len(), 1, "the policy answers the request at once");
    let quick = &quick[0];
    assert!(
        quick.reason.contains("R1") && quick.reason.contains("dispatching policy"),
        "{}",
        quick.reason
    );
    assert_eq!(quick.plan_version, base.plan_version + 1);
    assert_valid(quick, &routings());
    for p in quick.plan.iter().filter(|p| p.machine_id == "M1") {
        assert!(
            p.start >= t + 120 * MIN,
            "{p:?} inside the maintenance window"
        );
    }
    // The state survives a snapshot between the quick plan and the solver's turn.
    let snap = d.p.snapshot().unwrap();
    let mut resumed = quick_driver();
    resumed.p.restore(&snap).unwrap();
    // The next tick runs the solver on the policy's plan: never worse, and only once.
    let improved = d.watermark(t + 1000);
    assert_eq!(
        improved.len(),
        1,
        "the solver improves the policy's plan here"
    );
    {
        let c = &improved[0];
        assert!(c.reason.contains("improved by the solver"), "{}", c.reason);
        assert!(
            c.objective < quick.objective,
            "{} >= {}",
            c.objective,
            quick.objective
        );
        assert_eq!(c.plan_version, quick.plan_version + 1);
        assert_valid(c, &routings());
    }
    assert_eq!(
        resumed.watermark(t + 1000),
        improved,
        "restored state gives the same improvement"
    );
    assert!(
        d.watermark(t + 2000).is_empty(),
        "the improvement runs once"
    );
}

#[test]
fn without_a_policy_quick_plan_falls_back_to_the_solver_at_once() {
    let cfg = SchedulerConfig {
        quick_plan: true,
        ..SchedulerConfig::default()
    };
    let mut d = Driver::new(cfg);
    submit_all(&mut d, T0);
    d.watermark(T0 + 5 * MIN);
    let c = d.feed(&request(
        "M1",
        T0 + 6 * MIN,
        "R1",
        MaintenanceAction::Open,
        Urgency::Critical,
    ));
    assert_eq!(c.len(), 1);
    assert!(!c[0].reason.contains("policy"), "{}", c[0].reason);
    assert!(
        d.watermark(T0 + 7 * MIN).is_empty(),
        "no pending improvement without a policy"
    );
}

#[test]
fn a_new_disruption_supersedes_a_pending_improvement() {
    let mut d = quick_driver();
    submit_all(&mut d, T0);
    d.watermark(T0 + 5 * MIN);
    let t = T0 + 6 * MIN;
    let first = d.feed(&request(
        "M1",
        t,
        "R1",
        MaintenanceAction::Open,
        Urgency::Critical,
    ));
    assert_eq!(first.len(), 1);
    // Before the solver's turn, M2 goes down: the policy answers that at once, without running
    // the solver for R1 first.
    let second = d.feed(&twin("M2", t + 1, MachineStatus::Error));
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(
        second[0].reason.contains("M2") && second[0].reason.contains("dispatching policy"),
        "{}",
        second[0].reason
    );
    let improved = d.watermark(t + 1000);
    assert!(improved.len() <= 1);
    for c in &improved {
        assert!(
            c.reason.contains("M2") && !c.reason.contains("R1"),
            "{}",
            c.reason
        );
    }
}
