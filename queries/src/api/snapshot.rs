//! Rendered JSON of the twin state and dashboard stats, built once per view change and shared by
//! every GET and every WebSocket client, plus the one ticker that fans pushes out to all clients.
//!
//! Rendering is the expensive part of both routes (hundreds of machines); doing it once per
//! change instead of once per request or per client is what lets the API serve hundreds of
//! concurrent connections and thousands of WebSocket subscribers on two cores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};
use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::routes::{dashboard_stats_json, factory_state_json};
use super::ApiState;

/// One rendering of the model, tagged with what it was rendered from.
pub struct Snapshot {
    key: (u64, Option<i64>),
    /// Body of `GET /api/v1/digital-twin/state`.
    pub state: Bytes,
    /// Body of `GET /api/v1/dashboard/stats`.
    pub stats: Bytes,
    /// Version and body of `GET /api/v1/scheduling/schedule`, once a plan exists.
    pub schedule: Option<(i64, Bytes)>,
    /// Sequence and body of `GET /api/v1/predictive/predictions`, once a prediction exists.
    pub predictions: Option<(u64, Bytes)>,
}

/// One WebSocket push: the documents, already framed, shared by every client (twin state and
/// dashboard stats always; the schedule when its plan version is new to the receiver).
#[derive(Clone)]
pub struct Push {
    pub messages: Vec<Message>,
}

/// Cache of the latest [`Snapshot`] and the push channel.
pub struct SnapshotCache {
    current: Mutex<Option<Arc<Snapshot>>>,
    pushes: broadcast::Sender<Push>,
    ticker_started: AtomicBool,
}

impl SnapshotCache {
    /// `capacity`: pushes a client may fall behind by before it is dropped as too slow.
    pub fn new(capacity: usize) -> Self {
        let (pushes, _) = broadcast::channel(capacity.max(1));
        SnapshotCache {
            current: Mutex::new(None),
            pushes,
            ticker_started: AtomicBool::new(false),
        }
    }
}

fn key(state: &ApiState) -> (u64, Option<i64>) {
    // The documents depend on the applied changes and on the newest event time (their
    // `timestamp`); both are cheap to read.
    (state.views.change_seq(), state.views.latest_event_time())
}

/// The current rendering, rebuilt only when the views changed since the last one. Concurrent
/// callers wait for one rebuild instead of each rendering the same documents.
pub fn current(state: &ApiState) -> Arc<Snapshot> {
    let cache = &state.snapshots;
    let mut slot = cache.current.lock();
    let k = key(state);
    if let Some(s) = slot.as_ref() {
        if s.key == k {
            return s.clone();
        }
    }
    let snap = Arc::new(Snapshot {
        key: k,
        state: Bytes::from(serde_json::to_vec(&factory_state_json(state)).unwrap_or_default()),
        stats: Bytes::from(serde_json::to_vec(&dashboard_stats_json(state)).unwrap_or_default()),
        schedule: reuse_schedule(slot.as_ref(), state),
        predictions: reuse_predictions(slot.as_ref(), state),
    });
    // Before the first event the documents carry the wall clock as their timestamp: render
    // those afresh each time (they are tiny) instead of serving a frozen time.
    if k.1.is_some() {
        *slot = Some(snap.clone());
    }
    snap
}

/// A document that changes far less often than the twin state (the plan, the predictions list):
/// the previous rendering while its `key` is unchanged, a fresh `render` otherwise.
fn reuse<K: PartialEq + Copy>(
    previous: Option<&(K, Bytes)>,
    key: K,
    render: impl FnOnce() -> Vec<u8>,
) -> (K, Bytes) {
    match previous {
        Some((k, body)) if *k == key => (key, body.clone()),
        _ => (key, Bytes::from(render())),
    }
}

/// The schedule document, by plan version (a plan can hold thousands of operations).
fn reuse_schedule(previous: Option<&Arc<Snapshot>>, state: &ApiState) -> Option<(i64, Bytes)> {
    let plan = state.views.schedule()?;
    Some(reuse(
        previous.and_then(|p| p.schedule.as_ref()),
        plan.plan_version,
        || serde_json::to_vec(&super::scheduling::schedule_json(&plan)).unwrap_or_default(),
    ))
}

/// The predictions list, by the count of predictions applied (none yet: no document).
fn reuse_predictions(previous: Option<&Arc<Snapshot>>, state: &ApiState) -> Option<(u64, Bytes)> {
    let seq = state.views.predictions_seq();
    (seq > 0).then(|| {
        reuse(previous.and_then(|p| p.predictions.as_ref()), seq, || {
            serde_json::to_vec(&state.views.predictions(None, None)).unwrap_or_default()
        })
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn envelope(kind: &str, data: &Bytes, sent_at_ms: i64) -> Message {
    // The cached document is spliced in as is: no re-parse, one allocation per push for all
    // clients together.
    let mut s = String::with_capacity(data.len() + 64);
    s.push_str("{\"type\":\"");
    s.push_str(kind);
    s.push_str("\",\"sent_at_ms\":");
    s.push_str(&sent_at_ms.to_string());
    s.push_str(",\"data\":");
    s.push_str(std::str::from_utf8(data).unwrap_or("null"));
    s.push('}');
    Message::Text(Utf8Bytes::from(s))
}

/// What a receiver has already been sent of the documents that are pushed only when they change.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    plan: Option<i64>,
    predictions: Option<u64>,
}

/// The documents of the current rendering, framed for a WebSocket, stamped now. The schedule and
/// the predictions list are included when they changed since `sent` (which is then updated).
pub fn push_now(state: &ApiState, sent: &mut Sent) -> Push {
    let snap = current(state);
    let at = now_ms();
    let mut messages = vec![
        envelope("twin_state", &snap.state, at),
        envelope("dashboard_stats", &snap.stats, at),
    ];
    if let Some((v, body)) = &snap.predictions {
        if sent.predictions != Some(*v) {
            messages.push(envelope("predictions", body, at));
            sent.predictions = Some(*v);
        }
    }
    if let Some((v, body)) = &snap.schedule {
        if sent.plan != Some(*v) {
            messages.push(envelope("schedule", body, at));
            sent.plan = Some(*v);
        }
    }
    Push { messages }
}

/// Subscribes a client to the pushes, starting the ticker with the first subscriber.
pub fn subscribe(state: &ApiState) -> broadcast::Receiver<Push> {
    let rx = state.snapshots.pushes.subscribe();
    if !state.snapshots.ticker_started.swap(true, Ordering::AcqRel) {
        tokio::spawn(ticker(state.clone()));
    }
    rx
}

/// Every `ws_push_interval`, if the views changed since the last push, renders once and sends
/// the push to every subscriber. Ends when the views are dropped.
async fn ticker(state: ApiState) {
    let period = state.config.ws_push_interval.max(Duration::from_millis(1));
    let mut changes = state.views.subscribe();
    changes.borrow_and_update();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // Pushes carry the plan and the predictions only when they changed since the last push.
    // The first push carries them whatever the greetings held: a change between a greeting and
    // this ticker's start must not be lost (a repeat is harmless).
    let mut sent = Sent::default();
    loop {
        // Wait for a change first, then for the next tick: an idle plant costs nothing.
        if changes.changed().await.is_err() {
            return;
        }
        tick.tick().await;
        changes.borrow_and_update();
        if state.snapshots.pushes.receiver_count() == 0 {
            continue;
        }
        let push = push_now(&state, &mut sent);
        // An error only means every subscriber left meanwhile.
        let _ = state.snapshots.pushes.send(push);
    }
}
