"""A third-party plant producer for the Kafka-mode tests: the Confluent Python client
(confluent-kafka's Producer, SchemaRegistryClient and AvroSerializer), nothing of twinline's.

Usage: kafka_producer.py <brokers> <topic> <registry-url> <machine-id> <count> <first-event-ms> [transactional]

Writes <count> sensor readings of <machine-id> (one per second of event time, cycling through
the sensors) serialized with the schema the registry holds for `sensor-readings-value`, then two
poison records under the same key: bytes that are not in the wire format, and a wire-format
header naming a schema id the registry does not have. Uses Kafka's default partitioner
(murmur2, as the Java client), so a machine's records land where twinline expects them. Prints
one JSON object: {"readings": n, "poison": [hex, hex]}.

With `transactional`: no poison; the readings are written in one committed transaction, then
<count> readings of `<machine-id>-ABORTED` in a transaction that is aborted (read_committed
consumers must never see them). Transaction markers then sit among the records and at the end
of the partitions.
"""

import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

brokers, topic, url, machine, count, t0 = sys.argv[1:7]
count, t0 = int(count), int(t0)
transactional = sys.argv[7:8] == ["transactional"]

client = SchemaRegistryClient({"url": url})
latest = client.get_latest_version("sensor-readings-value")
serializer = AvroSerializer(
    client,
    latest.schema.schema_str,
    conf={
        "auto.register.schemas": False,
        "use.latest.version": True,
        # The topic may carry a prefix; the subject is the unprefixed topic's.
        "subject.name.strategy": lambda ctx, record_name: "sensor-readings-value",
    },
)
ctx = SerializationContext(topic, MessageField.VALUE)
conf = {"bootstrap.servers": brokers, "partitioner": "murmur2_random", "acks": "all"}
if transactional:
    conf["transactional.id"] = f"py-producer-{machine}-{t0}"
producer = Producer(conf)
sensors = [("TEMPERATURE", 61.5, "C"), ("VIBRATION", 2.1, "mm/s"), ("PRESSURE", 5.2, "bar"), ("SPEED", 3000.0, "rpm")]
errors = []


def delivered(err, msg):
    if err is not None:
        errors.append(str(err))


def readings(machine_id):
    for i in range(count):
        name, value, unit = sensors[i % len(sensors)]
        reading = {
            "machine_id": machine_id,
            "sensor": name,
            "value": value + (i % 7) * 0.1,
            "unit": unit,
            "event_time": t0 + i * 1000,
        }
        producer.produce(topic, key=machine_id.encode(), value=serializer(reading, ctx), on_delivery=delivered)


poison = [] if transactional else [b"plain text, not Avro", b"\x00\x00\x0f\x42\x3f\x02\x04\x06"]
if transactional:
    producer.init_transactions(30)
    producer.begin_transaction()
    readings(machine)
    producer.commit_transaction(30)
    producer.begin_transaction()
    readings(machine + "-ABORTED")
    producer.flush(30)
    producer.abort_transaction(30)
else:
    readings(machine)
    for p in poison:
        producer.produce(topic, key=machine.encode(), value=p, on_delivery=delivered)
producer.flush(30)
if errors:
    sys.exit("delivery failed: " + "; ".join(errors))
print(json.dumps({"readings": count, "poison": [p.hex() for p in poison]}))
