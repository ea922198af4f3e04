//! Task slots shared by several `twinline` processes: a consumer group (cooperative-sticky
//! assignment) over the `_twinline-tasks` topic, one partition per task slot. Owning partition
//! `k` means running task `k`; no record is ever read from the topic. The member that owns the
//! last slot also runs the sequencer, so exactly one process of the group sequences inputs.
//!
//! Rebalance callbacks run on the group's thread: a revoked slot's task is stopped (its final
//! checkpoint committed) before the callback returns, so the next owner starts from it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::TopicPartitionList;
use tracing::{info, warn};
use twinline_log::{GroupEvent, GroupHandler, Result, TaskGroup};

use crate::{broker, sequencer, Inner};

/// Topic whose partitions are the task slots (after the prefix).
pub const TASKS_TOPIC: &str = "_twinline-tasks";

/// What the group's member shares with its rebalance callbacks (and with the next member, when
/// a fatal error makes the thread create a new one).
pub(crate) struct GroupState {
    inner: Arc<Inner>,
    topic: String,
    slots: u32,
    handler: GroupHandler,
    owned: Mutex<BTreeSet<u32>>,
    sequencer: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>>,
}

impl GroupState {
    fn slots_of(&self, tpl: &TopicPartitionList) -> Vec<u32> {
        tpl.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition() as u32)
            .collect()
    }

    fn stop_sequencer(&self) {
        if let Some((stop, h)) = self.sequencer.lock().take() {
            stop.store(true, Ordering::Release);
            let _ = h.join();
            info!("sequencer stopped (its slot left this process)");
        }
    }

    fn revoke(&self, slots: &[u32]) {
        let slots: Vec<u32> = {
            let owned = self.owned.lock();
            slots
                .iter()
                .copied()
                .filter(|s| owned.contains(s))
                .collect()
        };
        if slots.is_empty() {
            return;
        }
        info!(?slots, "task slots revoked: stopping their tasks");
        if slots.contains(&(self.slots - 1)) {
            self.stop_sequencer();
        }
        (self.handler)(GroupEvent::Revoked(&slots));
        let mut owned = self.owned.lock();
        for s in &slots {
            owned.remove(s);
        }
    }

    fn revoke_all(&self) {
        let owned: Vec<u32> = self.owned.lock().iter().copied().collect();
        self.revoke(&owned);
    }

    fn assign(&self, slots: &[u32]) {
        if slots.is_empty() {
            return;
        }
        info!(?slots, "task slots assigned: starting their tasks");
        self.owned.lock().extend(slots.iter().copied());
        if slots.contains(&(self.slots - 1)) && self.sequencer.lock().is_none() {
            let stop = Arc::new(AtomicBool::new(false));
            let h = sequencer::spawn_sequencer(self.inner.clone(), stop.clone());
            *self.sequencer.lock() = Some((stop, h));
        }
        (self.handler)(GroupEvent::Assigned(slots));
    }
}

pub(crate) struct GroupContext(Arc<GroupState>);

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.0.revoke(&self.0.slots_of(tpl));
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.0.assign(&self.0.slots_of(tpl)),
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => warn!(error = %e, "task group rebalance error"),
        }
    }
}

/// A member of the group over `state.topic`.
fn member(state: &Arc<GroupState>) -> Result<BaseConsumer<GroupContext>> {
    let inner = &state.inner;
    let mut config = inner.reader_config("twinline-tasks");
    if !inner.cfg.instance_id.is_empty() {
        config.set("group.instance.id", &inner.cfg.instance_id);
    }
    let consumer: BaseConsumer<GroupContext> = config
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set(
            "session.timeout.ms",
            inner.cfg.session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (inner.cfg.session_timeout_ms / 6).max(100).to_string(),
        )
        // Tasks may take a while to stop (final checkpoint) inside a callback.
        .set("max.poll.interval.ms", "300000")
        .create_with_context(GroupContext(state.clone()))
        .map_err(|e| broker("creating the task group member", e))?;
    consumer
        .subscribe(&[&state.topic])
        .map_err(|e| broker(format!("joining the task group on {}", state.topic), e))?;
    Ok(consumer)
}

pub(crate) struct KafkaTaskGroup {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KafkaTaskGroup {
    /// Joins the group (the tasks topic must exist with `slots` partitions) and polls it on a
    /// thread until left. A member that hits a fatal error (a static member fenced after a
    /// broker restart, for one) gives its slots back and is replaced by a new one.
    pub(crate) fn join(
        inner: Arc<Inner>,
        slots: u32,
        handler: GroupHandler,
    ) -> Result<KafkaTaskGroup> {
        let state = Arc::new(GroupState {
            inner: inner.clone(),
            topic: inner.topic(TASKS_TOPIC),
            slots,
            handler,
            owned: Mutex::new(BTreeSet::new()),
            sequencer: Mutex::new(None),
        });
        let first = member(&state)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kafka-task-group".into())
            .spawn(move || {
                let leaving = || flag.load(Ordering::Acquire) || inner.stop.load(Ordering::Acquire);
                let mut consumer = Some(first);
                let mut backoff = Duration::from_millis(200);
                while !leaving() {
                    let c = match consumer.take() {
                        Some(c) => c,
                        None => match member(&state) {
                            Ok(c) => c,
                            Err(e) => {
                                warn!(error = %e, "rejoining the task group failed; retrying");
                                std::thread::sleep(backoff);
                                backoff = (backoff * 2).min(Duration::from_secs(5));
                                continue;
                            }
                        },
                    };
                    while !leaving() {
                        // Rebalance callbacks run inside poll; no record is ever produced here.
                        if let Some(Err(e)) = c.poll(Duration::from_millis(100)) {
                            if c.client().fatal_error().is_some() {
                                warn!(error = %e, "task group member failed; giving its slots back and rejoining");
                                break;
                            }
                            warn!(error = %e, "task group");
                        }
                        backoff = Duration::from_millis(200);
                    }
                    // Leaving or replacing the member: give every slot back (stopping its task)
                    // before it closes.
                    state.revoke_all();
                    c.unsubscribe();
                    drop(c);
                }
                state.stop_sequencer();
                info!("left the task group");
            })
            .expect("spawning the task group thread");
        Ok(KafkaTaskGroup {
            stop,
            thread: Some(thread),
        })
    }
}

impl TaskGroup for KafkaTaskGroup {
    fn leave(mut self: Box<Self>) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for KafkaTaskGroup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
