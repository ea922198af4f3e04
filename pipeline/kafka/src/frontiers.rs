//! The frontier tail: reads the tasks' frontiers (committed in their transactions to the
//! compacted `_twinline-frontiers` topic, key = task) from the beginning and hands each one to
//! the runtime, so a task that reads derived topics can be gated on tasks of other processes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::warn;
use twinline_log::{FrontierHandler, Result};

use crate::{broker, Inner, FRONTIERS_TOPIC};

pub(crate) fn spawn_frontier_tail(
    inner: Arc<Inner>,
    handler: FrontierHandler,
) -> Result<JoinHandle<()>> {
    let consumer: BaseConsumer = inner
        .reader_config("twinline-frontiers")
        .create()
        .map_err(|e| broker("creating the frontier reader", e))?;
    let topic = inner.topic(FRONTIERS_TOPIC);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .map_err(|e| broker("assigning the frontiers topic", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| broker("assigning the frontiers topic", e))?;
    Ok(std::thread::Builder::new()
        .name("kafka-frontiers".into())
        .spawn(move || {
            while !inner.stop.load(Ordering::Acquire) {
                match consumer.poll(Duration::from_millis(50)) {
                    Some(Ok(m)) => {
                        let task = m.key().and_then(|k| std::str::from_utf8(k).ok());
                        if let (Some(task), Some(value)) = (task, m.payload()) {
                            handler(task, value);
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                    Some(Err(e)) => {
                        warn!(error = %e, "reading frontiers");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .expect("spawning the frontier thread"))
}
