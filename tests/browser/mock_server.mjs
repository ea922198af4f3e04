// Stand-in for `twinline run --simulate` while the real read API is being
// written: serves queries/web/dist plus fake JSON that follows the API
// contract, a WebSocket stream, and the machine-event ingest endpoint.
// Usage: node mock_server.mjs [--port 8080] [--machines 24] [--no-optional]
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const HERE = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_DIST = resolve(HERE, '../../queries/web/dist');
const STATUSES = ['IDLE', 'RUNNING', 'WARNING', 'ERROR', 'MAINTENANCE', 'OFFLINE'];
const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json', '.ico': 'image/x-icon' };

function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Plant {
  constructor(n, seed = 1) {
    this.r = prng(seed);
    this.now = Date.now();
    this.history = [];
    this.eventSeq = 0;
    this.machines = Array.from({ length: n }, (_, i) => ({
      machine_id: `M-${String(i + 1).padStart(3, '0')}`,
      status: i % 11 === 3 ? 'IDLE' : 'RUNNING',
      health_score: 0.7 + this.r() * 0.3,
      cycles: Math.floor(this.r() * 200),
      defects: 0,
      parts_inspected: 0,
      defect_rate: 0,
      temperature: 50 + this.r() * 20,
      vibration: this.r() * 3,
      pressure: 2 + this.r() * 2,
      speed: 1000 + this.r() * 200,
      last_seen: this.now,
      updated_at: this.now,
      reason: null,
      faulted: false,
    }));
    for (const m of this.machines) {
      m.parts_inspected = m.cycles;
      m.defects = Math.floor(m.cycles * 0.02);
      m.defect_rate = m.cycles ? m.defects / m.cycles : 0;
      this.record(m);
    }
  }
  record(m) {
    this.history.push({ event_id: `ev-${++this.eventSeq}`, machine_id: m.machine_id, event_time: m.updated_at, status: m.status, health_score: m.health_score, cycles: m.cycles, defects: m.defects, defect_rate: m.defect_rate, reason: m.reason });
    if (this.history.length > 20000) this.history.splice(0, 5000);
  }
  tick() {
    this.now = Math.max(this.now + 1000, Date.now());
    for (const m of this.machines) {
      if (m.faulted) continue;
      if (this.r() < 0.02) {
        m.status = ['RUNNING', 'RUNNING', 'IDLE', 'WARNING', 'MAINTENANCE'][Math.floor(this.r() * 5)];
        m.reason = m.status === 'WARNING' ? 'vibration above threshold' : null;
      }
      if (m.status === 'RUNNING' || m.status === 'WARNING') {
        const c = 1 + Math.floor(this.r() * 4);
        m.cycles += c;
        m.parts_inspected += c;
        if (this.r() < 0.15) m.defects += 1;
        m.defect_rate = m.parts_inspected ? m.defects / m.parts_inspected : 0;
        m.temperature += (this.r() - 0.5) * 2;
        m.health_score = Math.max(0.05, Math.min(1, m.health_score + (this.r() - 0.55) * 0.02));
      }
      m.last_seen = this.now;
      m.updated_at = this.now;
      this.record(m);
    }
  }
  fault(id, t, code) {
    const m = this.machines.find((x) => x.machine_id === id);
    if (!m) return false;
    m.faulted = true;
    m.status = 'ERROR';
    m.reason = `fault ${code ?? ''}`.trim();
    m.health_score = Math.min(m.health_score, 0.3);
    m.updated_at = Math.max(t ?? this.now, m.updated_at);
    m.last_seen = m.updated_at;
    this.record(m);
    return true;
  }
  publicMachine(m) {
    const { faulted, ...rest } = m;
    void faulted;
    return { ...rest, last_seen: new Date(m.last_seen).toISOString(), updated_at: new Date(m.updated_at).toISOString() };
  }
  counts() {
    const c = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (const m of this.machines) c[m.status]++;
    return c;
  }
  state() {
    const ms = this.machines;
    const tc = ms.reduce((a, m) => a + m.cycles, 0);
    const td = ms.reduce((a, m) => a + m.defects, 0);
    const pi = ms.reduce((a, m) => a + m.parts_inspected, 0);
    return {
      factory_id: 'mock-plant',
      timestamp: new Date(this.now).toISOString(),
      machines: ms.map((m) => this.publicMachine(m)),
      statistics: { total_machines: ms.length, status_counts: this.counts(), average_health: ms.reduce((a, m) => a + m.health_score, 0) / ms.length, total_cycles: tc, total_defects: td, parts_inspected: pi, defect_rate: pi ? td / pi : 0 },
    };
  }
  stats() {
    const s = this.state().statistics;
    const maint = this.machines.filter((m) => m.status === 'MAINTENANCE' || m.status === 'ERROR').length;
    return {
      timestamp: this.now, // ms on purpose: the UI must accept both time forms
      overall_health: s.average_health,
      total_machines: s.total_machines,
      status_breakdown: s.status_counts,
      total_cycles: s.total_cycles,
      total_defects: s.total_defects,
      parts_inspected: s.parts_inspected,
      defect_rate: s.defect_rate,
      maintenance_alerts: { critical: this.machines.filter((m) => m.status === 'ERROR').length, high: maint, medium: this.machines.filter((m) => m.status === 'WARNING').length, low: 2, open_requests: maint },
    };
  }
  predictions() {
    return {
      predictions: this.machines
        .filter((m) => m.health_score < 0.85)
        .map((m) => {
          const p = Math.min(0.99, 1 - m.health_score);
          return { machine_id: m.machine_id, failure_probability: p, time_to_failure_hours: 200 * (1 - p), urgency: p > 0.6 ? 'critical' : p > 0.4 ? 'high' : p > 0.2 ? 'medium' : 'low', recommended_action: p > 0.4 ? 'schedule maintenance' : 'monitor', event_time: new Date(this.now).toISOString() };
        }),
    };
  }
  schedule() {
    const ops = [];
    const base = this.now;
    const r = prng(99);
    for (let j = 0; j < 8; j++) {
      let t = base + Math.floor(r() * 60_000);
      for (let k = 0; k < 3; k++) {
        const m = this.machines[Math.floor(r() * Math.min(8, this.machines.length))];
        const d = 30_000 + Math.floor(r() * 120_000);
        // Mix ms numbers and RFC3339 strings: the UI accepts both.
        ops.push({ job_id: `J${j + 1}`, operation_index: k, machine_id: m.machine_id, start: k % 2 ? new Date(t).toISOString() : t, end: t + d });
        t += d + 5_000;
      }
    }
    const end = Math.max(...ops.map((o) => o.end));
    return { plan_version: 3, makespan_ms: end - base, operations: ops };
  }
  query(sql) {
    const s = sql.trim();
    const lower = s.toLowerCase();
    const t0 = performance.now();
    if (!/^(select|with)\b/.test(lower)) return [400, { error: 'only read-only SELECT queries are allowed', detail: `statement starts with '${s.split(/\s+/)[0] ?? ''}'`, type: 'forbidden' }];
    const limit = Number(/limit\s+(\d+)/i.exec(s)?.[1] ?? 1000);
    const idMatch = /machine_id\s*=\s*'((?:[^']|'')*)'/i.exec(s);
    const idFilter = idMatch ? idMatch[1].replace(/''/g, "'") : null;
    const from = /\bfrom\s+([a-z_][a-z0-9_]*)/i.exec(s)?.[1]?.toLowerCase();
    let columns;
    let rows;
    if (from === 'twin_state_history') {
      columns = [['machine_id', 'Utf8'], ['event_time', 'Timestamp(Millisecond, Some("UTC"))'], ['status', 'Utf8'], ['health_score', 'Float64'], ['cycles', 'Int64'], ['defects', 'Int64'], ['defect_rate', 'Float64'], ['reason', 'Utf8']];
      rows = this.history.filter((h) => !idFilter || h.machine_id === idFilter).slice().reverse().map((h) => ({ ...h, event_time: new Date(h.event_time).toISOString() }));
    } else if (from === 'twin_state') {
      columns = [['machine_id', 'Utf8'], ['status', 'Utf8'], ['health_score', 'Float64'], ['cycles', 'Int64'], ['defects', 'Int64']];
      rows = this.machines.map((m) => this.publicMachine(m)).sort((a, b) => a.health_score - b.health_score);
    } else if (from === 'sensor_readings') {
      columns = [['machine_id', 'Utf8'], ['sensor', 'Utf8'], ['mean', 'Float64'], ['n', 'Int64']];
      rows = this.machines.flatMap((m) => [{ machine_id: m.machine_id, sensor: 'temperature', mean: m.temperature, n: 10 }, { machine_id: m.machine_id, sensor: 'vibration', mean: m.vibration, n: 10 }]);
    } else if (from === 'defects' || from === 'dead_letters') {
      columns = [['machine_id', 'Utf8'], ['event_time', 'Timestamp(Millisecond, Some("UTC"))']];
      rows = [];
    } else {
      return [400, { error: 'query planning failed', detail: `Error during planning: table 'twinline.public.${from ?? '?'}' not found`, type: 'plan' }];
    }
    const out = rows.slice(0, limit).map((r) => Object.fromEntries(columns.map(([c]) => [c, r[c] ?? null])));
    return [200, { columns: columns.map(([name, type]) => ({ name, type })), rows: out, row_count: out.length, truncated: rows.length > limit, elapsed_ms: Math.round((performance.now() - t0) * 100) / 100 }];
  }
}

function readBody(req, max = 1 << 20) {
  return new Promise((res, rej) => {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n > max) {
        rej(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => res(Buffer.concat(chunks).toString('utf8')));
    req.on('error', rej);
  });
}

/**
 * Start the mock. Options: port (0 = any), machines, distDir, token,
 * optional (serve predictions/schedule; false = 404 like the real API today), tickMs,
 * page3d (which dist page answers /3d: '3d.html', or 'index.html' like an SPA fallback).
 */
export async function startMockServer({ port = 0, host = '127.0.0.1', machines = 24, distDir = DEFAULT_DIST, token = 'test-token', optional = true, tickMs = 1000, page3d = '3d.html' } = {}) {
  const plant = new Plant(machines);
  const json = (res, code, body) => {
    res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  const serveFile = async (res, rel) => {
    const p = normalize(join(distDir, rel));
    if (!p.startsWith(distDir)) return json(res, 403, { error: 'forbidden' });
    try {
      const st = await stat(p);
      if (!st.isFile()) throw new Error('not a file');
      res.writeHead(200, { 'Content-Type': MIME[extname(p)] ?? 'application/octet-stream', 'Cache-Control': rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache' });
      res.end(await readFile(p));
    } catch {
      json(res, 404, { error: 'not found', detail: rel, type: 'not_found' });
    }
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    try {
      if (req.method === 'GET' && path === '/api/v1/digital-twin/state') return json(res, 200, plant.state());
      if (req.method === 'GET' && path === '/api/v1/dashboard/stats') return json(res, 200, plant.stats());
      if (req.method === 'GET' && path.startsWith('/api/v1/digital-twin/machines/')) {
        const id = decodeURIComponent(path.slice('/api/v1/digital-twin/machines/'.length));
        const m = plant.machines.find((x) => x.machine_id === id);
        if (!m) return json(res, 404, { error: 'machine not found', detail: id, type: 'not_found' });
        const history = plant.history.filter((h) => h.machine_id === id).slice(-50).map((h) => ({ event_id: h.event_id, event_time: new Date(h.event_time).toISOString(), status: h.status, health_score: h.health_score, cycles: h.cycles, defects: h.defects, reason: h.reason }));
        return json(res, 200, { ...plant.publicMachine(m), history });
      }
      if (req.method === 'GET' && path === '/api/v1/predictive/predictions') return optional ? json(res, 200, plant.predictions()) : json(res, 404, { error: 'not found', type: 'not_found' });
      if (req.method === 'GET' && path === '/api/v1/scheduling/schedule') return optional ? json(res, 200, plant.schedule()) : json(res, 404, { error: 'not found', type: 'not_found' });
      if (req.method === 'POST' && path === '/api/v1/query') {
        let body;
        try {
          body = JSON.parse(await readBody(req));
        } catch {
          return json(res, 400, { error: 'invalid JSON body', type: 'bad_request' });
        }
        if (typeof body?.sql !== 'string') return json(res, 400, { error: "missing 'sql'", type: 'bad_request' });
        const [code, out] = plant.query(body.sql);
        return json(res, code, out);
      }
      if (req.method === 'POST' && path === '/api/v1/ingest/machine-events') {
        if (req.headers.authorization !== `Bearer ${token}`) return json(res, 401, { error: 'unauthorized', type: 'auth' });
        const ev = JSON.parse(await readBody(req));
        if (ev.kind === 'FAULT' && !plant.fault(ev.machine_id, ev.event_time, ev.fault_code)) return json(res, 404, { error: 'unknown machine', type: 'not_found' });
        return json(res, 202, { accepted: 1 });
      }
      if (path.startsWith('/api/')) return json(res, 404, { error: 'not found', detail: path, type: 'not_found' });
      if (path === '/' || path === '/index.html') return serveFile(res, 'index.html');
      if (path === '/3d' || path === '/3d/') return serveFile(res, page3d);
      if (path.startsWith('/assets/')) return serveFile(res, path.slice(1));
      return json(res, 404, { error: 'not found', detail: path, type: 'not_found' });
    } catch (e) {
      return json(res, 500, { error: 'internal error', detail: String(e), type: 'internal' });
    }
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/api/v1/ws/stream') return socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ type: 'hello', version: 1, interval_ms: 2000 }));
      ws.send(JSON.stringify({ type: 'twin_state', data: plant.state() }));
      ws.send(JSON.stringify({ type: 'dashboard_stats', data: plant.stats() }));
    });
  });
  const ticker = setInterval(() => plant.tick(), tickMs);
  const pusher = setInterval(() => {
    const a = JSON.stringify({ type: 'twin_state', data: plant.state() });
    const b = JSON.stringify({ type: 'dashboard_stats', data: plant.stats() });
    for (const c of wss.clients) {
      if (c.readyState === 1) {
        c.send(a);
        c.send(b);
      }
    }
  }, 2000);

  await new Promise((r) => server.listen(port, host, r));
  const addr = server.address();
  return {
    url: `http://${host}:${addr.port}`,
    token,
    plant,
    /** Drop every live WebSocket (server side), to exercise client reconnects. */
    dropClients() {
      for (const c of wss.clients) c.terminate();
    },
    async close() {
      clearInterval(ticker);
      clearInterval(pusher);
      for (const c of wss.clients) c.terminate();
      wss.close();
      await new Promise((r) => server.close(r));
    },
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (k, d) => {
    const i = process.argv.indexOf(k);
    return i > 0 ? process.argv[i + 1] : d;
  };
  const m = await startMockServer({ port: Number(arg('--port', 8080)), machines: Number(arg('--machines', 24)), optional: !process.argv.includes('--no-optional'), token: process.env.TWINLINE_WRITE_TOKEN ?? 'test-token' });
  console.log(`twinline mock server on ${m.url} (write token: ${m.token})`);
}
