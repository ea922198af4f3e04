//! The SQL engine: read-only refusals, limits, information_schema.

use std::sync::Arc;
use std::time::{Duration, Instant};

use twinline_queries::{QueryConfig, QueryEngine, QueryError, ViewConfig, Views};
use twinline_schemas::*;

use crate::common::*;

fn engine(config: QueryConfig) -> QueryEngine {
    let views = Arc::new(Views::new(ViewConfig::default()));
    apply_all(&views, &[twin("m-1", 1, MachineStatus::Running, 90.0, T0)]);
    QueryEngine::new(views, config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_everything_but_reads() {
    let e = engine(QueryConfig::default());
    for sql in [
        "CREATE TABLE t (a INT)",
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "INSERT INTO twin_state (machine_id) VALUES ('x')",
        "DELETE FROM twin_state",
        "UPDATE twin_state SET health_score = 0",
        "DROP TABLE twin_state",
        "COPY twin_state TO '/tmp/twinline-copy.csv'",
        "COPY (SELECT 1) TO '/tmp/twinline-copy.csv' STORED AS CSV",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
        "RESET datafusion.execution.batch_size",
        "EXPLAIN CREATE TABLE t (a INT)",
        "SELECT 1 AS a INTO t",
        "PREPARE p AS SELECT 1",
        "BEGIN",
    ] {
        match e.query(sql, None).await {
            Err(QueryError::Refused(msg)) => assert!(!msg.is_empty()),
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }
    // Two statements are not one read.
    assert!(matches!(
        e.query("SELECT 1; DROP TABLE twin_state", None).await,
        Err(QueryError::Invalid(_))
    ));
    // Nothing was created or dropped.
    let r = e
        .query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name", None)
        .await
        .unwrap();
    assert_eq!(r.row_count, 9, "exactly the nine views");
    assert!(!std::path::Path::new("/tmp/twinline-copy.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admits_reads_and_reports_invalid_sql() {
    let e = engine(QueryConfig::default());
    for sql in [
        "SELECT machine_id FROM twin_state",
        "WITH x AS (SELECT * FROM twin_state) SELECT count(*) FROM x",
        "EXPLAIN SELECT * FROM sensor_readings",
        "SHOW TABLES",
        "SHOW COLUMNS FROM twin_state",
        "DESCRIBE twin_state",
        "SHOW datafusion.execution.batch_size",
        "SELECT * FROM information_schema.columns WHERE table_name = 'twin_state'",
    ] {
        let r = e
            .query(sql, None)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
        assert!(r.row_count > 0, "{sql} returned no rows");
    }
    for sql in [
        "SELEC 1",
        "SELECT nope FROM twin_state",
        "SELECT * FROM no_such_table",
        "",
    ] {
        assert!(
            matches!(e.query(sql, None).await, Err(QueryError::Invalid(_))),
            "{sql}"
        );
    }
    let r = e
        .query("SELECT event_time FROM twin_state", None)
        .await
        .unwrap();
    assert_eq!(
        r.schema.field(0).data_type(),
        &arrow::datatypes::DataType::Timestamp(
            arrow::datatypes::TimeUnit::Millisecond,
            Some("UTC".into())
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_limit_truncates_and_flags() {
    let e = engine(QueryConfig {
        default_max_rows: 1_000,
        max_rows_cap: 5_000,
        ..QueryConfig::default()
    });
    let r = e
        .query("SELECT * FROM generate_series(1, 50000)", None)
        .await
        .unwrap();
    assert_eq!((r.row_count, r.truncated), (1_000, true));
    assert_eq!(r.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1_000);
    let r = e
        .query("SELECT * FROM generate_series(1, 50000)", Some(100_000))
        .await
        .unwrap();
    assert_eq!((r.row_count, r.truncated), (5_000, true), "capped");
    let r = e
        .query("SELECT * FROM generate_series(1, 100)", Some(100))
        .await
        .unwrap();
    assert_eq!(
        (r.row_count, r.truncated),
        (100, false),
        "exactly the limit is not truncated"
    );
    let r = e
        .query("SELECT * FROM generate_series(1, 10)", Some(0))
        .await
        .unwrap();
    assert_eq!((r.row_count, r.truncated), (0, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limit_cancels_long_queries() {
    let e = engine(QueryConfig {
        timeout: Duration::from_millis(500),
        ..QueryConfig::default()
    });
    let started = Instant::now();
    let r = e
        .query("SELECT max(a.value + b.value) FROM generate_series(1, 1000000) a CROSS JOIN generate_series(1, 1000000) b", None)
        .await;
    assert!(matches!(r, Err(QueryError::Timeout(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The engine is still usable afterwards.
    assert_eq!(e.query("SELECT 1", None).await.unwrap().row_count, 1);
}
