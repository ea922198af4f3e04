"""Third-party client check of `twinline registry`, with the Confluent Python client.

Usage: registry_client.py <registry-url> <hex of a sensor-readings value twinline encoded>

Uses only confluent-kafka's SchemaRegistryClient, AvroSerializer and AvroDeserializer (the
usual client of a Confluent Schema Registry), and prints one JSON object on stdout:
  latest        {id, version, subject} of sensor-readings-value, as the client reads it
  decoded       twinline's bytes decoded by AvroDeserializer (schema fetched by id)
  encoded_hex   a reading serialized by AvroSerializer with the registry's latest schema
  incompatible  {status, code, message} of registering a schema twinline's data cannot be read with
  evolved       {id, version} of registering a compatible new version (an optional field added)
  encoded_v2_hex  the same reading serialized with that new version
  lookup_id     the id the registry returns when the client looks up twinline's own schema again
"""

import json
import sys

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

url, twinline_hex = sys.argv[1], sys.argv[2]
subject = "sensor-readings-value"
client = SchemaRegistryClient({"url": url})
ctx = SerializationContext("sensor-readings", MessageField.VALUE)
out = {}

latest = client.get_latest_version(subject)
out["latest"] = {"id": latest.schema_id, "version": latest.version, "subject": latest.subject}

# Decode what twinline wrote: the deserializer takes the schema id from the wire format.
deserializer = AvroDeserializer(client)
decoded = deserializer(bytes.fromhex(twinline_hex), ctx)
out["decoded"] = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in decoded.items()}

# Write a reading the way a plant producer would: the schema is the registry's, not ours.
serializer = AvroSerializer(
    client,
    latest.schema.schema_str,
    conf={"auto.register.schemas": False, "use.latest.version": True},
)
reading = {
    "machine_id": "M-PY-1",
    "sensor": "VIBRATION",
    "value": 4.25,
    "unit": "mm/s",
    "event_time": 1767225600123,
}
out["encoded_hex"] = serializer(reading, ctx).hex()

# An incompatible change: a new required field the old data does not have.
schema = json.loads(latest.schema.schema_str)
bad = json.loads(json.dumps(schema))
bad["fields"].append({"name": "line_id", "type": "string"})
try:
    client.register_schema(subject, Schema(json.dumps(bad), "AVRO"))
    out["incompatible"] = None
except SchemaRegistryError as e:
    out["incompatible"] = {
        "status": e.http_status_code,
        "code": e.error_code,
        "message": e.error_message,
    }

# A compatible change: an optional field with a default.
good = json.loads(json.dumps(schema))
good["fields"].append({"name": "line_id", "type": ["null", "string"], "default": None})
evolved_id = client.register_schema(subject, Schema(json.dumps(good), "AVRO"))
evolved = client.lookup_schema(subject, Schema(json.dumps(good), "AVRO"))
out["evolved"] = {"id": evolved_id, "version": evolved.version}
# A producer already on the new version: twinline must read it with its own (older) schema.
# (The serializer looks its schema up in the registry to learn the id: `POST /subjects/{s}`.)
serializer_v2 = AvroSerializer(
    client,
    json.dumps(good),
    conf={"auto.register.schemas": False, "use.latest.version": False},
)
out["encoded_v2_hex"] = serializer_v2(dict(reading, line_id="L7"), ctx).hex()
out["lookup_id"] = client.lookup_schema(subject, latest.schema).schema_id

print(json.dumps(out))
