"""Drives twinline's Postgres endpoint with psycopg 3 (libpq, extended query protocol, bound
parameters) and prints what it saw as one JSON object; queries/tests/it/pg.rs checks it against
the events it applied.

Usage:
  pg_client.py reads   PORT MACHINE SENSOR FROM TO
                                              trust server: typed reads, Grafana's queries,
                                              refusals
  pg_client.py limits  SHORT_PORT LONG_PORT   SHORT_PORT: engine limit ~1.5 s; LONG_PORT:
                                              engine limit 60 s (client timeout, cancel)
  pg_client.py login   PORT PASSWORD          token server: connect with PASSWORD
FROM and TO are RFC 3339 instants ('...Z'). Every probe records either its result or the error
it raised ({"error", "sqlstate", "kind"}), so a failing probe shows up in the Rust assertion with
the client's own message.
"""

import datetime as dt
import json
import sys
import threading
import time

import psycopg


def fail(exc):
    return {
        "error": str(exc),
        "sqlstate": getattr(exc, "sqlstate", None),
        "kind": type(exc).__name__,
    }


def probe(out, name, fn):
    try:
        out[name] = fn()
    except Exception as exc:  # the Rust side asserts on the kind, SQLSTATE and message
        out[name] = fail(exc)


def connect(port, password=None):
    # autocommit: no implicit BEGIN, each statement stands alone, as Grafana runs them.
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="grafana",
        dbname="twinline",
        password=password,
        autocommit=True,
        connect_timeout=10,
    )


def rows(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def iso(value):
    return value.isoformat() if isinstance(value, dt.datetime) else value


# --- reads -----------------------------------------------------------------------------------

GRAFANA_SCHEMA_CONSTRAINT = """
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"""

# Grafana's PostgreSQL data source (postgresMetaQuery.ts), verbatim but for the table name.
GRAFANA_TABLES = f"""SELECT
    CASE WHEN {GRAFANA_SCHEMA_CONSTRAINT}
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN {GRAFANA_SCHEMA_CONSTRAINT} THEN 0 ELSE 1 END, 1"""

GRAFANA_TABLES_IN_SCHEMA = """SELECT quote_ident(table_name) AS "table"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'public'
      ORDER BY 1"""


def grafana_columns(table):
    part = "'" + table.replace("'", "''") + "'"
    return f"""SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident({part}),1) = 2
        THEN quote_ident(table_schema) = (parse_ident({part}))[1]
          AND quote_ident(table_name) = (parse_ident({part}))[2]
        ELSE quote_ident(table_name) = {part}
          AND {GRAFANA_SCHEMA_CONSTRAINT}
      END"""


GRAFANA_SCHEMAS = """SELECT schema_name AS "name"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema',
                              'pg_catalog',
                              'pg_toast',
                              '_timescaledb_cache',
                              '_timescaledb_catalog',
                              '_timescaledb_internal',
                              '_timescaledb_config',
                              'timescaledb_information',
                              'timescaledb_experimental')
    ORDER BY schema_name"""


def reads(port, machine, sensor, start, end):
    out = {}
    conn = connect(port)

    # Grafana's connection test and start-up chatter.
    probe(out, "select_1", lambda: rows(conn, "SELECT 1")[0][0])
    probe(out, "version", lambda: rows(conn, "SELECT version()")[0][0])
    probe(
        out,
        "grafana_version",
        lambda: rows(conn, "SELECT current_setting('server_version_num')::int/100 as version")[0][0],
    )
    probe(
        out,
        "timescaledb",
        lambda: rows(conn, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"),
    )
    probe(out, "show_timezone", lambda: rows(conn, "SHOW timezone")[0][0])
    probe(out, "set_timezone", lambda: conn.execute("SET TIME ZONE 'UTC'").statusmessage)
    probe(out, "set_encoding", lambda: conn.execute("SET client_encoding TO 'UTF8'").statusmessage)
    probe(out, "show_read_only", lambda: rows(conn, "SHOW transaction_read_only")[0][0])

    # A point lookup with a bound parameter; values come back typed.
    def lookup():
        found = rows(
            conn,
            "SELECT machine_id, status, health_score, cycles, event_time, temperature, speed "
            "FROM twin_state WHERE machine_id = %s",
            (machine,),
        )
        return [
            {
                "machine_id": r[0],
                "status": r[1],
                "health_score": r[2],
                "cycles": r[3],
                "event_time": iso(r[4]),
                "event_time_is_aware": isinstance(r[4], dt.datetime) and r[4].utcoffset() is not None,
                "types": [type(v).__name__ for v in r],
            }
            for r in found
        ]

    probe(out, "lookup", lookup)
    # The same, as a prepared statement run several times (psycopg prepares from the 5th run).
    probe(
        out,
        "lookup_prepared",
        lambda: [
            rows(conn, "SELECT count(*) FROM twin_state WHERE machine_id = %s", (machine,))[0][0]
            for _ in range(6)
        ],
    )
    # Binary result columns (the portal's format), with a parameter of each common type.
    def binary():
        with conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT machine_id, health_score, cycles, event_time FROM twin_state "
                "WHERE machine_id = %s AND cycles >= %s AND event_time <= %s",
                (machine, 0, dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)),
            )
            return [[r[0], r[1], r[2], iso(r[3])] for r in cur.fetchall()]

    probe(out, "binary", binary)

    # Grafana's time series: one machine's sensor averaged per minute.
    def series(time_expr, where):
        return f"""SELECT {time_expr} AS "time", avg(value) AS value
                FROM sensor_readings WHERE {where} GROUP BY 1 ORDER BY 1"""

    date_bin = "date_bin(INTERVAL '1 minute', event_time)"
    # $__timeFilter expands to BETWEEN two literal instants.
    literal = f"event_time BETWEEN '{start}' AND '{end}' AND machine_id = '{machine}' AND sensor = '{sensor}'"
    probe(out, "date_bin", lambda: [[iso(t), v] for t, v in rows(conn, series(date_bin, literal))])
    # $__timeGroupAlias(event_time, 1m)
    probe(
        out,
        "time_group",
        lambda: [[t, v] for t, v in rows(conn, series("floor(extract(epoch from event_time)/60)*60", literal))],
    )
    # The same filter with bound timestamptz parameters instead of literals.
    probe(
        out,
        "date_bin_params",
        lambda: [
            [iso(t), v]
            for t, v in rows(
                conn,
                series(date_bin, "event_time BETWEEN %s AND %s AND machine_id = %s AND sensor = %s"),
                (
                    dt.datetime.fromisoformat(start.replace("Z", "+00:00")),
                    dt.datetime.fromisoformat(end.replace("Z", "+00:00")),
                    machine,
                    sensor,
                ),
            )
        ],
    )

    # Grafana's catalog queries.
    probe(out, "grafana_tables", lambda: [r[0] for r in rows(conn, GRAFANA_TABLES)])
    probe(
        out, "grafana_tables_in_schema", lambda: [r[0] for r in rows(conn, GRAFANA_TABLES_IN_SCHEMA)]
    )
    probe(out, "grafana_columns", lambda: [list(r) for r in rows(conn, grafana_columns("sensor_readings"))])
    probe(
        out,
        "grafana_columns_qualified",
        lambda: [list(r) for r in rows(conn, grafana_columns("public.sensor_readings"))],
    )
    probe(out, "grafana_schemas", lambda: [r[0] for r in rows(conn, GRAFANA_SCHEMAS)])

    # Writes are refused (25006), at Parse in the extended protocol; the connection stays usable.
    probe(
        out,
        "insert",
        lambda: rows(conn, "INSERT INTO twin_state (machine_id) VALUES (%s)", ("x",)),
    )
    probe(out, "select_into", lambda: rows(conn, "SELECT 1 AS a INTO copied"))
    probe(out, "create", lambda: rows(conn, "CREATE TABLE t (a int)"))
    probe(out, "set_datafusion", lambda: rows(conn, "SET datafusion.execution.batch_size = 1"))
    probe(out, "after_refusals", lambda: rows(conn, "SELECT 2")[0][0])
    probe(out, "unknown_table", lambda: rows(conn, "SELECT * FROM no_such_table"))
    probe(out, "syntax_error", lambda: rows(conn, "SELEC 1"))
    conn.close()
    return out


# --- time limits and cancel ------------------------------------------------------------------

# Streams ~10^12 rows through one aggregate: no memory to speak of, and no answer before any
# limit (no statistics shortcut, unlike a bare count(*)).
SLOW = "SELECT sum(value % 7) FROM generate_series(1, 1000000000000)"


def timed(conn, sql):
    started = time.monotonic()
    try:
        rows(conn, sql)
        result = {"ok": True}
    except Exception as exc:
        result = fail(exc)
    result["elapsed"] = time.monotonic() - started
    return result


def limits(short_port, long_port):
    out = {}
    conn = connect(short_port)
    # The engine's limit applies when the client sets none...
    out["engine_limit"] = timed(conn, SLOW)
    probe(out, "after_engine_limit", lambda: rows(conn, "SELECT 1")[0][0])
    # ...and when it sets a larger one (capped).
    probe(out, "set_larger", lambda: conn.execute("SET statement_timeout = '60s'").statusmessage)
    out["capped_limit"] = timed(conn, SLOW)
    probe(out, "after_capped_limit", lambda: rows(conn, "SELECT 1")[0][0])
    conn.close()

    conn = connect(long_port)
    # A smaller client limit is honoured.
    probe(out, "set_smaller", lambda: conn.execute("SET statement_timeout = 300").statusmessage)
    out["client_limit"] = timed(conn, SLOW)
    probe(out, "after_client_limit", lambda: rows(conn, "SELECT 1")[0][0])
    probe(out, "set_zero", lambda: conn.execute("SET statement_timeout = 0").statusmessage)
    # A cancel request (a second connection carrying the backend key) stops the statement.
    timer = threading.Timer(0.5, conn.cancel_safe)
    timer.start()
    out["cancelled"] = timed(conn, SLOW)
    timer.join()
    probe(out, "after_cancel", lambda: rows(conn, "SELECT 1")[0][0])
    conn.close()
    return out


# --- login -----------------------------------------------------------------------------------

def login(port, password):
    try:
        conn = connect(port, password=password)
    except Exception as exc:
        return fail(exc)
    try:
        return {"ok": True, "select_1": rows(conn, "SELECT 1")[0][0]}
    finally:
        conn.close()


def main():
    mode = sys.argv[1]
    if mode == "reads":
        out = reads(int(sys.argv[2]), *sys.argv[3:7])
    elif mode == "limits":
        out = limits(int(sys.argv[2]), int(sys.argv[3]))
    elif mode == "login":
        out = login(int(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
