//! The whole analyst path through the binary: a run writes its history, `twinline run
//! --pg-listen --flight-listen` serves it, and third-party clients (Debian's `psql`, Python's
//! ADBC Flight SQL driver) read the views, the Parquet history with a Grafana-style time filter,
//! and the point-in-time function, with the API's tokens as passwords.

use std::process::Command;

use twinline_tests::{free_port, twinline_env, Server};

fn psql(port: u16, password: &str, sql: &str) -> (bool, String, String) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "analyst",
            "-d",
            "twinline",
            "-w",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .output()
        .expect("psql is missing: scripts/test.sh installs postgresql-client");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn psql_and_flight_sql_read_views_history_and_the_past() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let config = tmp.path().join("twinline.toml");
    std::fs::write(
        &config,
        "[api]\nread_requires_token = true\ntokens = [{ token = \"reader-secret\", role = \"read\" }]\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let env = [("TWINLINE_HISTORY__FLUSH_ROWS", "5000")];
    twinline_env(
        &[
            "--config",
            c,
            "run",
            "--data",
            d,
            "--simulate",
            "--fast",
            "--machines",
            "4",
            "--duration",
            "2h",
            "--seed",
            "21",
            "--until-caught-up",
        ],
        &env,
    );
    let (http, pg, flight) = (free_port(), free_port(), free_port());
    let listen = format!("127.0.0.1:{http}");
    let server = Server::start(
        &[
            "--config",
            c,
            "run",
            "--data",
            d,
            "--listen",
            &listen,
            "--pg-listen",
            &format!("127.0.0.1:{pg}"),
            "--flight-listen",
            &format!("127.0.0.1:{flight}"),
        ],
        &env,
        &listen,
    );

    // psql: the views (once the restarted server has folded the log), the history, a
    // Grafana-style time-series query, the past.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (ok, out, err) = psql(pg, "reader-secret", "SELECT count(*) FROM twin_state");
        assert!(ok, "{err}");
        if out == "4" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "twin_state has {out} machines"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Wait until the views hold the whole log (the history was complete before the start).
    loop {
        let (_, hist, _) = psql(
            pg,
            "reader-secret",
            "SELECT count(*) FROM history.sensor_readings",
        );
        let (_, view, _) = psql(pg, "reader-secret", "SELECT count(*) FROM sensor_readings");
        if hist == view {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "views at {view} of {hist} readings"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (ok, hist, err) = psql(
        pg,
        "reader-secret",
        "SELECT count(*) FROM history.sensor_readings",
    );
    assert!(ok, "{err}");
    let (_, view, _) = psql(pg, "reader-secret", "SELECT count(*) FROM sensor_readings");
    assert_eq!(hist, view, "history and view disagree");
    assert!(hist.parse::<u64>().unwrap() > 1000);
    let grafana =
        "SELECT date_bin(INTERVAL '10 minutes', event_time) AS \"time\", avg(value) AS value \
                   FROM history.sensor_readings \
                   WHERE event_time BETWEEN '2026-01-01T00:30:00Z' AND '2026-01-01T01:29:59Z' \
                   AND sensor = 'TEMPERATURE' GROUP BY 1 ORDER BY 1";
    let (ok, out, err) = psql(pg, "reader-secret", grafana);
    assert!(ok, "{err}");
    let buckets: Vec<&str> = out.lines().collect();
    assert_eq!(buckets.len(), 6, "six 10-minute buckets in the hour: {out}");
    assert!(buckets[0].starts_with("2026-01-01 00:30:00"), "{out}");
    let (ok, out, err) = psql(
        pg,
        "reader-secret",
        "SELECT count(*) FROM twin_state_at('2026-01-01T01:00:00Z')",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "4");
    // The wrong password is refused; writes are refused.
    let (ok, _, err) = psql(pg, "wrong", "SELECT 1");
    assert!(!ok && err.to_lowercase().contains("password"), "{err}");
    let (ok, _, err) = psql(pg, "reader-secret", "CREATE TABLE t AS SELECT 1");
    assert!(!ok, "a write went through: {err}");

    // ADBC's Flight SQL driver: the same counts.
    let py = twinline_tests::python();
    let script = format!(
        "import adbc_driver_flightsql.dbapi as f\n\
         c = f.connect('grpc://127.0.0.1:{flight}', db_kwargs={{'adbc.flight.sql.authorization_header': 'Bearer reader-secret'}})\n\
         cur = c.cursor()\n\
         cur.execute('SELECT count(*) AS n FROM history.sensor_readings')\n\
         print(cur.fetch_arrow_table().column('n')[0].as_py())\n\
         cur.execute(\"SELECT count(*) AS n FROM twin_state_at('2026-01-01T01:00:00Z')\")\n\
         print(cur.fetch_arrow_table().column('n')[0].as_py())\n"
    );
    let out = Command::new(&py)
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines, vec![hist.clone(), "4".to_string()]);
    server.stop();
}
