//! `GET /api/v1/ws/stream`: pushes the twin state and dashboard stats on connect and again after
//! each change, at most once per `ws_push_interval` per client, plus the predictions list and the
//! plan on connect and whenever they change; the documents are rendered once
//! per push for all clients ([`super::snapshot`]) and stamped with `sent_at_ms`. Each client has a bounded
//! queue; a client that cannot keep up (queue full, or one send blocked past
//! `ws_send_timeout`) is closed and counted, never buffered without bound.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, Mutex};
use tokio::time::{timeout, Instant};

use super::metrics::DropReason;
use super::routes::VERSION;
use super::snapshot;
use super::{ApiError, ApiState, Role};

pub async fn upgrade(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers, Role::Read)?;
    let ws = ws.map_err(|e| ApiError::new(e.status(), "websocket_required", e.body_text()))?;
    Ok(ws.on_upgrade(move |socket| session(socket, state)))
}

/// Decrements the client gauge however the session ends.
struct ClientGuard(ApiState);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.metrics.ws_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// hello, twin state, dashboard stats and (once they exist) the predictions and the schedule.
const GREETING_MESSAGES: usize = 5;

type Sink = Arc<Mutex<SplitSink<WebSocket, Message>>>;

enum End {
    /// The client closed or the connection failed.
    ClientGone,
    /// The client is too slow: close it with this reason.
    Drop(DropReason),
}

fn enqueue(tx: &mpsc::Sender<Message>, msgs: impl IntoIterator<Item = Message>) -> Result<(), End> {
    for m in msgs {
        match tx.try_send(m) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(End::Drop(DropReason::QueueFull))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(End::ClientGone),
        }
    }
    Ok(())
}

async fn session(socket: WebSocket, state: ApiState) {
    state.metrics.ws_clients.fetch_add(1, Ordering::Relaxed);
    let _guard = ClientGuard(state.clone());
    let config = state.config.clone();
    let (sink, mut incoming) = socket.split();
    let sink: Sink = Arc::new(Mutex::new(sink));
    // The greeting is three messages; a smaller queue would drop every client on connect.
    let (tx, mut rx) = mpsc::channel::<Message>(config.ws_queue.max(GREETING_MESSAGES));

    // The writer owns the slow part (the socket); the loop below only ever try_sends, so a
    // stuck client can never stall it.
    let writer_sink = sink.clone();
    let metrics = state.metrics.clone();
    let send_timeout = config.ws_send_timeout;
    let mut writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let mut sink = writer_sink.lock().await;
            match timeout(send_timeout, sink.send(msg)).await {
                Ok(Ok(())) => {
                    metrics.ws_messages.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(_)) => return End::ClientGone,
                Err(_) => return End::Drop(DropReason::SendTimeout),
            }
        }
        End::ClientGone
    });

    // Subscribe before rendering the greeting so no change falls between the two.
    let mut pushes = snapshot::subscribe(&state);
    let hello = json!({ "type": "hello", "server": "twinline", "version": VERSION });
    let greeting = snapshot::push_now(&state, &mut snapshot::Sent::default());
    let first = std::iter::once(Message::Text(hello.to_string().into())).chain(greeting.messages);
    let greeted = Instant::now();
    let mut writer_done = false;

    let end = match enqueue(&tx, first) {
        Err(end) => end,
        Ok(()) => loop {
            tokio::select! {
                push = pushes.recv() => match push {
                    Ok(push) => {
                        // Pushes are one interval apart; only the first may come sooner after
                        // the greeting, and its twin state and stats are skipped to keep the
                        // minimum interval. A plan or predictions list in it is sent anyway:
                        // those are pushed once per change, so skipping one would lose it.
                        if greeted.elapsed() < config.ws_push_interval {
                            let rest: Vec<Message> = push.messages.into_iter().skip(2).collect();
                            if let Err(end) = enqueue(&tx, rest) {
                                break end;
                            }
                            continue;
                        }
                        if let Err(end) = enqueue(&tx, push.messages) {
                            break end;
                        }
                    }
                    // Fell behind by the whole broadcast buffer: too slow.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        break End::Drop(DropReason::QueueFull)
                    }
                    Err(broadcast::error::RecvError::Closed) => break End::ClientGone,
                },
                msg = incoming.next() => match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break End::ClientGone,
                    // Pings are answered by the protocol layer; client text is not a command.
                    Some(Ok(_)) => {}
                },
                end = &mut writer => {
                    writer_done = true;
                    break end.unwrap_or(End::ClientGone);
                }
            }
        },
    };

    if !writer_done {
        writer.abort();
        // Wait for the writer to be gone so its lock on the sink is released.
        let _ = writer.await;
    }
    if let End::Drop(reason) = end {
        state.metrics.record_drop(reason);
        tracing::warn!(reason = reason.label(), "dropping slow WebSocket client");
        let frame = CloseFrame {
            code: close_code::POLICY,
            reason: format!("client too slow: {}", reason.label()).into(),
        };
        // Best effort: a client that does not read will not read this either.
        let mut sink = sink.lock().await;
        let _ = timeout(
            std::time::Duration::from_millis(200),
            sink.send(Message::Close(Some(frame))),
        )
        .await;
        let _ = timeout(std::time::Duration::from_millis(200), sink.close()).await;
    }
}
