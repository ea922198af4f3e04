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

pub(crate) struct GroupContext {
    inner: Arc<Inner>,
    topic: String,
    slots: u32,
    handler: GroupHandler,
    owned: Mutex<BTreeSet<u32>>,
    sequencer: Mutex<Option<(Arc<AtomicBool>, JoinHandle<()>)>>,
}

impl GroupContext {
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
            slots.iter().copied().filter(|s| owned.contains(s)).collect()
        };
        let slots = &slots[..];
        if slots.is_empty() {
            return;
        }
        info!(?slots, "task slots revoked: stopping their tasks");
        if slots.contains(&(self.slots - 1)) {
            self.stop_sequencer();
        }
        (self.handler)(GroupEvent::Revoked(slots));
        let mut owned = self.owned.lock();
        for s in slots {
            owned.remove(s);
        }
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let slots = self.slots_of(tpl);
            self.revoke(&slots);
        }
    }

    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let slots = self.slots_of(tpl);
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
                (self.handler)(GroupEvent::Assigned(&slots));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => warn!(error = %e, "task group rebalance error"),
        }
    }
}

pub(crate) struct KafkaTaskGroup {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KafkaTaskGroup {
    /// Joins the group (the tasks topic must exist with `slots` partitions) and polls it on a
    /// thread until left.
    pub(crate) fn join(
        inner: Arc<Inner>,
        slots: u32,
        handler: GroupHandler,
    ) -> Result<KafkaTaskGroup> {
        let topic = inner.topic(TASKS_TOPIC);
        let ctx = GroupContext {
            inner: inner.clone(),
            topic: topic.clone(),
            slots,
            handler,
            owned: Mutex::new(BTreeSet::new()),
            sequencer: Mutex::new(None),
        };
        let mut config = inner.reader_config("twinline-tasks");
        if !inner.cfg.instance_id.is_empty() {
            config.set("group.instance.id", &inner.cfg.instance_id);
        }
        let consumer: BaseConsumer<GroupContext> = config
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", &inner.cfg.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                &(inner.cfg.session_timeout_ms / 6).max(100).to_string(),
            )
            // Tasks may take a while to stop (final checkpoint) inside a callback.
            .set("max.poll.interval.ms", "300000")
            .create_with_context(ctx)
            .map_err(|e| broker("creating the task group member", e))?;
        consumer
            .subscribe(&[&topic])
            .map_err(|e| broker(format!("joining the task group on {topic}"), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("kafka-task-group".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) && !inner.stop.load(Ordering::Acquire) {
                    // Rebalance callbacks run inside poll; no record is ever produced here.
                    if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
                        warn!(error = %e, "task group");
                    }
                }
                // Leaving: give every slot back (stopping its task) before closing.
                let owned: Vec<u32> = consumer.context().owned.lock().iter().copied().collect();
                consumer.context().revoke(&owned);
                consumer.unsubscribe();
                consumer.context().stop_sequencer();
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
