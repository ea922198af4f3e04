//! The read API's figures for `twinline bench`: `GET /api/v1/digital-twin/state` under 200
//! concurrent connections (measured with `wrk`, Debian's HTTP load tool) and WebSocket fan-out
//! (how many subscribers receive the 2 s pushes with p99 lag under 100 ms).
//!
//! Both run against a live plant: the simulator, paced at `speed` plant-seconds per wall second,
//! feeds the pipeline, so the views change while the load runs (and the pipeline's work competes
//! with the API's for the same cores, as it would in a plant).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::config::Config;
use crate::embedded::{EmbeddedPipeline, SimOptions, StartOptions};

/// What the HTTP load run measured.
pub struct HttpFigures {
    pub connections: usize,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub non_2xx: u64,
    pub errors: String,
}

/// One fan-out step.
pub struct WsStep {
    pub subscribers: usize,
    /// Subscribers that connected and got the greeting.
    pub connected: usize,
    pub pushes: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Subscribers dropped by the server as too slow during the step.
    pub dropped: u64,
    /// Subscribers that saw fewer pushes than the window allows.
    pub starved: usize,
}

impl WsStep {
    pub fn holds(&self) -> bool {
        self.connected == self.subscribers
            && self.dropped == 0
            && self.starved == 0
            && self.p99_ms < 100.0
    }
}

pub struct ApiFigures {
    pub machines: usize,
    pub speed: f64,
    pub http: Result<HttpFigures>,
    pub ws: Vec<WsStep>,
}

pub struct ApiBenchOptions {
    pub machines: usize,
    pub http_secs: u64,
    pub connections: usize,
    pub ws_steps: Vec<usize>,
    /// Pushes each subscriber should receive per step.
    pub ws_pushes: usize,
    /// Plant time per wall second of the live plant behind the API. Twin states change a few
    /// times per machine-hour, so a plant paced at 1.0 would leave most 2 s ticks with nothing
    /// to push.
    pub speed: f64,
}

/// Starts a live plant with the API on an ephemeral port and measures both figures.
pub fn measure(cfg: &Config, dir: &Path, opts: &ApiBenchOptions) -> Result<ApiFigures> {
    raise_fd_limit();
    let mut sim = cfg.simulator.clone();
    sim.machines = opts.machines;
    sim.duration_ms = 0;
    let pipeline = EmbeddedPipeline::start(
        cfg,
        dir,
        StartOptions {
            simulate: Some(SimOptions {
                config: sim,
                realtime: true,
                speed: opts.speed,
                ingest_batch: None,
            }),
            until_caught_up: false,
            factory: None,
            views: true,
            history: true,
        },
    )?;
    let api_cfg = super::api_config(cfg);
    let interval = api_cfg.ws_push_interval;
    let state =
        twinline_queries::api::ApiState::new(pipeline.views.clone(), pipeline.backend(), api_cfg)?;
    // The server gets the same two workers as `twinline run`.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("api")
        .enable_all()
        .build()?;
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let app = twinline_queries::api::app(state.clone());
    server_rt.spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // Wait until every machine is in the view.
    let deadline = Instant::now() + Duration::from_secs(30);
    while pipeline.views.factory_state().machines.len() < opts.machines {
        if Instant::now() > deadline {
            return Err(anyhow!("the live plant did not fill the views within 30 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let http = wrk(addr, opts.connections, opts.http_secs);

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ws-bench")
        .enable_all()
        .build()?;
    let mut ws = Vec::new();
    for &n in &opts.ws_steps {
        let before = state.metrics.ws_dropped();
        let mut step = client_rt.block_on(fan_out(addr, n, interval, opts.ws_pushes))?;
        // Let the server notice the closed sockets before the next step.
        std::thread::sleep(Duration::from_millis(500));
        step.dropped = state.metrics.ws_dropped() - before;
        eprintln!(
            "ws fan-out: {n} subscribers, p99 {:.1} ms, {} dropped, {} starved",
            step.p99_ms, step.dropped, step.starved
        );
        let held = step.holds();
        ws.push(step);
        if !held {
            break;
        }
    }
    drop(client_rt);
    drop(server_rt);
    pipeline.shutdown()?;
    Ok(ApiFigures {
        machines: opts.machines,
        speed: opts.speed,
        http,
        ws,
    })
}

fn wrk(addr: SocketAddr, connections: usize, secs: u64) -> Result<HttpFigures> {
    let url = format!("http://{addr}/api/v1/digital-twin/state");
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "--timeout",
            "10s",
            &url,
        ])
        .output()
        .map_err(|e| {
            anyhow!(
                "cannot run `wrk` ({e}); install it with `apt-get install wrk` or scripts/bench.sh"
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(anyhow!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text, connections)
}

/// Reads the figures out of `wrk --latency` output.
pub fn parse_wrk(text: &str, connections: usize) -> Result<HttpFigures> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut non_2xx = 0;
    let mut errors = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = t.strip_prefix("50%") {
            p50 = parse_wrk_duration(v.trim());
        } else if let Some(v) = t.strip_prefix("99%") {
            p99 = parse_wrk_duration(v.trim());
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = v.trim().parse().unwrap_or(0);
        } else if t.starts_with("Socket errors:") {
            errors = t.to_string();
        }
    }
    Ok(HttpFigures {
        connections,
        requests_per_sec: rps.ok_or_else(|| anyhow!("no Requests/sec in wrk output: {text}"))?,
        p50_ms: p50.ok_or_else(|| anyhow!("no 50% line in wrk output: {text}"))?,
        p99_ms: p99.ok_or_else(|| anyhow!("no 99% line in wrk output: {text}"))?,
        non_2xx,
        errors,
    })
}

/// `wrk` prints durations as `812.00us`, `3.41ms`, `1.20s`, `2.00m`.
fn parse_wrk_duration(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.trim().parse().ok()?;
    let ms = match unit.trim() {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    };
    Some(ms)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `sent_at_ms` of a push, read from its fixed prefix without parsing the document.
fn sent_at(text: &str) -> Option<i64> {
    let rest = text.strip_prefix("{\"type\":\"twin_state\",\"sent_at_ms\":")?;
    let end = rest.find(',')?;
    rest[..end].parse().ok()
}

/// Connects `n` subscribers, lets each receive `pushes` pushes after its greeting, and records
/// the lag of every push: receive wall time minus the server's `sent_at_ms`.
async fn fan_out(addr: SocketAddr, n: usize, interval: Duration, pushes: usize) -> Result<WsStep> {
    let url = format!("ws://{addr}/api/v1/ws/stream");
    let lags = Arc::new(Mutex::new(Vec::<i64>::with_capacity(n * pushes)));
    let counts = Arc::new(Mutex::new(Vec::<usize>::with_capacity(n)));
    // Everyone connects first; the measuring window opens once all are in.
    let connect_started = Instant::now();
    let clients: Vec<_> = futures::stream::iter(0..n)
        .map(|_| {
            let url = url.clone();
            async move { tokio_tungstenite::connect_async(url).await.ok() }
        })
        .buffer_unordered(128)
        .collect()
        .await;
    let clients: Vec<_> = clients.into_iter().flatten().collect();
    let connected = clients.len();
    eprintln!(
        "ws fan-out: {connected}/{n} connected in {:.1} s",
        connect_started.elapsed().as_secs_f64()
    );
    let window = interval * (pushes as u32) + interval / 2;
    let opened = Instant::now();
    let opened_ms = now_ms();
    let mut tasks = Vec::with_capacity(connected);
    for (mut ws, _) in clients {
        let lags = lags.clone();
        let counts = counts.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(pushes + 2);
            let end = tokio::time::Instant::from_std(opened + window);
            while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(end, ws.next()).await {
                if let Message::Text(t) = msg {
                    if let Some(sent) = sent_at(t.as_str()) {
                        // Greetings and pushes rendered while others were still connecting
                        // sat unread in socket buffers: only pushes rendered inside the window
                        // count.
                        if sent >= opened_ms {
                            mine.push(now_ms() - sent);
                        }
                    }
                }
            }
            let _ = ws.close(None).await;
            counts.lock().push(mine.len());
            lags.lock().extend(mine);
        }));
    }
    for t in tasks {
        t.await.context("subscriber task")?;
    }
    let mut lags = std::mem::take(&mut *lags.lock());
    lags.sort_unstable();
    let q = |p: f64| {
        lags.get(((lags.len() as f64 - 1.0) * p).round() as usize)
            .map(|&v| v as f64)
            .unwrap_or(f64::NAN)
    };
    // A subscriber in the window gets `pushes` pushes, give or take one at the window's edges.
    let starved = counts.lock().iter().filter(|&&c| c + 1 < pushes).count();
    Ok(WsStep {
        subscribers: n,
        connected,
        pushes: lags.len(),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: lags.last().map(|&v| v as f64).unwrap_or(f64::NAN),
        dropped: 0,
        starved,
    })
}

/// Subscribers need two descriptors each here (client and server side in one process).
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_parsed() {
        let out = "Running 10s test @ http://127.0.0.1:1/api/v1/digital-twin/state
  2 threads and 200 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.20ms  40.00ms   90.00%
  Latency Distribution
     50%  812.00us
     75%    3.00ms
     90%    4.00ms
     99%    1.20s
  123456 requests in 10.00s, 1.00GB read
  Non-2xx or 3xx responses: 7
Requests/sec:  12345.67
Transfer/sec:    100.00MB
";
        let f = parse_wrk(out, 200).unwrap();
        assert_eq!(f.requests_per_sec, 12345.67);
        assert!((f.p50_ms - 0.812).abs() < 1e-9);
        assert_eq!(f.p99_ms, 1200.0);
        assert_eq!(f.non_2xx, 7);
        assert!(parse_wrk("garbage", 200).is_err());
    }

    #[test]
    fn sent_at_is_read_from_the_prefix() {
        assert_eq!(
            sent_at(r#"{"type":"twin_state","sent_at_ms":1700000000123,"data":{}}"#),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            sent_at(r#"{"type":"dashboard_stats","sent_at_ms":1,"data":{}}"#),
            None
        );
    }
}
