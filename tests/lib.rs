//! Helpers shared by the end-to-end scenarios: locating and driving the `twinline` binary,
//! comparing logs record by record.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use twinline_log::{EmbeddedLog, EventLog, ReadBatch};

/// The `twinline` binary built next to this test binary (`cargo build --bins` first).
pub fn twinline_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TWINLINE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/twinline
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("twinline");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p twinline --bins` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Run `twinline <args>` to completion; panics with its output on failure.
pub fn twinline(args: &[&str]) -> Output {
    twinline_env(args, &[])
}

/// [`twinline`] with extra environment variables (for example `TWINLINE_HISTORY__FLUSH_ROWS`).
pub fn twinline_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(twinline_bin())
        .args(args)
        .env("TWINLINE_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("spawning twinline");
    assert!(
        out.status.success(),
        "twinline {:?} failed: {}\nstdout: {}\nstderr: {}",
        args,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One record as stored, for byte-for-byte comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: u64,
    pub timestamp: i64,
    pub origin: u64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Every record of `topic` (all partitions), in partition then offset order.
pub fn dump_topic(data: &Path, topic: &str) -> Vec<(u32, StoredRecord)> {
    let log = EmbeddedLog::open_read_only(&data.join("log")).expect("open log");
    let mut out = Vec::new();
    let mut batch = ReadBatch::new();
    for p in 0..log.partitions(topic).expect("partitions") {
        let mut off = log.start_offset(topic, p).expect("start");
        let end = log.end_offset(topic, p).expect("end");
        while off < end {
            log.read(topic, p, off, 1 << 20, &mut batch).expect("read");
            if batch.is_empty() {
                break;
            }
            for r in batch.iter() {
                off = r.offset + 1;
                out.push((
                    p,
                    StoredRecord {
                        offset: r.offset,
                        timestamp: r.timestamp,
                        origin: r.origin,
                        key: r.key.to_vec(),
                        value: r.value.to_vec(),
                    },
                ));
            }
        }
    }
    out
}

pub const DERIVED: [&str; 6] = [
    "defects",
    "twin-state",
    "failure-predictions",
    "maintenance-requests",
    "schedule-changes",
    "dead-letters",
];

/// Assert two data directories hold byte-identical derived topics.
pub fn assert_same_derived(a: &Path, b: &Path) {
    for t in DERIVED {
        let (x, y) = (dump_topic(a, t), dump_topic(b, t));
        assert_eq!(
            x.len(),
            y.len(),
            "topic {t}: {} vs {} records",
            x.len(),
            y.len()
        );
        for (i, (r1, r2)) in x.iter().zip(&y).enumerate() {
            assert_eq!(r1, r2, "topic {t}: record {i} differs");
        }
    }
}

/// The repository root (this crate lives in `tests/`). Cargo's `CARGO_MANIFEST_DIR` at run time
/// comes first: it stays right when the binary was built from another checkout sharing the target
/// directory.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// ONNX Runtime's shared library: `ORT_DYLIB_PATH`, else the one in the project's `.venv`
/// (installed by `scripts/test.sh`). Panics with how to get it: the flows that need the models
/// are not skipped.
pub fn ort_library() -> PathBuf {
    twinline_models::session::ort_library_or_venv(&repo_root().join(".venv")).unwrap_or_else(|| {
            panic!("ONNX Runtime not found: set ORT_DYLIB_PATH or run scripts/test.sh (it installs the onnxruntime wheel into .venv)")
        })
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET http://<addr><path>` as JSON (HTTP/1.1, `Connection: close`); panics on a non-200.
pub fn http_get_json(addr: &str, path: &str) -> serde_json::Value {
    let (status, body) = http_request(addr, "GET", path, &[], &[]);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// A `twinline` server process: started with extra environment, ready once `/health/live`
/// answers; killed if dropped without [`Server::stop`].
pub struct Server {
    child: Option<std::process::Child>,
}

impl Server {
    pub fn start(args: &[&str], env: &[(&str, &str)], listen: &str) -> Server {
        Self::start_probe(args, env, listen, "/health/live")
    }

    /// [`Server::start`], ready once `GET <probe>` answers 200.
    pub fn start_probe(args: &[&str], env: &[(&str, &str)], listen: &str, probe: &str) -> Server {
        let child = Command::new(twinline_bin())
            .args(args)
            .env("TWINLINE_LOG", "warn")
            .envs(env.iter().copied())
            .spawn()
            .expect("spawning twinline");
        let mut server = Server { child: Some(child) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(listen).is_ok() {
                http_get_json(listen, probe);
                return server;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("twinline {args:?} exited before serving: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "twinline did not listen on {listen} within 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The process id (for `kill -9` scenarios).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Ctrl-C (SIGINT), then waits for the final checkpoint and a clean exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill -INT");
        assert!(status.success());
        let status = child.wait().expect("wait");
        assert!(status.success(), "twinline exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `POST /api/v1/query` with `sql`; asserts 200 and returns the rows.
pub fn sql_rows(addr: &str, sql: &str) -> Vec<serde_json::Value> {
    let body = serde_json::json!({ "sql": sql }).to_string();
    let (status, text) = http_request(
        addr,
        "POST",
        "/api/v1/query",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{sql}: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["rows"].as_array().cloned().unwrap_or_default()
}

/// One HTTP/1.1 request (`Connection: close`) with raw headers and body; returns the status and
/// the body (de-chunked). Does not judge the status.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before reading a large body; that is not an error.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// One part of a multipart body: `(name, filename, content type, bytes)`; `filename` is `None`
/// for a plain field.
pub type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body and its content type.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "twinline-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, ctype, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n")
                    .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes(),
            ),
        }
        if let Some(c) = ctype {
            body.extend_from_slice(format!("Content-Type: {c}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `twinline <args>` with the repository's models and ONNX Runtime (vision and predictive
/// processors loaded), unchecked: the caller judges the exit status.
pub fn twinline_with_models(args: &[&str]) -> Output {
    Command::new(twinline_bin())
        .args(args)
        .env("TWINLINE_MODELS__DIR", repo_root().join("models"))
        .env("ORT_DYLIB_PATH", ort_library())
        .env("TWINLINE_LOG", "warn")
        .output()
        .expect("spawning twinline")
}

/// The project's Python (the venv scripts/test.sh installs), or `TWINLINE_PYTHON`.
pub fn python() -> PathBuf {
    let py = std::env::var_os("TWINLINE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        py.exists(),
        "{} is missing: run scripts/test.sh (it installs the Python clients into .venv)",
        py.display()
    );
    py
}

/// Bootstrap servers of the real Apache Kafka broker the distributed-mode tests use:
/// `TWINLINE_KAFKA` when set (scripts/test.sh starts the servers and sets it), otherwise
/// `docker/local/up --only kafka` is run once (it fetches and starts Kafka, or only probes it if
/// it already runs) and its `TWINLINE_KAFKA=` line is used.
pub fn kafka() -> String {
    static KAFKA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KAFKA
        .get_or_init(|| local_server("kafka", "TWINLINE_KAFKA"))
        .clone()
}

static KAFKA_USE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held by a test while it uses the Kafka broker: tests run in parallel, and the broker-restart
/// test takes the broker away (it holds [`kafka_exclusive`]).
pub fn kafka_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    KAFKA_USE.read().unwrap_or_else(|e| e.into_inner())
}

/// Held by the test that restarts the broker: no other Kafka test runs meanwhile.
pub fn kafka_exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    KAFKA_USE.write().unwrap_or_else(|e| e.into_inner())
}

/// Contact point of the real Apache Cassandra the distributed-mode tests use: `TWINLINE_SCYLLA`
/// when set, otherwise `docker/local/up --only cassandra` is run once, as for [`kafka`].
pub fn cassandra() -> String {
    static CASSANDRA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CASSANDRA
        .get_or_init(|| local_server("cassandra", "TWINLINE_SCYLLA"))
        .clone()
}

fn local_server(name: &str, var: &str) -> String {
    if let Ok(v) = std::env::var(var) {
        if !v.is_empty() {
            return v;
        }
    }
    let out = Command::new(repo_root().join("docker/local/up"))
        .args(["--only", name])
        .output()
        .expect("running docker/local/up");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker/local/up --only {name} failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = format!("{var}=");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("docker/local/up printed no {var}"))
}

/// Deletes the Kafka topics under a test's topic prefix when dropped (the test passed or
/// panicked), so test runs on the long-lived local broker do not pile up partitions, which make
/// its restarts slow. Declare it before the servers of the test, so they stop first.
pub struct DeleteTopicsOnDrop {
    brokers: String,
    prefix: String,
}

impl DeleteTopicsOnDrop {
    pub fn new(brokers: &str, prefix: &str) -> Self {
        DeleteTopicsOnDrop {
            brokers: brokers.to_string(),
            prefix: prefix.to_string(),
        }
    }
}

impl Drop for DeleteTopicsOnDrop {
    fn drop(&mut self) {
        let mut cfg = twinline_kafka::KafkaConfig::new(self.brokers.as_str(), Vec::new());
        cfg.prefix = self.prefix.clone();
        cfg.timeout = std::time::Duration::from_secs(10);
        match twinline_kafka::KafkaLog::open(cfg).and_then(|l| l.delete_prefixed_topics()) {
            Ok(n) => eprintln!("deleted {n} topics under {}", self.prefix),
            Err(e) => eprintln!("could not delete the topics under {}: {e}", self.prefix),
        }
    }
}

/// A name no earlier test run used (topics in a Kafka that outlives test runs).
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A codec whose schemas come from the registry at `url`, as a distributed instance's do.
pub fn registry_codec(url: &str) -> twinline_schemas::Codec {
    let registry = twinline_registry::RemoteRegistry::new(url, std::time::Duration::from_secs(10))
        .expect("registry client");
    twinline_schemas::Codec::new(
        std::sync::Arc::new(registry) as std::sync::Arc<dyn twinline_schemas::SchemaRegistry>
    )
    .expect("codec")
}

/// A client of the API's WebSocket stream (`/api/v1/ws/stream`).
pub struct WsClient(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl WsClient {
    pub async fn connect(listen: &str) -> WsClient {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{listen}/api/v1/ws/stream"))
            .await
            .expect("websocket connects");
        WsClient(ws)
    }

    /// The next JSON message; `None` once `deadline` passes or the server closes the stream.
    pub async fn next_json(&mut self, deadline: tokio::time::Instant) -> Option<serde_json::Value> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match tokio::time::timeout_at(deadline, self.0.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(t.as_str()).expect("a JSON message"))
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("websocket error: {e}"),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next JSON message, or a panic naming what was awaited once `deadline` passes.
    pub async fn expect_json(
        &mut self,
        deadline: tokio::time::Instant,
        awaited: &str,
    ) -> serde_json::Value {
        match self.next_json(deadline).await {
            Some(v) => v,
            None => panic!("{awaited}: nothing pushed before the deadline"),
        }
    }
}
