//! The Postgres endpoint, driven by real clients as subprocesses: Debian's `psql` (simple query
//! protocol, catalog queries of `\dt`, `\d`, `\l`) and psycopg 3 (extended protocol, bound
//! parameters, Grafana's queries; `tests/clients/pg_client.py`). Expected values come from the
//! events each test applies, never from the server.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use serde_json::Value;
use twinline_queries::pg::{PgConfig, PgServer};
use twinline_queries::{QueryConfig, QueryEngine, ViewConfig, Views};
use twinline_schemas::*;

use crate::common::*;

/// The machine whose time series and twin state the tests look up.
const MACHINE: &str = "m-pg";
const VIEWS: [&str; 9] = [
    "dead_letters",
    "defects",
    "failure_predictions",
    "maintenance_requests",
    "schedule",
    "schedule_changes",
    "sensor_readings",
    "twin_state",
    "twin_state_history",
];
/// A subprocess that runs longer than this has hung; `timeout` kills it (exit 124).
const CLIENT_TIMEOUT_S: &str = "120";

/// A seeded mix of every topic, a one-minute-scale temperature series of [`MACHINE`] (every
/// 7 s for 12 minutes) with other sensors and machines interleaved, and two twin states of it.
fn payloads() -> Vec<Payload> {
    let mut out: Vec<Payload> = mixed_events(11, 1_500, 4)
        .into_iter()
        .map(|(_, _, _, p)| p)
        .collect();
    for i in 0..(12 * 60 / 7) {
        let t = T0 + 5_000 + i * 7_000;
        out.push(sensor(
            MACHINE,
            SensorKind::Temperature,
            20.0 + (i % 13) as f64 * 0.5,
            t,
        ));
        out.push(sensor(MACHINE, SensorKind::Vibration, 1_000.0, t + 1));
        out.push(sensor("m-other", SensorKind::Temperature, -1_000.0, t + 2));
    }
    out.push(twin(MACHINE, 5, MachineStatus::Running, 80.0, T0 + 1_000));
    out.push(twin(MACHINE, 9, MachineStatus::Warning, 72.25, T0 + 2_000));
    out
}

fn engine(payloads: &[Payload], timeout: Duration) -> QueryEngine {
    let views = Arc::new(Views::new(ViewConfig::default()));
    apply_all(&views, payloads);
    QueryEngine::new(
        views,
        QueryConfig {
            timeout,
            ..QueryConfig::default()
        },
    )
    .expect("query engine")
}

fn serve(engine: &QueryEngine, read_requires_token: bool) -> PgServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    PgServer::spawn(
        listener,
        engine,
        PgConfig {
            tokens: tokens(),
            read_requires_token,
        },
    )
    .expect("postgres endpoint")
}

/// The last twin state of `machine` among `payloads`.
fn last_twin<'a>(payloads: &'a [Payload], machine: &str) -> &'a TwinState {
    payloads
        .iter()
        .rev()
        .find_map(|p| match p {
            Payload::TwinState(s) if s.machine_id == machine => Some(s),
            _ => None,
        })
        .expect("a twin state of the machine")
}

/// Average temperature of [`MACHINE`] per minute (bucket start, ms) over `[from, to]`.
fn minute_averages(payloads: &[Payload], from: i64, to: i64) -> Vec<(i64, f64)> {
    let mut buckets: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
    for p in payloads {
        if let Payload::SensorReading(r) = p {
            if r.machine_id == MACHINE
                && r.sensor == SensorKind::Temperature
                && (from..=to).contains(&r.event_time)
            {
                let b = buckets
                    .entry(r.event_time.div_euclid(60_000) * 60_000)
                    .or_default();
                b.0 += r.value;
                b.1 += 1;
            }
        }
    }
    buckets
        .into_iter()
        .map(|(t, (sum, n))| (t, sum / f64::from(n)))
        .collect()
}

fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .expect("instant in range")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

// --- clients ---------------------------------------------------------------------------------

fn psql_path() -> PathBuf {
    let path = PathBuf::from("/usr/bin/psql");
    assert!(
        path.exists(),
        "the Postgres endpoint tests need Debian's psql at /usr/bin/psql \
         (apt-get install postgresql-client)"
    );
    path
}

fn python_path() -> PathBuf {
    let path = std::env::var_os("TWINLINE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            package_dir()
                .parent()
                .expect("workspace root")
                .join(".venv/bin/python")
        });
    assert!(
        path.exists(),
        "the Postgres endpoint tests need a Python with psycopg 3 at {} \
         (create the workspace's .venv, or point TWINLINE_PYTHON at one)",
        path.display()
    );
    path
}

/// Runs `program args` under `timeout`, so a hung client fails the test instead of blocking it.
fn run(program: &PathBuf, args: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(CLIENT_TIMEOUT_S).arg(program).args(args);
    // English messages, no user or site configuration, no password unless given.
    cmd.env("LC_ALL", "C")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS")
        .env("PGCONNECT_TIMEOUT", "10");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert_ne!(
        out.status.code(),
        Some(124),
        "{} hung (killed after {CLIENT_TIMEOUT_S} s); stderr: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Psql {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

/// `psql` against `server`, one `-c` per command (one connection, in order), unaligned output
/// and SQLSTATEs in error messages.
fn psql(server: &PgServer, commands: &[&str], extra: &[&str], password: Option<&str>) -> Psql {
    let mut args: Vec<String> = [
        "-X",
        "-w",
        "-A",
        "-F",
        "|",
        "-h",
        "127.0.0.1",
        "-U",
        "grafana",
        "-d",
        "twinline",
        "-v",
        "VERBOSITY=verbose",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("-p".into());
    args.push(server.local_addr().port().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    for c in commands {
        args.push("-c".into());
        args.push(c.to_string());
    }
    let env: Vec<(&str, &str)> = password.map(|p| ("PGPASSWORD", p)).into_iter().collect();
    let out = run(&psql_path(), &args, &env);
    Psql {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

fn psql_ok(server: &PgServer, commands: &[&str]) -> String {
    let out = psql(server, commands, &["-v", "ON_ERROR_STOP=1"], None);
    assert_eq!(
        out.code,
        Some(0),
        "psql {commands:?} failed: {}\n{}",
        out.stderr,
        out.stdout
    );
    out.stdout
}

/// `pg_client.py args`, its stdout parsed as JSON.
fn py_client(args: &[String]) -> Value {
    let script = package_dir().join("tests/clients/pg_client.py");
    let mut full = vec![script.display().to_string()];
    full.extend(args.iter().cloned());
    let out = run(&python_path(), &full, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pg_client.py {args:?} failed ({:?}): {}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("pg_client.py printed no JSON ({e}): {stdout}"))
}

/// A probe's value, or a panic with the client's error.
fn ok<'a>(report: &'a Value, probe: &str) -> &'a Value {
    let v = &report[probe];
    assert!(
        v.get("error").is_none(),
        "{probe} failed in the client: {v}"
    );
    v
}

fn sqlstate(report: &Value, probe: &str) -> String {
    report[probe]["sqlstate"]
        .as_str()
        .unwrap_or_else(|| {
            panic!(
                "{probe} was expected to fail with a SQLSTATE: {}",
                report[probe]
            )
        })
        .to_string()
}

// --- psql ------------------------------------------------------------------------------------

#[test]
fn psql_lists_describes_and_reads_the_views() {
    let payloads = payloads();
    let engine = engine(&payloads, Duration::from_secs(30));
    let server = serve(&engine, false);

    // \dt: every view, in `public` (psql's own catalog query; no password asked: trust).
    let listed = psql_ok(&server, &["\\dt"]);
    for view in VIEWS {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(&format!("public|{view}|"))),
            "\\dt does not list {view}:\n{listed}"
        );
    }

    // \d twin_state: its columns with Postgres type names and nullability.
    let described = psql_ok(&server, &["\\d twin_state"]);
    assert!(described.contains("twin_state"), "{described}");
    for (column, ty) in [
        ("machine_id", "text"),
        ("event_time", "timestamp with time zone"),
        ("health_score", "double precision"),
        ("cycles", "bigint"),
        ("source_partition", "integer"),
        ("vibration", "double precision"),
        ("reason", "text"),
    ] {
        assert!(
            described
                .lines()
                .any(|l| l.starts_with(&format!("{column}|{ty}|"))),
            "\\d twin_state lacks {column} {ty}:\n{described}"
        );
    }

    // \l: the database list.
    let databases = psql_ok(&server, &["\\l"]);
    assert!(
        databases.lines().any(|l| l.starts_with("datafusion|")),
        "\\l:\n{databases}"
    );

    // A point lookup, for a machine of the seeded mix and for ours.
    for machine in ["m-001", MACHINE] {
        let expected = last_twin(&payloads, machine);
        let out = psql_ok(
            &server,
            &[&format!(
                "SELECT machine_id, status, health_score, cycles FROM twin_state \
                 WHERE machine_id = '{machine}'"
            )],
        );
        let rows: Vec<&str> = out
            .lines()
            .skip(1) // header
            .filter(|l| !l.starts_with('('))
            .collect();
        assert_eq!(rows.len(), 1, "{out}");
        let cells: Vec<&str> = rows[0].split('|').collect();
        assert_eq!(cells[0], machine);
        assert_eq!(cells[1], expected.status.symbol());
        assert_eq!(cells[2].parse::<f64>().unwrap(), expected.health_score);
        assert_eq!(cells[3].parse::<i64>().unwrap(), expected.cycles);
    }

    // Session statements: transactions, SET/SHOW, the time zone.
    let out = psql_ok(
        &server,
        &[
            "BEGIN",
            "SELECT count(*) AS n FROM twin_state",
            "COMMIT",
            "SET application_name = 'psql-test'",
            "SHOW application_name",
            "SHOW timezone",
            "SHOW transaction_read_only",
        ],
    );
    let machines = payloads
        .iter()
        .filter_map(|p| match p {
            Payload::TwinState(s) => Some(s.machine_id.as_str()),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&machines.to_string().as_str()), "{out}");
    assert!(lines.contains(&"psql-test"), "{out}");
    assert!(lines.contains(&"UTC"), "{out}");
    assert!(lines.contains(&"on"), "{out}");
}

#[test]
fn psql_writes_are_refused_with_25006_and_the_connection_survives() {
    let engine = engine(&payloads(), Duration::from_secs(30));
    let server = serve(&engine, false);
    for (sql, named) in [
        ("INSERT INTO twin_state (machine_id) VALUES ('x')", "INSERT"),
        ("CREATE TABLE t (a INT)", "CREATE TABLE"),
        ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
        ("DROP TABLE twin_state", "DROP TABLE"),
        ("DELETE FROM twin_state", "DELETE"),
        ("UPDATE twin_state SET health_score = 0", "UPDATE"),
        ("COPY twin_state TO '/tmp/twinline-pg-copy.csv'", "COPY"),
        ("SELECT 1 AS a INTO copied", "SELECT ... INTO"),
        (
            "SET datafusion.execution.batch_size = 1",
            "datafusion.execution.batch_size",
        ),
        ("PREPARE p AS SELECT 1", "PREPARE"),
    ] {
        let out = psql(&server, &[sql], &["-v", "ON_ERROR_STOP=1"], None);
        assert_ne!(out.code, Some(0), "{sql} was not refused: {}", out.stdout);
        assert!(
            out.stderr.contains("ERROR:  25006:") && out.stderr.contains(named),
            "{sql}: expected SQLSTATE 25006 naming {named}, got: {}",
            out.stderr
        );
    }
    // The same connection answers after a refusal, and nothing was created.
    let out = psql(
        &server,
        &[
            "CREATE TABLE t (a INT)",
            "SELECT 42 AS answer",
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
        ],
        &[],
        None,
    );
    assert!(out.stderr.contains("25006"), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"42"), "{}", out.stdout);
    assert!(
        lines.contains(&"9"),
        "still exactly the nine views: {}",
        out.stdout
    );
    assert!(!std::path::Path::new("/tmp/twinline-pg-copy.csv").exists());
}

/// The SQLSTATE of the server's answer to a cleartext-password login with `password`, read off
/// the wire (psql and libpq print the message, not the code, of a failed login).
fn login_sqlstate(server: &PgServer, password: &str) -> Option<String> {
    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }
    fn read_message(s: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).expect("a message");
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).expect("its body");
        (head[0], body)
    }
    let mut s = TcpStream::connect(server.local_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut startup = 196_608i32.to_be_bytes().to_vec(); // protocol 3.0
    for kv in ["user", "grafana", "database", "twinline"] {
        startup.extend_from_slice(kv.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut packet = ((startup.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&startup);
    s.write_all(&packet).unwrap();
    let (tag, body) = read_message(&mut s);
    assert_eq!(
        (tag, &body[..]),
        (b'R', &3i32.to_be_bytes()[..]),
        "cleartext password asked"
    );
    let mut pw = password.as_bytes().to_vec();
    pw.push(0);
    s.write_all(&message(b'p', &pw)).unwrap();
    loop {
        let (tag, body) = read_message(&mut s);
        match tag {
            b'E' => {
                // Fields: a type byte, a NUL-terminated string; 'C' is the SQLSTATE.
                return body
                    .split(|b| *b == 0)
                    .find(|f| f.first() == Some(&b'C'))
                    .map(|f| String::from_utf8_lossy(&f[1..]).into_owned());
            }
            b'Z' => return None, // ReadyForQuery: logged in
            _ => continue,
        }
    }
}

#[test]
fn token_auth_asks_for_a_password_and_accepts_only_tokens() {
    let engine = engine(&payloads(), Duration::from_secs(30));
    let server = serve(&engine, true);

    let wrong = psql(&server, &["SELECT 1"], &[], Some("not-a-token"));
    assert_eq!(
        wrong.code,
        Some(2),
        "a wrong password must fail the login: {}",
        wrong.stdout
    );
    assert!(
        wrong
            .stderr
            .to_ascii_lowercase()
            .contains("password authentication failed"),
        "{}",
        wrong.stderr
    );
    assert_eq!(
        login_sqlstate(&server, "not-a-token").as_deref(),
        Some("28P01")
    );
    assert_eq!(
        login_sqlstate(&server, "read-toke").as_deref(),
        Some("28P01")
    );

    let none = psql(&server, &["SELECT 1"], &[], None);
    assert_eq!(none.code, Some(2), "no password, no login: {}", none.stdout);

    // Every role may read; the user name is free-form.
    for token in ["read-token", "write-token", "admin-token"] {
        let out = psql(&server, &["SELECT 1 AS one"], &[], Some(token));
        assert_eq!(out.code, Some(0), "{token}: {}", out.stderr);
        assert!(out.stdout.lines().any(|l| l == "1"), "{}", out.stdout);
        assert_eq!(login_sqlstate(&server, token), None);
    }

    // The same through psycopg.
    let port = server.local_addr().port().to_string();
    let refused = py_client(&["login".into(), port.clone(), "nope".into()]);
    assert!(
        refused["error"].as_str().is_some_and(|e| e
            .to_ascii_lowercase()
            .contains("password authentication failed")),
        "{refused}"
    );
    let accepted = py_client(&["login".into(), port, "read-token".into()]);
    assert_eq!(accepted["select_1"], 1, "{accepted}");
}

// --- psycopg ---------------------------------------------------------------------------------

#[test]
fn psycopg_reads_typed_values_and_grafana_queries() {
    let payloads = payloads();
    let engine = engine(&payloads, Duration::from_secs(30));
    let server = serve(&engine, false);
    // Both bounds fall on readings: BETWEEN includes them.
    let (from, to) = (T0 + 103_000, T0 + 432_000);
    let report = py_client(&[
        "reads".into(),
        server.local_addr().port().to_string(),
        MACHINE.into(),
        SensorKind::Temperature.symbol().into(),
        rfc3339(from),
        rfc3339(to),
    ]);

    // Grafana's connection test and start-up queries.
    assert_eq!(ok(&report, "select_1"), 1);
    assert!(
        ok(&report, "version")
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL 16"),
        "{report}"
    );
    assert_eq!(ok(&report, "grafana_version"), 1600);
    assert_eq!(ok(&report, "timescaledb"), &serde_json::json!([]));
    assert_eq!(ok(&report, "show_timezone"), "UTC");
    assert_eq!(ok(&report, "set_timezone"), "SET");
    assert_eq!(ok(&report, "set_encoding"), "SET");
    assert_eq!(ok(&report, "show_read_only"), "on");

    // The point lookup, typed.
    let expected = last_twin(&payloads, MACHINE);
    let lookup = ok(&report, "lookup").as_array().unwrap();
    assert_eq!(lookup.len(), 1, "{report}");
    let row = &lookup[0];
    assert_eq!(row["machine_id"], MACHINE);
    assert_eq!(row["status"], expected.status.symbol());
    assert_eq!(row["health_score"].as_f64(), Some(expected.health_score));
    assert_eq!(row["cycles"].as_i64(), Some(expected.cycles));
    assert_eq!(row["event_time"], rfc3339_offset(expected.event_time));
    assert_eq!(row["event_time_is_aware"], true);
    assert_eq!(
        row["types"],
        serde_json::json!(["str", "str", "float", "int", "datetime", "float", "NoneType"])
    );
    assert_eq!(
        ok(&report, "lookup_prepared"),
        &serde_json::json!([1, 1, 1, 1, 1, 1])
    );
    let binary = ok(&report, "binary");
    assert_eq!(
        binary,
        &serde_json::json!([[
            MACHINE,
            expected.health_score,
            expected.cycles,
            rfc3339_offset(expected.event_time)
        ]])
    );

    // Grafana's time series, three ways, against averages computed here.
    let expected = minute_averages(&payloads, from, to);
    assert!(
        expected.len() >= 5,
        "the window spans several minutes: {expected:?}"
    );
    let as_pairs = |probe: &str, instant: &dyn Fn(&Value) -> i64| -> Vec<(i64, f64)> {
        ok(&report, probe)
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (instant(&p[0]), p[1].as_f64().expect("an average")))
            .collect()
    };
    let from_iso = |v: &Value| {
        DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
            .expect("RFC 3339")
            .timestamp_millis()
    };
    let from_epoch = |v: &Value| (v.as_f64().expect("epoch seconds") * 1000.0) as i64;
    for (probe, got) in [
        ("date_bin", as_pairs("date_bin", &from_iso)),
        ("date_bin_params", as_pairs("date_bin_params", &from_iso)),
        ("time_group", as_pairs("time_group", &from_epoch)),
    ] {
        assert_eq!(
            got.len(),
            expected.len(),
            "{probe}: {got:?} vs {expected:?}"
        );
        for ((t, v), (et, ev)) in got.iter().zip(&expected) {
            assert_eq!(t, et, "{probe}: bucket start");
            assert!((v - ev).abs() < 1e-9, "{probe}: {v} vs {ev} at {t}");
        }
    }

    // Grafana's catalog queries: tables (unqualified: `public` is the search path), columns of
    // a table named either way, schemas.
    let tables: Vec<&str> = ok(&report, "grafana_tables")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for view in VIEWS {
        assert!(tables.contains(&view), "{view} not in {tables:?}");
    }
    let in_schema: Vec<&str> = ok(&report, "grafana_tables_in_schema")
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(in_schema, VIEWS.to_vec());
    let sensor_columns = serde_json::json!([
        ["machine_id", "text"],
        ["sensor", "text"],
        ["value", "double precision"],
        ["unit", "text"],
        ["event_time", "timestamp with time zone"],
        ["partition", "integer"],
        ["\"offset\"", "bigint"]
    ]);
    assert_eq!(ok(&report, "grafana_columns"), &sensor_columns);
    assert_eq!(ok(&report, "grafana_columns_qualified"), &sensor_columns);
    assert!(
        ok(&report, "grafana_schemas")
            .as_array()
            .unwrap()
            .contains(&Value::from("public")),
        "{report}"
    );

    // Writes are refused in the extended protocol too; errors carry their SQLSTATE; the
    // connection keeps answering.
    for probe in ["insert", "select_into", "create", "set_datafusion"] {
        assert_eq!(
            sqlstate(&report, probe),
            "25006",
            "{probe}: {}",
            report[probe]
        );
    }
    assert!(report["insert"]["error"]
        .as_str()
        .unwrap()
        .contains("INSERT"));
    assert_eq!(ok(&report, "after_refusals"), 2);
    assert_eq!(sqlstate(&report, "unknown_table"), "42P01", "{report}");
    assert_eq!(sqlstate(&report, "syntax_error"), "42601", "{report}");
}

/// `ms` as psycopg prints an aware UTC datetime (`isoformat()`).
fn rfc3339_offset(ms: i64) -> String {
    let t = DateTime::from_timestamp_millis(ms).expect("instant in range");
    let s = t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    // isoformat() omits a zero fraction.
    let s = s.strip_suffix(".000000").map(str::to_string).unwrap_or(s);
    format!("{s}+00:00")
}

#[test]
fn statement_time_limit_and_cancel() {
    let payloads = payloads();
    let short = engine(&payloads, Duration::from_millis(1_500));
    let long = engine(&payloads, Duration::from_secs(60));
    let short_server = serve(&short, false);
    let long_server = serve(&long, false);
    let report = py_client(&[
        "limits".into(),
        short_server.local_addr().port().to_string(),
        long_server.local_addr().port().to_string(),
    ]);
    let elapsed = |probe: &str| report[probe]["elapsed"].as_f64().unwrap();
    // The engine's limit, with no client limit and with a larger one (capped).
    for probe in ["engine_limit", "capped_limit"] {
        assert_eq!(sqlstate(&report, probe), "57014", "{probe}: {report}");
        assert!(
            report[probe]["error"]
                .as_str()
                .unwrap()
                .contains("statement timeout"),
            "{report}"
        );
        assert!(
            (1.4..20.0).contains(&elapsed(probe)),
            "{probe} took {} s",
            elapsed(probe)
        );
    }
    // A smaller client limit.
    assert_eq!(sqlstate(&report, "client_limit"), "57014", "{report}");
    assert!(elapsed("client_limit") < 20.0, "{report}");
    // A cancel request.
    assert_eq!(sqlstate(&report, "cancelled"), "57014", "{report}");
    assert!(
        report["cancelled"]["error"]
            .as_str()
            .unwrap()
            .contains("user request"),
        "{report}"
    );
    assert!(elapsed("cancelled") < 20.0, "{report}");
    // The connection answers after each.
    for probe in [
        "after_engine_limit",
        "after_capped_limit",
        "after_client_limit",
        "after_cancel",
    ] {
        assert_eq!(ok(&report, probe), 1, "{probe}");
    }
}

#[test]
fn dropping_the_server_stops_accepting() {
    let engine = engine(&[], Duration::from_secs(30));
    let server = serve(&engine, false);
    let addr = server.local_addr();
    assert_eq!(
        psql_ok(&server, &["SELECT 1 AS one"]).lines().nth(1),
        Some("1")
    );
    server.shutdown();
    // The accept loop ends on the query runtime; give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "{addr} still accepts");
        std::thread::sleep(Duration::from_millis(20));
    }
}
