// Pure data shaping between the read API's JSON and what the views draw:
// time normalisation, trend accumulation, Gantt layout, floor layout, defect
// alerts. No DOM here so all of it is unit-tested under vitest.
import type {
  DashboardStats,
  Machine,
  MaintenanceAlerts,
  Prediction,
  Schedule,
  TimeLike,
  TwinState,
} from './types';

/**
 * Epoch milliseconds from an API time: RFC3339 / ISO strings (with or without
 * zone; zone-less is taken as UTC like DataFusion prints it), numeric strings,
 * or numbers. Numbers that can only be micro- or nanoseconds are scaled down.
 */
export function parseTime(t: TimeLike): number | null {
  if (t === null || t === undefined) return null;
  if (typeof t === 'number') return Number.isFinite(t) ? scaleEpoch(t) : null;
  const s = t.trim();
  if (s === '') return null;
  if (/^-?\d+(\.\d+)?$/.test(s)) return scaleEpoch(Number(s));
  let iso = s.replace(' ', 'T');
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(iso)) iso += 'Z';
  // JS Date only keeps milliseconds; trim longer fractions so parsing never fails.
  iso = iso.replace(/(\.\d{3})\d+/, '$1');
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

function scaleEpoch(n: number): number {
  const a = Math.abs(n);
  if (a >= 1e17) return Math.round(n / 1e6); // nanoseconds
  if (a >= 1e14) return Math.round(n / 1e3); // microseconds
  return n;
}

export function formatTime(t: TimeLike): string {
  const ms = parseTime(t);
  if (ms === null) return '—';
  const d = new Date(ms);
  if (ms < 1e11) {
    // Simulated clocks may start at 0: show an offset instead of 1970 dates.
    return `+${(ms / 1000).toFixed(1)}s`;
  }
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** Latest time the twin state knows about (state timestamp or any machine's last_seen/updated_at). */
export function latestTimestamp(state: Pick<TwinState, 'timestamp' | 'machines'>): number | null {
  let best: number | null = parseTime(state.timestamp);
  for (const m of state.machines ?? []) {
    for (const t of [m.last_seen, m.updated_at]) {
      const v = parseTime(t);
      if (v !== null && (best === null || v > best)) best = v;
    }
  }
  return best;
}

export function num(v: unknown, fallback = 0): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : fallback;
}

export function formatInt(v: unknown): string {
  return Math.round(num(v)).toLocaleString('en-US');
}

/** Ratio 0..1 -> "12.3%". */
export function formatPct(v: unknown, digits = 1): string {
  return `${(num(v) * 100).toFixed(digits)}%`;
}

export function sortMachines(ms: readonly Machine[]): Machine[] {
  return [...ms].sort((a, b) => a.machine_id.localeCompare(b.machine_id, 'en', { numeric: true }));
}

// ---------------------------------------------------------------- trends

export interface Point {
  t: number;
  v: number;
}

/** Bounded time series; out-of-order points are dropped, equal timestamps replace. */
export class TrendBuffer {
  private pts: Point[] = [];
  constructor(readonly capacity = 600) {}
  push(t: number | null, v: unknown): boolean {
    if (t === null || !Number.isFinite(t)) return false;
    const val = num(v, NaN);
    if (!Number.isFinite(val)) return false;
    const last = this.pts[this.pts.length - 1];
    if (last && t < last.t) return false;
    if (last && t === last.t) {
      last.v = val;
      return true;
    }
    this.pts.push({ t, v: val });
    if (this.pts.length > this.capacity) this.pts.splice(0, this.pts.length - this.capacity);
    return true;
  }
  points(): readonly Point[] {
    return this.pts;
  }
  get length(): number {
    return this.pts.length;
  }
}

/** Average of points per time bucket, buckets aligned to multiples of bucketMs, sorted by time. */
export function bucketAverage(points: readonly Point[], bucketMs: number): Point[] {
  if (bucketMs <= 0) throw new Error('bucketMs must be positive');
  const acc = new Map<number, { s: number; n: number }>();
  for (const p of points) {
    if (!Number.isFinite(p.t) || !Number.isFinite(p.v)) continue;
    const b = Math.floor(p.t / bucketMs) * bucketMs;
    const e = acc.get(b);
    if (e) {
      e.s += p.v;
      e.n++;
    } else acc.set(b, { s: p.v, n: 1 });
  }
  return [...acc.entries()].sort((a, b) => a[0] - b[0]).map(([t, e]) => ({ t, v: e.s / e.n }));
}

/**
 * uPlot wants one shared x array; merge several series onto the union of their
 * timestamps (seconds, as uPlot expects), null where a series has no value.
 */
export function alignSeries(series: readonly (readonly Point[])[]): [number[], ...(number | null)[][]] {
  const xs = new Set<number>();
  for (const s of series) for (const p of s) xs.add(p.t);
  const x = [...xs].sort((a, b) => a - b);
  const idx = new Map(x.map((t, i) => [t, i]));
  const ys = series.map((s) => {
    const col: (number | null)[] = new Array(x.length).fill(null);
    for (const p of s) col[idx.get(p.t)!] = p.v;
    return col;
  });
  return [x.map((t) => t / 1000), ...ys];
}

/** SQL rows -> points, skipping rows whose time or value cannot be read. */
export function rowsToPoints(rows: readonly Record<string, unknown>[], timeCol: string, valueCol: string): Point[] {
  const out: Point[] = [];
  for (const r of rows) {
    const t = parseTime(r[timeCol] as TimeLike);
    const v = num(r[valueCol], NaN);
    if (t !== null && Number.isFinite(v)) out.push({ t, v });
  }
  return out.sort((a, b) => a.t - b.t);
}

// ---------------------------------------------------------------- maintenance / predictions

export const URGENCY_LEVELS = ['critical', 'high', 'medium', 'low'] as const;
export type Urgency = (typeof URGENCY_LEVELS)[number];

export interface UrgencyBar {
  level: Urgency;
  count: number;
  fraction: number;
}

export function urgencyDistribution(alerts: Partial<MaintenanceAlerts> | null | undefined): { bars: UrgencyBar[]; total: number; open: number } {
  const counts = URGENCY_LEVELS.map((l) => Math.max(0, Math.round(num(alerts?.[l]))));
  const total = counts.reduce((a, b) => a + b, 0);
  return {
    bars: URGENCY_LEVELS.map((level, i) => ({ level, count: counts[i], fraction: total > 0 ? counts[i] / total : 0 })),
    total,
    open: Math.max(0, Math.round(num(alerts?.open_requests))),
  };
}

/** Accepts `{predictions:[...]}` or a bare array; drops malformed rows; most likely failure first. */
export function normalisePredictions(body: unknown): Prediction[] {
  const list = Array.isArray(body) ? body : Array.isArray((body as { predictions?: unknown })?.predictions) ? (body as { predictions: unknown[] }).predictions : [];
  return (list as Partial<Prediction>[])
    .filter((p) => p && typeof p.machine_id === 'string')
    .map((p) => ({
      machine_id: p.machine_id as string,
      failure_probability: num(p.failure_probability),
      time_to_failure_hours: p.time_to_failure_hours === null || p.time_to_failure_hours === undefined ? null : num(p.time_to_failure_hours),
      urgency: String(p.urgency ?? 'unknown').toLowerCase(),
      recommended_action: String(p.recommended_action ?? ''),
      event_time: p.event_time ?? null,
    }))
    .sort((a, b) => b.failure_probability - a.failure_probability || a.machine_id.localeCompare(b.machine_id));
}

// ---------------------------------------------------------------- Gantt

export interface GanttBar {
  job_id: string;
  operation_index: number;
  row: number;
  start: number;
  end: number;
}

export interface GanttLayout {
  rows: string[];
  bars: GanttBar[];
  t0: number;
  t1: number;
}

/** Rows = machines (natural sort), bars with ms times; operations with unreadable or inverted times are skipped. */
export function ganttLayout(schedule: Schedule | null | undefined): GanttLayout {
  const ops = schedule?.operations ?? [];
  const parsed = ops
    .map((o) => ({ o, s: parseTime(o.start), e: parseTime(o.end) }))
    .filter((x): x is { o: (typeof ops)[number]; s: number; e: number } => x.s !== null && x.e !== null && x.e >= x.s && typeof x.o.machine_id === 'string');
  const rows = [...new Set(parsed.map((x) => x.o.machine_id))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const rowOf = new Map(rows.map((r, i) => [r, i]));
  const bars = parsed.map((x) => ({ job_id: String(x.o.job_id), operation_index: num(x.o.operation_index), row: rowOf.get(x.o.machine_id)!, start: x.s, end: x.e }));
  const t0 = bars.length ? Math.min(...bars.map((b) => b.start)) : 0;
  const t1 = bars.length ? Math.max(...bars.map((b) => b.end)) : 0;
  return { rows, bars, t0, t1 };
}

/** Stable colour per job id (hash -> hue), so a job keeps its colour across re-plans. */
export function jobColor(jobId: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < jobId.length; i++) {
    h ^= jobId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // FNV's low bits barely move for ids differing in one trailing character
  // (J1, J2, …); murmur3's finaliser spreads them across the hue circle.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return `hsl(${(h >>> 0) % 360}, 65%, 55%)`;
}

// ---------------------------------------------------------------- floor / alerts

/** Square-ish grid centred on the origin; returns [x, z] per index. */
export function gridLayout(n: number, spacing: number): [number, number][] {
  const cols = Math.max(1, Math.ceil(Math.sqrt(n)));
  const rows = Math.max(1, Math.ceil(n / cols));
  const ox = ((cols - 1) * spacing) / 2;
  const oz = ((rows - 1) * spacing) / 2;
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) out.push([(i % cols) * spacing - ox, Math.floor(i / cols) * spacing - oz]);
  return out;
}

/**
 * Remembers each machine's defect count and when it last went up; a machine
 * is "alerting" for windowMs after an increase. The first sighting of a
 * machine never alerts (no baseline to compare against).
 */
export class DefectTracker {
  private last = new Map<string, number>();
  private raisedAt = new Map<string, number>();
  constructor(readonly windowMs = 30_000) {}
  update(machines: readonly Pick<Machine, 'machine_id' | 'defects'>[], nowMs: number): void {
    for (const m of machines) {
      const d = num(m.defects);
      const prev = this.last.get(m.machine_id);
      if (prev !== undefined && d > prev) this.raisedAt.set(m.machine_id, nowMs);
      this.last.set(m.machine_id, d);
    }
  }
  alerting(id: string, nowMs: number): boolean {
    const t = this.raisedAt.get(id);
    return t !== undefined && nowMs - t <= this.windowMs;
  }
}

// ---------------------------------------------------------------- SQL helpers

/** SQL string literal with quotes doubled; machine ids come from the server but may contain anything. */
export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

export function machineHistorySql(machineId: string, limit = 500): string {
  const n = Math.max(1, Math.min(10_000, Math.floor(limit)));
  return `SELECT event_time, status, health_score, cycles, defects, defect_rate, reason FROM twin_state_history WHERE machine_id = ${sqlString(machineId)} ORDER BY event_time DESC LIMIT ${n}`;
}

export const FLEET_TREND_SQL = 'SELECT event_time, defect_rate FROM twin_state_history ORDER BY event_time DESC LIMIT 5000';

/** Status counts from either state statistics or dashboard stats, all six keys present. */
export function statusCounts(src: Partial<Record<string, unknown>> | null | undefined): Record<string, number> {
  const out: Record<string, number> = { RUNNING: 0, IDLE: 0, WARNING: 0, ERROR: 0, MAINTENANCE: 0, OFFLINE: 0 };
  for (const [k, v] of Object.entries(src ?? {})) {
    const key = k.toUpperCase();
    if (key in out) out[key] = Math.max(0, Math.round(num(v)));
  }
  return out;
}

/** Dashboard stats derived from a twin state, used before the first stats response arrives. */
export function statsFromState(s: TwinState): DashboardStats {
  const st = s.statistics;
  return {
    timestamp: s.timestamp,
    overall_health: num(st?.average_health),
    total_machines: num(st?.total_machines, s.machines?.length ?? 0),
    status_breakdown: statusCounts(st?.status_counts),
    total_cycles: num(st?.total_cycles),
    total_defects: num(st?.total_defects),
    parts_inspected: num(st?.parts_inspected),
    defect_rate: num(st?.defect_rate),
    maintenance_alerts: null,
  };
}
