"""Drives twinline's Flight SQL endpoint with third-party clients (ADBC's Flight SQL driver and
pyarrow.flight) and prints what they saw as one JSON object; queries/tests/it/flight.rs checks it
against the events it applied.

Usage: flight_client.py PORT secured|open
  secured: the server has read_requires_token = true and knows the token `read-token`;
  open:    the server has read_requires_token = false.
Every probe records either its result or the error it raised ({"error": ..., "kind": ...}), so a
failing probe shows up in the Rust assertion with the client's own message.
"""

import json
import sys
import traceback


def fail(exc):
    return {"error": str(exc), "kind": type(exc).__name__}


def probe(out, name, fn):
    try:
        out[name] = fn()
    except Exception as exc:  # the Rust side asserts on the kind and message
        out[name] = fail(exc)


# --- the Flight SQL protobuf, by hand: pyarrow has no Flight SQL helpers ---------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number, payload):
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def any_command(name, body):
    """google.protobuf.Any{type_url, value} around one arrow.flight.protocol.sql message."""
    type_url = "type.googleapis.com/arrow.flight.protocol.sql." + name
    return field_bytes(1, type_url.encode()) + field_bytes(2, body)


def statement_query(sql):
    # CommandStatementQuery { string query = 1; optional bytes transaction_id = 2; }
    return any_command("CommandStatementQuery", field_bytes(1, sql.encode()))


def rows(table):
    return table.to_pylist()


# --- ADBC ------------------------------------------------------------------------------------

def adbc_connect(uri, **db_kwargs):
    import adbc_driver_flightsql.dbapi as dbapi

    return dbapi.connect(uri, db_kwargs=db_kwargs)


def adbc_query(conn, sql, params=None):
    cur = conn.cursor()
    try:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)
        return rows(cur.fetch_arrow_table())
    finally:
        cur.close()


def adbc_objects(conn):
    table = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    found = {}
    for catalog in table:
        for schema in catalog["catalog_db_schemas"] or []:
            for t in schema["db_schema_tables"] or []:
                key = "%s.%s.%s" % (
                    catalog["catalog_name"],
                    schema["db_schema_name"],
                    t["table_name"],
                )
                found[key] = {
                    "type": t["table_type"],
                    "columns": [c["column_name"] for c in t["table_columns"] or []],
                }
    return found


def adbc_probes(uri, out):
    conn = adbc_connect(uri, **{"adbc.flight.sql.authorization_header": "Bearer read-token"})
    try:
        probe(out, "adbc_info", lambda: {
            k: str(v) for k, v in conn.adbc_get_info().items()
            if k in ("vendor_name", "vendor_version", "vendor_arrow_version")
        })
        probe(out, "point_lookup", lambda: adbc_query(
            conn,
            "SELECT machine_id, status, health_score, cycles FROM twin_state "
            "WHERE machine_id = 'm-003'",
        ))
        probe(out, "aggregate", lambda: adbc_query(
            conn,
            "SELECT machine_id, count(*) AS n, sum(value) AS total, max(value) AS peak "
            "FROM sensor_readings GROUP BY machine_id ORDER BY machine_id",
        ))
        probe(out, "param_lookup", lambda: adbc_query(
            conn,
            "SELECT machine_id, status, cycles FROM twin_state WHERE machine_id = ?",
            ("m-002",),
        ))
        probe(out, "param_count", lambda: adbc_query(
            conn,
            "SELECT count(*) AS n FROM sensor_readings WHERE sensor = ? AND value > ?",
            ("TEMPERATURE", 50.0),
        ))
        probe(out, "objects", lambda: adbc_objects(conn))
        probe(out, "table_schema", lambda: [
            [f.name, str(f.type)] for f in conn.adbc_get_table_schema("twin_state")
        ])
        probe(out, "adbc_insert", lambda: adbc_query(
            conn, "INSERT INTO twin_state (machine_id) VALUES ('x')"
        ))
        probe(out, "adbc_prepared_insert", lambda: adbc_query(
            conn, "INSERT INTO twin_state (machine_id) VALUES (?)", ("x",)
        ))
    finally:
        conn.close()

    def basic_login():
        # ADBC's user/password: a Basic handshake, then the bearer header it answers with.
        c = adbc_connect(uri, username="anyone", password="read-token")
        try:
            return adbc_query(c, "SELECT count(*) AS n FROM twin_state")
        finally:
            c.close()

    probe(out, "adbc_basic_login", basic_login)

    def with_header(value):
        kwargs = {} if value is None else {"adbc.flight.sql.authorization_header": value}
        c = adbc_connect(uri, **kwargs)
        try:
            return adbc_query(c, "SELECT 1 AS one")
        finally:
            c.close()

    probe(out, "adbc_wrong_token", lambda: with_header("Bearer not-a-token"))
    probe(out, "adbc_no_token", lambda: with_header(None))


# --- pyarrow.flight --------------------------------------------------------------------------

def flight_probes(uri, out):
    import pyarrow.flight as flight

    client = flight.FlightClient(uri)

    def run(sql, options):
        descriptor = flight.FlightDescriptor.for_command(statement_query(sql))
        info = client.get_flight_info(descriptor, options)
        tables = [client.do_get(e.ticket, options).read_all() for e in info.endpoints]
        return {
            "schema": [f.name for f in info.schema],
            "rows": [r for t in tables for r in rows(t)],
        }

    def login():
        header = client.authenticate_basic_token(b"dashboard", b"read-token")
        return [h.decode() if isinstance(h, bytes) else h for h in header]

    probe(out, "flight_handshake", login)
    if isinstance(out["flight_handshake"], list):
        key, value = out["flight_handshake"]
        options = flight.FlightCallOptions(headers=[(key.encode(), value.encode())])
        probe(out, "flight_states", lambda: run(
            "SELECT machine_id, health_score FROM twin_state ORDER BY machine_id", options
        ))
        probe(out, "flight_insert", lambda: run(
            "INSERT INTO twin_state (machine_id) VALUES ('x')", options
        ))
    probe(out, "flight_wrong_password",
          lambda: client.authenticate_basic_token(b"dashboard", b"wrong"))
    probe(out, "flight_no_credentials",
          lambda: run("SELECT 1 AS one", flight.FlightCallOptions()))


def open_probes(uri, out):
    import pyarrow.flight as flight

    conn = adbc_connect(uri)
    try:
        probe(out, "adbc_anonymous", lambda: adbc_query(conn, "SELECT count(*) AS n FROM twin_state"))
    finally:
        conn.close()
    client = flight.FlightClient(uri)
    descriptor = flight.FlightDescriptor.for_command(statement_query("SELECT 41 + 1 AS answer"))

    def anonymous():
        info = client.get_flight_info(descriptor)
        return rows(client.do_get(info.endpoints[0].ticket).read_all())

    probe(out, "flight_anonymous", anonymous)


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    uri = "grpc://127.0.0.1:%d" % port
    out = {}
    try:
        if mode == "secured":
            adbc_probes(uri, out)
            flight_probes(uri, out)
        else:
            open_probes(uri, out)
    except Exception:
        out["crash"] = traceback.format_exc()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
