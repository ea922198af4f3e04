//! Views: incremental application equals recomputation, retention, the API model.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, StringArray};
use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinline_queries::{QueryConfig, QueryEngine, ViewConfig, Views};
use twinline_schemas::*;

use crate::common::*;

fn table(views: &Views, name: &str) -> RecordBatch {
    let (schema, batches) = views.snapshot(name).expect("table exists");
    concat_batches(&schema, &batches).expect("concat")
}

const TABLES: [&str; 9] = [
    "twin_state",
    "twin_state_history",
    "sensor_readings",
    "defects",
    "dead_letters",
    "failure_predictions",
    "maintenance_requests",
    "schedule",
    "schedule_changes",
];

/// Random batch splits (and a small Arrow batch size that forces many sealed batches) must give
/// exactly the tables, model and SQL answers of applying everything as one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_views_equal_one_shot_application() {
    let events = mixed_events(7, 5_000, 12);
    let one = Arc::new(Views::new(ViewConfig {
        batch_rows: 100_000,
        ..ViewConfig::default()
    }));
    one.apply(&as_view_events(&events));

    for seed in 0..3u64 {
        let split = Arc::new(Views::new(ViewConfig {
            batch_rows: 37 + seed as usize * 50,
            ..ViewConfig::default()
        }));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut i = 0;
        while i < events.len() {
            let n = rng.gen_range(1..=300).min(events.len() - i);
            split.apply(&as_view_events(&events[i..i + n]));
            i += n;
        }
        for name in TABLES {
            let a = table(&one, name);
            let b = table(&split, name);
            assert!(
                a.num_rows() > 0,
                "{name} is empty: the generator should cover every table"
            );
            assert_eq!(a, b, "table {name} differs for split seed {seed}");
        }
        assert_eq!(one.factory_state(), split.factory_state());
        assert_eq!(one.dashboard_stats(), split.dashboard_stats());
        assert_eq!(one.predictions(None, None), split.predictions(None, None));
        for m in 0..12 {
            let id = machine(m);
            assert_eq!(one.machine_predictions(&id), split.machine_predictions(&id));
        }
        assert_eq!(one.counters(), split.counters());

        let qa = QueryEngine::new(one.clone(), QueryConfig::default()).unwrap();
        let qb = QueryEngine::new(split.clone(), QueryConfig::default()).unwrap();
        for sql in [
            "SELECT machine_id, sensor, count(*) AS n, sum(value) AS s FROM sensor_readings GROUP BY machine_id, sensor ORDER BY machine_id, sensor",
            "SELECT machine_id, status, health_score, event_id FROM twin_state ORDER BY machine_id",
            "SELECT urgency, count(*) FROM failure_predictions GROUP BY urgency ORDER BY urgency",
        ] {
            let ra = qa.query(sql, None).await.unwrap();
            let rb = qb.query(sql, None).await.unwrap();
            assert_eq!(ra.batches, rb.batches, "{sql}");
        }
    }
}

/// SQL over the views answers what a direct computation over the event list answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_views_matches_direct_recomputation() {
    let events = mixed_events(11, 4_000, 8);
    let views = Arc::new(Views::new(ViewConfig {
        batch_rows: 64,
        ..ViewConfig::default()
    }));
    for chunk in events.chunks(100) {
        views.apply(&as_view_events(chunk));
    }
    // Oracle: per machine reading count and value sum; latest twin state per machine.
    let mut readings: BTreeMap<String, (i64, f64)> = BTreeMap::new();
    let mut latest: BTreeMap<String, TwinState> = BTreeMap::new();
    for (_, _, _, p) in &events {
        match p {
            Payload::SensorReading(r) => {
                let e = readings.entry(r.machine_id.clone()).or_default();
                e.0 += 1;
                e.1 += r.value;
            }
            Payload::TwinState(s) => {
                latest.insert(s.machine_id.clone(), s.clone());
            }
            _ => {}
        }
    }
    let engine = QueryEngine::new(views.clone(), QueryConfig::default()).unwrap();
    let r = engine
        .query("SELECT machine_id, count(*) AS n, sum(value) AS s FROM sensor_readings GROUP BY machine_id ORDER BY machine_id", None)
        .await
        .unwrap();
    let b = concat_batches(&r.schema, &r.batches).unwrap();
    let ids = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    let ns = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
    let ss = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(b.num_rows(), readings.len());
    for (i, (m, (n, s))) in readings.iter().enumerate() {
        assert_eq!(ids.value(i), m);
        assert_eq!(ns.value(i), *n);
        assert!(
            (ss.value(i) - s).abs() < 1e-6 * s.abs().max(1.0),
            "{m}: {} vs {s}",
            ss.value(i)
        );
    }

    let r = engine
        .query(
            "SELECT machine_id, event_id, health_score, cycles FROM twin_state ORDER BY machine_id",
            None,
        )
        .await
        .unwrap();
    let b = concat_batches(&r.schema, &r.batches).unwrap();
    assert_eq!(b.num_rows(), latest.len());
    let ids = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    let evs = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
    let hs = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
    for (i, (m, s)) in latest.iter().enumerate() {
        assert_eq!(ids.value(i), m);
        assert_eq!(evs.value(i), s.event_id);
        assert_eq!(hs.value(i), s.health_score);
    }
    // The API model agrees with the table.
    let state = views.factory_state();
    assert_eq!(state.machines.len(), latest.len());
    for (ms, (m, s)) in state.machines.iter().zip(&latest) {
        assert_eq!(&ms.machine_id, m);
        assert_eq!(ms.cycles, s.cycles);
    }
    let total_cycles: i64 = latest.values().map(|s| s.cycles).sum();
    assert_eq!(state.statistics.total_cycles, total_cycles);
    assert_eq!(
        state.timestamp,
        twinline_queries::time::rfc3339_ms(events.last().unwrap().3.event_time())
    );
}

#[test]
fn retention_keeps_the_newest_rows_within_bounds() {
    let views = Views::new(ViewConfig {
        batch_rows: 10,
        sensor_readings_max_rows: 100,
        ..ViewConfig::default()
    });
    let payloads: Vec<Payload> = (0..1_000)
        .map(|i| sensor("m-1", SensorKind::Speed, i as f64, T0 + i))
        .collect();
    for chunk in payloads.chunks(33) {
        apply_all(&views, chunk);
    }
    let b = table(&views, "sensor_readings");
    assert!(
        (90..=100).contains(&b.num_rows()),
        "kept {} rows",
        b.num_rows()
    );
    let values = b
        .column_by_name("value")
        .unwrap()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    // Newest rows, in order, ending with the last one applied.
    assert_eq!(values.value(values.len() - 1), 999.0);
    for i in 1..values.len() {
        assert_eq!(values.value(i), values.value(i - 1) + 1.0);
    }
}

#[test]
fn model_tracks_history_alerts_and_ignores_unread_topics() {
    let views = Views::new(ViewConfig {
        history_per_machine: 5,
        ..ViewConfig::default()
    });
    let mut rx = views.subscribe();
    let mut events = Vec::new();
    for n in 0..8 {
        events.push(twin(
            "m-1",
            n,
            MachineStatus::Running,
            90.0 - n as f64,
            T0 + n,
        ));
    }
    events.push(twin("m-2", 1, MachineStatus::Error, 10.0, T0 + 100));
    events.push(prediction("m-1", Urgency::Low, T0));
    events.push(prediction("m-1", Urgency::Critical, T0 + 1)); // latest per machine wins
    events.push(prediction("m-2", Urgency::High, T0 + 2));
    events.push(maintenance("m-1", "r1", MaintenanceAction::Open, T0));
    events.push(maintenance("m-2", "r2", MaintenanceAction::Open, T0));
    events.push(maintenance("m-1", "r1", MaintenanceAction::Close, T0 + 5));
    apply_all(&views, &events);
    assert!(rx.has_changed().unwrap());
    assert_eq!(views.change_seq(), 1, "one batch, one change");

    let m1 = views.machine("m-1").unwrap();
    assert_eq!(m1.history.len(), 5);
    let cycles: Vec<i64> = m1.history.iter().map(|h| h.cycles).collect();
    assert_eq!(cycles, vec![3, 4, 5, 6, 7], "last five, newest last");
    assert_eq!(m1.state.cycles, 7);
    assert!(views.machine("m-3").is_none());

    let stats = views.dashboard_stats();
    assert_eq!(stats.total_machines, 2);
    assert_eq!(stats.status_breakdown["RUNNING"], 1);
    assert_eq!(stats.status_breakdown["ERROR"], 1);
    assert_eq!(stats.status_breakdown.len(), 6);
    assert_eq!(
        (
            stats.maintenance_alerts.critical,
            stats.maintenance_alerts.high,
            stats.maintenance_alerts.low
        ),
        (1, 1, 0)
    );
    assert_eq!(stats.maintenance_alerts.open_requests, 1);
    assert!((stats.overall_health - (83.0 + 10.0) / 2.0).abs() < 1e-9);

    // Sensor readings and images change no API document: no wake-up.
    rx.borrow_and_update();
    let quiet = vec![
        sensor("m-1", SensorKind::Temperature, 1.0, T0 + 200),
        Payload::Image(Image {
            machine_id: "m-1".into(),
            part_id: "p".into(),
            media_type: "image/png".into(),
            data: vec![],
            event_time: T0 + 201,
            request_id: None,
        }),
    ];
    apply_all(&views, &quiet);
    assert!(!rx.has_changed().unwrap());
    let c = views.counters();
    assert_eq!(c.ignored, 1, "the image is read by no view");
    assert_eq!(c.events_by_topic["images"], 1);
    assert_eq!(c.rows_by_table["sensor_readings"], 1);
    assert_eq!(views.latest_event_time(), Some(T0 + 201));
}

/// The predictive documents equal a recomputation over the event list: latest prediction per
/// machine by log order, the last `bound` predictions newest first, open requests by replaying
/// OPEN/CLOSE by request id (the generator reuses request ids across machines).
#[test]
fn predictive_model_equals_recomputation_from_the_events() {
    let mut events = mixed_events(11, 8_000, 9);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // The fixture's probability is constant; quarters give both an order and ties.
    for (_, _, _, payload) in &mut events {
        if let Payload::FailurePrediction(p) = payload {
            p.failure_probability = f64::from(rng.gen_range(0..4u8)) / 4.0;
        }
    }
    let bound = 4;
    let views = Views::new(ViewConfig {
        history_per_machine: bound,
        ..ViewConfig::default()
    });
    let mut i = 0;
    while i < events.len() {
        let n = rng.gen_range(1..=200).min(events.len() - i);
        views.apply(&as_view_events(&events[i..i + n]));
        i += n;
    }

    let mut predictions: BTreeMap<String, Vec<&FailurePrediction>> = BTreeMap::new();
    let mut open: BTreeMap<String, &MaintenanceRequest> = BTreeMap::new();
    for (_, _, _, payload) in &events {
        match payload {
            Payload::FailurePrediction(p) => {
                predictions.entry(p.machine_id.clone()).or_default().push(p)
            }
            Payload::MaintenanceRequest(m) => match m.action {
                MaintenanceAction::Open => {
                    open.insert(m.request_id.clone(), m);
                }
                MaintenanceAction::Close => {
                    open.remove(&m.request_id);
                }
            },
            _ => {}
        }
    }
    assert!(
        predictions.len() >= 5 && !open.is_empty(),
        "the seed covers the cases"
    );
    let has_open = |id: &str| open.values().any(|m| m.machine_id == id);

    let mut expected: Vec<(Urgency, f64, String, String, bool)> = predictions
        .iter()
        .map(|(id, ps)| {
            let p = ps.last().unwrap();
            (
                p.urgency,
                -p.failure_probability,
                id.clone(),
                p.event_id.clone(),
                has_open(id),
            )
        })
        .collect();
    expected.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then_with(|| a.2.cmp(&b.2))
    });
    let list = views.predictions(None, None);
    assert_eq!(list.total, expected.len());
    let got: Vec<(Urgency, f64, String, String, bool)> = list
        .predictions
        .iter()
        .map(|l| {
            let p = &l.prediction;
            (
                p.urgency,
                -p.failure_probability,
                p.machine_id.clone(),
                p.event_id.clone(),
                l.maintenance_request_open,
            )
        })
        .collect();
    assert_eq!(got, expected);
    for u in [
        Urgency::Critical,
        Urgency::High,
        Urgency::Medium,
        Urgency::Low,
    ] {
        let only = views.predictions(Some(u), Some(2));
        let all_u: Vec<&String> = expected.iter().filter(|e| e.0 == u).map(|e| &e.2).collect();
        assert_eq!(only.total, all_u.len(), "{u:?}");
        let got: Vec<&String> = only
            .predictions
            .iter()
            .map(|l| &l.prediction.machine_id)
            .collect();
        assert_eq!(got, all_u.into_iter().take(2).collect::<Vec<_>>(), "{u:?}");
    }

    for m in 0..9 {
        let id = machine(m);
        let detail = views
            .machine_predictions(&id)
            .expect("every machine is seen");
        let ps = predictions.get(&id).map(Vec::as_slice).unwrap_or_default();
        let want: Vec<&str> = ps
            .iter()
            .rev()
            .take(bound)
            .map(|p| p.event_id.as_str())
            .collect();
        let got: Vec<&str> = detail.history.iter().map(|p| p.event_id.as_str()).collect();
        assert_eq!(got, want, "{id}: newest first, at most {bound}");
        assert_eq!(
            detail
                .latest
                .as_ref()
                .map(|l| l.prediction.event_id.as_str()),
            ps.last().map(|p| p.event_id.as_str()),
            "{id}"
        );
        let newest_open = open
            .values()
            .filter(|r| r.machine_id == id)
            .max_by(|a, b| (a.event_time, &a.request_id).cmp(&(b.event_time, &b.request_id)));
        assert_eq!(
            detail.open_request.as_ref().map(|r| r.request_id.as_str()),
            newest_open.map(|r| r.request_id.as_str()),
            "{id}"
        );
    }
    assert_eq!(
        views.dashboard_stats().maintenance_alerts.open_requests,
        open.len() as u64
    );
}

#[test]
fn prediction_history_bound_zero_keeps_only_the_latest() {
    let views = Views::new(ViewConfig {
        history_per_machine: 0,
        ..ViewConfig::default()
    });
    apply_all(
        &views,
        &[
            prediction("m-1", Urgency::Low, T0),
            prediction("m-1", Urgency::Critical, T0 + 1),
        ],
    );
    let d = views.machine_predictions("m-1").unwrap();
    assert!(d.history.is_empty());
    let latest = d.latest.unwrap();
    assert_eq!(latest.prediction.urgency, Urgency::Critical);
    assert_eq!(
        latest.prediction.predicted_at,
        twinline_queries::time::rfc3339_ms(T0 + 1)
    );
    assert!(views.machine_predictions("m-2").is_none());
}

/// What a pipeline writes to Cassandra from `events` (every twin state and prediction of each
/// machine in log order, the open requests, the newest plan), as an API-only instance reads it.
fn served_state_of(events: &[Payload]) -> twinline_queries::views::ServedState {
    let mut twins: BTreeMap<String, Vec<TwinState>> = BTreeMap::new();
    let mut predictions: BTreeMap<String, Vec<FailurePrediction>> = BTreeMap::new();
    let mut open: BTreeMap<String, MaintenanceRequest> = BTreeMap::new();
    let mut schedule = None;
    for p in events {
        match p {
            Payload::TwinState(t) => twins
                .entry(t.machine_id.clone())
                .or_default()
                .push(t.clone()),
            Payload::FailurePrediction(x) => predictions
                .entry(x.machine_id.clone())
                .or_default()
                .push(x.clone()),
            Payload::MaintenanceRequest(m) => match m.action {
                MaintenanceAction::Open => {
                    open.insert(m.request_id.clone(), m.clone());
                }
                MaintenanceAction::Close => {
                    open.remove(&m.request_id);
                }
            },
            Payload::ScheduleChange(s) => schedule = Some(s.clone()),
            _ => {}
        }
    }
    twinline_queries::views::ServedState {
        machines: twins
            .into_values()
            .map(|h| (h.last().unwrap().clone(), h))
            .collect(),
        predictions: predictions
            .into_values()
            .map(|h| (h.last().unwrap().clone(), h))
            .collect(),
        open_requests: open.into_values().collect(),
        schedule,
    }
}

/// An API-only instance's model, loaded from the served state, shows exactly what the views that
/// applied the events show (bar the `timestamp`, which the views take from every topic).
#[test]
fn a_model_loaded_from_the_served_state_equals_the_views_model() {
    for history_per_machine in [0, 3, 200] {
        let cfg = ViewConfig {
            history_per_machine,
            ..ViewConfig::default()
        };
        let payloads: Vec<Payload> = mixed_events(31, 6_000, 9)
            .into_iter()
            .map(|(_, _, _, p)| p)
            .collect();
        let views = Views::new(cfg.clone());
        apply_all(&views, &payloads);
        let served = Views::served(cfg);
        let before = served.change_seq();
        served.load_served(&served_state_of(&payloads));
        assert!(
            served.change_seq() > before,
            "loading wakes WebSocket clients"
        );
        assert!(served.predictions_seq() > 0);

        let mut a = views.factory_state();
        let mut b = served.factory_state();
        a.timestamp.clear();
        b.timestamp.clear();
        assert!(a.machines.len() > 5, "{} machines", a.machines.len());
        assert_eq!(a, b);
        let (mut a, mut b) = (views.dashboard_stats(), served.dashboard_stats());
        a.timestamp.clear();
        b.timestamp.clear();
        assert!(a.maintenance_alerts.open_requests > 0, "{a:?}");
        assert_eq!(a, b);
        let (mut a, mut b) = (
            views.predictions(None, None),
            served.predictions(None, None),
        );
        a.timestamp.clear();
        b.timestamp.clear();
        assert!(a.total > 5);
        assert_eq!(a, b);
        for i in 0..9 {
            let id = machine(i);
            assert_eq!(views.machine(&id), served.machine(&id), "{id}");
            assert_eq!(
                views.machine_predictions(&id),
                served.machine_predictions(&id),
                "{id}"
            );
        }
        assert!(views.schedule().is_some());
        assert_eq!(views.schedule(), served.schedule());
        // The current-state tables SQL sees are the views' too.
        assert_eq!(served.table_names(), ["twin_state", "schedule"]);
        for t in ["twin_state", "schedule"] {
            let (a, b) = (table(&views, t), table(&served, t));
            assert!(a.num_rows() > 0 || t == "schedule", "{t}");
            assert_eq!(a, b, "{t}");
        }
    }
}
