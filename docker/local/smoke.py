#!/usr/bin/env python3
"""docker/local/smoke.py: checks that the servers from docker/local/up give the guarantees
twinline's distributed mode relies on, with the usual third-party clients.

Reads TWINLINE_KAFKA and TWINLINE_SCYLLA from the environment (as printed by `up`).
Needs `confluent-kafka` and `cassandra-driver` (pip). Each check asserts a property a
fake server gets wrong (aborted records hidden from read_committed consumers, offsets
committed inside a transaction, clustering-key slices, TTL expiry), not just "it answers".
Prints one line per check and a closing 'N passed, N failed' line; exits 1 on any failure.
"""

import os
import sys
import time
import traceback
import uuid

KAFKA = os.environ.get("TWINLINE_KAFKA", "127.0.0.1:19092")
SCYLLA = os.environ.get("TWINLINE_SCYLLA", "127.0.0.1:19042")
RUN_ID = uuid.uuid4().hex[:8]


def kafka_topic(admin, name, partitions=1, config=None):
    from confluent_kafka.admin import NewTopic

    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
    )
    futures[name].result(timeout=30)
    return name


def drain(consumer, expect_at_least, timeout_s=30.0):
    """Polls until `expect_at_least` records arrived and the consumer then stays idle 1s."""
    out = []
    deadline = time.monotonic() + timeout_s
    idle_since = None
    while time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            if len(out) >= expect_at_least:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 1.0:
                    break
            continue
        idle_since = None
        if msg.error():
            raise RuntimeError(f"consumer error: {msg.error()}")
        out.append(msg)
    return out


def check_kafka_transactions():
    """Committed records are visible to read_committed consumers, aborted ones are not,
    and read_uncommitted consumers do see the aborted ones (so the filter is real)."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA})
    topic = kafka_topic(admin, f"smoke-txn-{RUN_ID}")
    producer = Producer(
        {"bootstrap.servers": KAFKA, "transactional.id": f"smoke-{RUN_ID}", "enable.idempotence": True}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed-1")
    producer.produce(topic, key=b"k", value=b"committed-2")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed-3")
    producer.commit_transaction(30)

    def read(isolation, expect):
        c = Consumer(
            {
                "bootstrap.servers": KAFKA,
                "group.id": f"smoke-{isolation}-{RUN_ID}",
                "auto.offset.reset": "earliest",
                "isolation.level": isolation,
                "enable.auto.commit": False,
            }
        )
        c.subscribe([topic])
        try:
            return [m.value() for m in drain(c, expect)]
        finally:
            c.close()

    committed = read("read_committed", 3)
    assert committed == [b"committed-1", b"committed-2", b"committed-3"], committed
    uncommitted = read("read_uncommitted", 4)
    assert b"aborted" in uncommitted, uncommitted


def check_kafka_exactly_once_offsets():
    """consume-transform-produce: offsets sent with the transaction are the group's
    committed offsets after commit, and unchanged after an abort."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA})
    src = kafka_topic(admin, f"smoke-eos-in-{RUN_ID}")
    dst = kafka_topic(admin, f"smoke-eos-out-{RUN_ID}")
    plain = Producer({"bootstrap.servers": KAFKA})
    for i in range(5):
        plain.produce(src, value=str(i).encode())
    plain.flush(30)

    group = f"smoke-eos-{RUN_ID}"
    consumer = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([src])
    msgs = drain(consumer, 5)
    assert [m.value() for m in msgs] == [str(i).encode() for i in range(5)], msgs

    producer = Producer({"bootstrap.servers": KAFKA, "transactional.id": f"smoke-eos-{RUN_ID}"})
    producer.init_transactions(30)
    # Transaction 1 covers the first 3 inputs and commits; transaction 2 the rest, aborted.
    producer.begin_transaction()
    for m in msgs[:3]:
        producer.produce(dst, value=b"out-" + m.value())
    producer.send_offsets_to_transaction(
        [TopicPartition(src, 0, msgs[2].offset() + 1)], consumer.consumer_group_metadata(), 30
    )
    producer.commit_transaction(30)
    producer.begin_transaction()
    for m in msgs[3:]:
        producer.produce(dst, value=b"out-" + m.value())
    producer.send_offsets_to_transaction(
        [TopicPartition(src, 0, msgs[4].offset() + 1)], consumer.consumer_group_metadata(), 30
    )
    producer.abort_transaction(30)

    committed = consumer.committed([TopicPartition(src, 0)], timeout=30)
    consumer.close()
    assert committed[0].offset == msgs[2].offset() + 1, committed

    reader = Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"smoke-eos-reader-{RUN_ID}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    reader.subscribe([dst])
    out = [m.value() for m in drain(reader, 3)]
    reader.close()
    assert out == [b"out-0", b"out-1", b"out-2"], out


def check_kafka_compaction_config():
    """A compacted topic is accepted and reports cleanup.policy=compact back."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": KAFKA})
    topic = kafka_topic(admin, f"smoke-compact-{RUN_ID}", config={"cleanup.policy": "compact"})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact", configs["cleanup.policy"]


def check_cassandra():
    """Keyspace + table with a clustering key: slices by clustering range return exactly
    the rows in range, in clustering order; a TTL'd row expires."""
    from cassandra.cluster import Cluster

    host, port = SCYLLA.rsplit(":", 1)
    cluster = Cluster([host], port=int(port), protocol_version=5)
    session = cluster.connect()
    ks = f"smoke_{RUN_ID}"
    session.execute(
        f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    session.execute(
        f"CREATE TABLE {ks}.readings (machine text, ts bigint, value double, "
        "PRIMARY KEY (machine, ts)) WITH CLUSTERING ORDER BY (ts DESC)"
    )
    insert = session.prepare(f"INSERT INTO {ks}.readings (machine, ts, value) VALUES (?, ?, ?)")
    for ts in range(10):
        session.execute(insert, ("m1", ts, ts * 1.5))
        session.execute(insert, ("m2", ts, -ts * 1.0))
    rows = list(
        session.execute(
            f"SELECT ts, value FROM {ks}.readings WHERE machine = 'm1' AND ts >= 3 AND ts < 7"
        )
    )
    assert [(r.ts, r.value) for r in rows] == [(6, 9.0), (5, 7.5), (4, 6.0), (3, 4.5)], rows

    session.execute(f"INSERT INTO {ks}.readings (machine, ts, value) VALUES ('ttl', 1, 1.0) USING TTL 1")
    assert len(list(session.execute(f"SELECT * FROM {ks}.readings WHERE machine = 'ttl'"))) == 1
    time.sleep(2.2)
    left = list(session.execute(f"SELECT * FROM {ks}.readings WHERE machine = 'ttl'"))
    assert left == [], left
    session.execute(f"DROP KEYSPACE {ks}")
    cluster.shutdown()


CHECKS = [
    check_kafka_transactions,
    check_kafka_exactly_once_offsets,
    check_kafka_compaction_config,
    check_cassandra,
]


def main():
    passed = failed = 0
    for check in CHECKS:
        t0 = time.monotonic()
        try:
            check()
        except Exception:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {check.__name__} ({time.monotonic() - t0:.1f}s)")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {check.__name__} ({time.monotonic() - t0:.1f}s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
