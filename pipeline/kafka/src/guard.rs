//! The stalled-call guard: runs a blocking transactional call of a producer on a helper thread
//! and gives the producer up when the call hangs while the broker answers.
//!
//! After a broker was away for a while, librdkafka can leave such a call waiting on a connection
//! that died until the call's own timeout (`KafkaConfig::timeout`, 30 s) runs out, even once the
//! broker is back (librdkafka #5511: a request to a stale cached coordinator is not re-sent until
//! another broker changes state), although a new producer would commit within seconds. A failed
//! offsets call followed by its abort waited twice that, about 60 s. So the call runs on a helper
//! thread that owns a handle to the producer. Once it has taken a second, the caller asks the
//! broker for metadata through a client of its own; when the broker has been answering for
//! `KafkaConfig::stalled_call` and the call still has not returned, [`guarded`] gives up. The
//! caller must then never use that producer again (no abort either: that would be a second
//! transactional call on it). It restarts from its last commit, and the new producer's
//! `init_transactions` under the same `transactional.id` fences the old one: an open
//! transaction is aborted, and one whose commit had reached the coordinator is completed first.
//! Either way the transaction counts in full or not at all. The helper thread ends when the
//! call returns (fenced, or at its 30 s timeout) and drops the producer then, so a caller holds
//! at most a few abandoned producers at once. While the broker is away the caller waits, as
//! before: a call that goes through by itself once the broker is back (the usual case after a
//! plain restart) keeps its transaction. The probe asks for metadata, which any broker of the
//! cluster answers; a transaction coordinator that is still loading after a restart can make a
//! healthy call slow, and such a call is given up too (a needless restart, nothing lost).

use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::producer::BaseProducer;
use tracing::warn;
use twinline_log::LogError;

use crate::{broker, Inner, CHECKPOINTS_TOPIC};

/// Runs `call` (named `what`, for `who`: "task X", "the sequencer") on a helper thread holding
/// `producer`, and waits for it as the module docs say.
///
/// `Ok` is the call's own result. `Err` means the producer is given up: the call was still
/// running when the guard stopped waiting (or its thread could not be started or died), so the
/// caller must not touch `producer` again and should restart with a new one.
pub(crate) fn guarded(
    inner: &Inner,
    who: &str,
    producer: &Arc<BaseProducer>,
    what: &'static str,
    call: impl FnOnce(&BaseProducer) -> KafkaResult<()> + Send + 'static,
) -> Result<KafkaResult<()>, LogError> {
    let held = Arc::clone(producer);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(format!("txn-{who}"))
        .spawn(move || {
            let _ = tx.send(call(&held));
        })
        .map_err(|e| broker(format!("{who} {what}"), e))?;
    let stall = inner.cfg.stalled_call;
    let probe_topic = inner.topic(CHECKPOINTS_TOPIC);
    let started = Instant::now();
    let mut probe: Option<BaseConsumer> = None;
    let mut answering_since: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => return Ok(r),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(broker(
                    format!("{who} {what}"),
                    "the call's thread ended without an answer",
                ));
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if started.elapsed() < Duration::from_secs(1) {
            continue;
        }
        if probe.is_none() {
            // A probe that cannot be created counts as a broker not answering: the call is
            // still running, so the guard must not return while the producer may be reused.
            probe = inner.client_config().create().ok();
        }
        let answers = probe.as_ref().is_some_and(|c: &BaseConsumer| {
            c.fetch_metadata(Some(&probe_topic), Duration::from_millis(500))
                .is_ok()
        });
        if !answers {
            answering_since = None;
            continue;
        }
        let since = *answering_since.get_or_insert_with(Instant::now);
        if since.elapsed() < stall {
            continue;
        }
        let waited_ms = started.elapsed().as_millis() as u64;
        warn!(
            who,
            call = what,
            waited_ms,
            "the broker answers but this producer's call hangs; abandoning the producer (a new \
             one fences it)"
        );
        return Err(broker(
            format!("{who} {what}"),
            format!(
                "no answer after {waited_ms} ms, the last {} ms of them with the broker \
                 answering (distributed.stalled_call_ms); the producer is abandoned and {who} \
                 restarts from its last commit",
                stall.as_millis()
            ),
        ));
    }
}
