//! The WebSocket stream over a real socket: initial documents, pushes on change, the minimum
//! push interval, and dropping a client that does not read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use twinline_queries::{app, ApiConfig, ApiState, Views};
use twinline_schemas::*;

use crate::common::*;

async fn serve(config: ApiConfig) -> (SocketAddr, ApiState, Arc<Views>) {
    let (state, views, _) = state_with(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, state, views)
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Client) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("message within 5 s")
            .expect("stream open")
            .expect("no error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_then_documents_then_push_on_change() {
    let (addr, state, views) = serve(ApiConfig {
        ws_push_interval: Duration::from_millis(100),
        ..test_config()
    })
    .await;
    apply_all(&views, &[twin("m-1", 1, MachineStatus::Running, 90.0, T0)]);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws/stream"))
        .await
        .unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["server"], "twinline");
    let twin_doc = next_json(&mut ws).await;
    assert_eq!(twin_doc["type"], "twin_state");
    // Same JSON as GET state.
    assert_eq!(
        twin_doc["data"],
        twinline_queries::api::factory_state_json(&state)
    );
    let stats = next_json(&mut ws).await;
    assert_eq!(stats["type"], "dashboard_stats");
    assert_eq!(stats["data"]["total_machines"], 1);
    assert_eq!(state.metrics.ws_clients(), 1);

    apply_all(
        &views,
        &[twin("m-2", 1, MachineStatus::Error, 10.0, T0 + 1)],
    );
    let pushed = next_json(&mut ws).await;
    assert_eq!(pushed["type"], "twin_state");
    // Stamped with the server's wall clock at render time, for lag measurement.
    let sent = pushed["sent_at_ms"].as_i64().expect("sent_at_ms");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        sent <= now && now - sent < 10_000,
        "sent_at_ms {sent} vs now {now}"
    );
    assert_eq!(pushed["data"]["machines"].as_array().unwrap().len(), 2);
    let pushed_stats = next_json(&mut ws).await;
    assert_eq!(pushed_stats["data"]["status_breakdown"]["ERROR"], 1);

    ws.close(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while state.metrics.ws_clients() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state.metrics.ws_clients(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_respect_the_minimum_interval() {
    let interval = Duration::from_millis(300);
    let (addr, _state, views) = serve(ApiConfig {
        ws_push_interval: interval,
        ..test_config()
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws/stream"))
        .await
        .unwrap();
    for _ in 0..3 {
        next_json(&mut ws).await; // hello, twin_state, dashboard_stats
    }
    let producer = {
        let views = views.clone();
        tokio::spawn(async move {
            for n in 0..100 {
                apply_all(
                    &views,
                    &[twin("m-1", n, MachineStatus::Running, 50.0, T0 + n)],
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut arrivals = Vec::new();
    while started.elapsed() < Duration::from_millis(1_900) {
        let v = next_json(&mut ws).await;
        if v["type"] == "twin_state" {
            arrivals.push(Instant::now());
        }
    }
    producer.abort();
    assert!(
        arrivals.len() >= 3,
        "changes every 20 ms must still be pushed: {} pushes",
        arrivals.len()
    );
    assert!(
        arrivals.len() <= 8,
        "{} pushes in ~2 s with a 300 ms interval",
        arrivals.len()
    );
    for w in arrivals.windows(2) {
        let gap = w[1] - w[0];
        // Scheduling jitter on the receiving side can shrink an observed gap a little.
        assert!(
            gap >= interval - Duration::from_millis(60),
            "gap {gap:?} below the interval"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_is_dropped_not_buffered() {
    let (addr, state, views) = serve(ApiConfig {
        ws_push_interval: Duration::from_millis(5),
        ws_queue: 2,
        ws_send_timeout: Duration::from_millis(300),
        ..test_config()
    })
    .await;
    // Large documents fill the socket buffers quickly.
    let fleet: Vec<Payload> = (0..400)
        .map(|i| twin(&machine(i), 1, MachineStatus::Running, 50.0, T0))
        .collect();
    apply_all(&views, &fleet);
    let (mut slow, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws/stream"))
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 1;
    while state.metrics.ws_dropped() == 0 && Instant::now() < deadline {
        apply_all(
            &views,
            &[twin(&machine(0), n, MachineStatus::Running, 50.0, T0 + n)],
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        state.metrics.ws_dropped() >= 1,
        "the slow client was never dropped"
    );
    // The slow client's stream ends (close frame or reset) once it reads what was buffered.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = slow.next().await {
            if let Message::Close(frame) = msg {
                return frame.map(|f| f.reason.to_string());
            }
        }
        None
    })
    .await
    .expect("slow client's stream ends");
    if let Some(reason) = ended {
        assert!(reason.contains("too slow"), "{reason}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while state.metrics.ws_clients() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        state.metrics.ws_clients(),
        0,
        "the dropped client's session ended"
    );
}

/// Every message until the socket has been quiet for 400 ms.
async fn drain(ws: &mut Client) -> Vec<Value> {
    let mut v = Vec::new();
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_millis(400), ws.next()).await
    {
        if let Message::Text(t) = msg {
            v.push(serde_json::from_str(t.as_str()).unwrap());
        }
    }
    v
}

/// The predictions list and the plan are pushed on connect and then only when they change; a
/// twin-state change alone pushes neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_and_plan_are_pushed_when_they_change() {
    let (addr, _state, views) = serve(ApiConfig {
        ws_push_interval: Duration::from_millis(50),
        ..test_config()
    })
    .await;
    let plan = |version: i64| {
        Payload::ScheduleChange(ScheduleChange {
            event_time: T0,
            plan_version: version,
            reason: format!("plan {version}"),
            plan: vec![PlannedOperation {
                job_id: "J1".into(),
                operation_index: 0,
                machine_id: "m-1".into(),
                start: T0,
                end: T0 + 60_000,
                started: false,
            }],
            ..Default::default()
        })
    };
    apply_all(
        &views,
        &[
            twin("m-1", 1, MachineStatus::Running, 90.0, T0),
            prediction("m-1", Urgency::High, T0),
            plan(1),
        ],
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws/stream"))
        .await
        .unwrap();
    let greeting: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(next_json(&mut ws).await);
        }
        v
    };
    let kinds: Vec<&str> = greeting
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "hello",
            "twin_state",
            "dashboard_stats",
            "predictions",
            "schedule"
        ]
    );
    assert_eq!(greeting[3]["data"]["predictions"][0]["machine_id"], "m-1");
    assert_eq!(greeting[4]["data"]["plan_version"], 1);
    assert_eq!(greeting[4]["data"]["operations"][0]["job_id"], "J1");

    // The ticker's first push may repeat the plan and predictions (it cannot know what the
    // greetings held); drain it, then a twin change pushes twin_state and dashboard_stats only.
    apply_all(
        &views,
        &[twin("m-1", 2, MachineStatus::Warning, 60.0, T0 + 1)],
    );
    let first_push = drain(&mut ws).await;
    assert!(
        first_push.iter().any(|m| m["type"] == "twin_state"),
        "{first_push:?}"
    );
    for m in first_push.iter().filter(|m| m["type"] == "schedule") {
        assert_eq!(m["data"]["plan_version"], 1, "a repeat, not a new plan");
    }
    apply_all(
        &views,
        &[twin("m-1", 3, MachineStatus::Running, 70.0, T0 + 2)],
    );
    let kinds: Vec<String> = drain(&mut ws)
        .await
        .iter()
        .map(|m| m["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["twin_state", "dashboard_stats"]);
    // A new plan and a new prediction: both follow the two documents.
    apply_all(
        &views,
        &[prediction("m-1", Urgency::Critical, T0 + 3), plan(2)],
    );
    let mut kinds = Vec::new();
    let mut version = None;
    for _ in 0..4 {
        let m = next_json(&mut ws).await;
        if m["type"] == "schedule" {
            version = m["data"]["plan_version"].as_i64();
        }
        kinds.push(m["type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        kinds,
        ["twin_state", "dashboard_stats", "predictions", "schedule"]
    );
    assert_eq!(version, Some(2));
}
