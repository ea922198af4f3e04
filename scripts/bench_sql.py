"""Query latency over the Postgres wire protocol (psycopg, a third-party client) against a
running `twinline run --pg-listen`, and the same history aggregate through DuckDB over the same
Parquet files, in the same run. Prints a Markdown table.

Usage: bench_sql.py --pg HOST:PORT --history DIR [--machines N] [--repeat N]
"""

import argparse
import json
import statistics
import time

import duckdb
import psycopg

AGGREGATE_TWINLINE = """
SELECT date_trunc('hour', event_time) AS hour, sensor, avg(value) AS mean, count(*) AS n
FROM history.sensor_readings
GROUP BY 1, 2
ORDER BY 1, 2
"""

AGGREGATE_DUCKDB = """
SELECT date_trunc('hour', event_time) AS hour, sensor, avg(value) AS mean, count(*) AS n
FROM read_parquet('{glob}')
GROUP BY 1, 2
ORDER BY 1, 2
"""

# DuckDB's date_trunc on TIMESTAMPTZ goes through its ICU calendar; time_bucket is its fastest
# way to the same hourly buckets, reported too so the anchor is DuckDB at its best.
AGGREGATE_DUCKDB_BUCKET = """
SELECT time_bucket(INTERVAL '1 hour', event_time) AS hour, sensor, avg(value) AS mean, count(*) AS n
FROM read_parquet('{glob}')
GROUP BY 1, 2
ORDER BY 1, 2
"""


def percentiles(samples):
    s = sorted(samples)
    p = lambda q: s[min(len(s) - 1, int(round(q * (len(s) - 1))))]
    return p(0.5) * 1000, p(0.99) * 1000


def timed(fn, repeat):
    out = []
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t)
    return out, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", required=True)
    ap.add_argument("--history", required=True)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--lookups", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    host, port = a.pg.rsplit(":", 1)
    conn = psycopg.connect(host=host, port=int(port), user="bench", dbname="twinline", autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM history.sensor_readings")
    history_rows = cur.fetchone()[0]
    cur.execute("SELECT machine_id FROM twin_state ORDER BY machine_id")
    machines = [r[0] for r in cur.fetchall()]

    i = 0

    def lookup():
        nonlocal i
        m = machines[i % len(machines)]
        i += 1
        cur.execute("SELECT * FROM twin_state WHERE machine_id = %s", (m,))
        rows = cur.fetchall()
        assert len(rows) == 1, rows
        return rows

    timed(lookup, 20)  # warm-up
    lookups, _ = timed(lookup, a.lookups)

    def aggregate():
        cur.execute(AGGREGATE_TWINLINE)
        return cur.fetchall()

    aggregate()  # warm-up (first scan reads the footers)
    agg, agg_rows = timed(aggregate, a.repeat)

    duck = duckdb.connect()
    duck.execute(f"SET threads={a.threads}")
    duck.execute("SET TimeZone = 'UTC'")
    glob = f"{a.history}/sensor-readings/*/*/*.parquet"
    q = AGGREGATE_DUCKDB.format(glob=glob)
    duck.execute(q).fetchall()  # warm-up
    dagg, duck_rows = timed(lambda: duck.execute(q).fetchall(), a.repeat)
    qb = AGGREGATE_DUCKDB_BUCKET.format(glob=glob)
    duck.execute(qb).fetchall()  # warm-up
    bagg, bucket_rows = timed(lambda: duck.execute(qb).fetchall(), a.repeat)

    # Same answer from both engines (counts exactly, means to float precision).
    for other in (duck_rows, bucket_rows):
        assert len(agg_rows) == len(other), (len(agg_rows), len(other))
        for x, y in zip(agg_rows, other):
            assert x[0] == y[0] and x[1] == y[1] and x[3] == y[3], (x, y)
            assert abs(x[2] - y[2]) <= 1e-9 * max(1.0, abs(y[2])), (x, y)
    total = sum(r[3] for r in agg_rows)
    assert total == history_rows, (total, history_rows)

    lp50, lp99 = percentiles(lookups)
    ap50, ap99 = percentiles(agg)
    dp50, dp99 = percentiles(dagg)
    bp50, bp99 = percentiles(bagg)
    print(f"history rows: {history_rows}, machines: {len(machines)}, hourly groups: {len(agg_rows)}")
    print("| query | engine | runs | p50 (ms) | p99 (ms) |")
    print("|---|---|---|---|---|")
    print(f"| point lookup on twin_state | twinline, Postgres protocol (psycopg) | {a.lookups} | {lp50:.2f} | {lp99:.2f} |")
    print(f"| hourly aggregate over history.sensor_readings | twinline, Postgres protocol (psycopg) | {a.repeat} | {ap50:.1f} | {ap99:.1f} |")
    print(f"| same aggregate, same Parquet files | DuckDB {duckdb.__version__}, {a.threads} threads | {a.repeat} | {dp50:.1f} | {dp99:.1f} |")
    print(f"| same buckets with time_bucket | DuckDB {duckdb.__version__}, {a.threads} threads | {a.repeat} | {bp50:.1f} | {bp99:.1f} |")
    print(f"ratio twinline/DuckDB p50: {ap50 / dp50:.2f} (same query), {ap50 / bp50:.2f} (DuckDB's time_bucket)")
    print(json.dumps({"history_rows": history_rows, "lookup_p50_ms": lp50, "lookup_p99_ms": lp99,
                      "agg_p50_ms": ap50, "agg_p99_ms": ap99, "duckdb_p50_ms": dp50, "duckdb_p99_ms": dp99,
                      "duckdb_time_bucket_p50_ms": bp50, "duckdb_time_bucket_p99_ms": bp99}))


if __name__ == "__main__":
    main()
