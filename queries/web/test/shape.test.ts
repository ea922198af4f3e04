import { describe, expect, it } from 'vitest';
import {
  DefectTracker,
  TrendBuffer,
  alignSeries,
  bucketAverage,
  ganttLayout,
  gridLayout,
  jobColor,
  latestTimestamp,
  machineHistorySql,
  normalisePredictions,
  parseTime,
  rowsToPoints,
  sortMachines,
  sqlString,
  statsFromState,
  statusCounts,
  urgencyDistribution,
} from '../src/shape';
import type { Machine, TwinState } from '../src/types';

const T = Date.UTC(2025, 0, 2, 3, 4, 5, 678);

describe('parseTime', () => {
  it('reads RFC3339 in any zone notation to the same instant', () => {
    expect(parseTime('2025-01-02T03:04:05.678Z')).toBe(T);
    expect(parseTime('2025-01-02T04:04:05.678+01:00')).toBe(T);
    expect(parseTime('2025-01-02 03:04:05.678')).toBe(T); // DataFusion style, UTC
    expect(parseTime('2025-01-02T03:04:05.678901234Z')).toBe(T); // nanosecond fraction
  });
  it('reads epoch numbers in ms, and scales µs / ns', () => {
    expect(parseTime(T)).toBe(T);
    expect(parseTime(String(T))).toBe(T);
    expect(parseTime(T * 1000)).toBe(T);
    expect(parseTime(T * 1_000_000)).toBe(T);
    expect(parseTime(0)).toBe(0); // simulated clocks may start at zero
  });
  it('returns null for garbage', () => {
    for (const v of ['', 'yesterday', null, undefined, NaN, Infinity]) expect(parseTime(v as never)).toBeNull();
  });
});

const machine = (id: string, over: Partial<Machine> = {}): Machine => ({
  machine_id: id,
  status: 'RUNNING',
  health_score: 1,
  cycles: 0,
  defects: 0,
  parts_inspected: 0,
  defect_rate: 0,
  ...over,
});

describe('twin state helpers', () => {
  it('latestTimestamp takes the max over state and machine times, mixing formats', () => {
    const st = { timestamp: T, machines: [machine('a', { last_seen: new Date(T + 5000).toISOString() }), machine('b', { updated_at: T + 2000 })] };
    expect(latestTimestamp(st)).toBe(T + 5000);
    expect(latestTimestamp({ timestamp: null, machines: [] })).toBeNull();
  });
  it('sorts machine ids naturally', () => {
    expect(sortMachines([machine('M-10'), machine('M-2'), machine('M-1')]).map((m) => m.machine_id)).toEqual(['M-1', 'M-2', 'M-10']);
  });
  it('statusCounts fills all six statuses and ignores unknown keys', () => {
    expect(statusCounts({ running: 3, ERROR: '2', bogus: 9 })).toEqual({ RUNNING: 3, IDLE: 0, WARNING: 0, ERROR: 2, MAINTENANCE: 0, OFFLINE: 0 });
  });
  it('statsFromState carries the statistics over', () => {
    const s: TwinState = {
      factory_id: 'f',
      timestamp: T,
      machines: [machine('a')],
      statistics: { total_machines: 1, status_counts: { RUNNING: 1 }, average_health: 0.5, total_cycles: 10, total_defects: 1, parts_inspected: 10, defect_rate: 0.1 },
    };
    const d = statsFromState(s);
    expect([d.overall_health, d.total_machines, d.total_cycles, d.total_defects, d.defect_rate]).toEqual([0.5, 1, 10, 1, 0.1]);
    expect(d.status_breakdown.RUNNING).toBe(1);
  });
});

describe('trend shaping', () => {
  it('TrendBuffer keeps order, replaces equal timestamps, drops stale and bad points, honours capacity', () => {
    const b = new TrendBuffer(3);
    expect(b.push(1, 0.1)).toBe(true);
    expect(b.push(2, 0.2)).toBe(true);
    expect(b.push(2, 0.25)).toBe(true);
    expect(b.push(1, 0.9)).toBe(false);
    expect(b.push(null, 0.9)).toBe(false);
    expect(b.push(3, 'x')).toBe(false);
    b.push(3, 0.3);
    b.push(4, 0.4);
    expect(b.points()).toEqual([{ t: 2, v: 0.25 }, { t: 3, v: 0.3 }, { t: 4, v: 0.4 }]);
  });
  it('bucketAverage equals a direct recomputation', () => {
    const pts = Array.from({ length: 100 }, (_, i) => ({ t: 1000 + i * 730, v: (i * 37) % 11 }));
    const got = bucketAverage(pts, 5000);
    for (const g of got) {
      const inB = pts.filter((p) => Math.floor(p.t / 5000) * 5000 === g.t);
      expect(g.v).toBeCloseTo(inB.reduce((a, p) => a + p.v, 0) / inB.length, 12);
    }
    expect(got.reduce((a, g) => a + pts.filter((p) => Math.floor(p.t / 5000) * 5000 === g.t).length, 0)).toBe(pts.length);
    expect(() => bucketAverage(pts, 0)).toThrow();
  });
  it('alignSeries puts every point at its own x and null elsewhere', () => {
    const a = [{ t: 1000, v: 1 }, { t: 3000, v: 3 }];
    const b = [{ t: 2000, v: 20 }, { t: 3000, v: 30 }];
    expect(alignSeries([a, b])).toEqual([[1, 2, 3], [1, null, 3], [null, 20, 30]]);
  });
  it('rowsToPoints parses SQL rows and skips unreadable ones', () => {
    const rows = [{ event_time: '2025-01-02T03:04:05.678Z', defect_rate: 0.5 }, { event_time: 'nope', defect_rate: 1 }, { event_time: T - 1, defect_rate: '0.25' }, { event_time: T, defect_rate: null }];
    expect(rowsToPoints(rows, 'event_time', 'defect_rate')).toEqual([{ t: T - 1, v: 0.25 }, { t: T, v: 0.5 }]);
  });
});

describe('maintenance, predictions, schedule', () => {
  it('urgencyDistribution fractions sum to one and handle missing data', () => {
    const u = urgencyDistribution({ critical: 1, high: 3, medium: 0, low: 4, open_requests: 5 });
    expect(u.total).toBe(8);
    expect(u.open).toBe(5);
    expect(u.bars.map((b) => b.level)).toEqual(['critical', 'high', 'medium', 'low']);
    expect(u.bars.reduce((a, b) => a + b.fraction, 0)).toBeCloseTo(1, 12);
    const empty = urgencyDistribution(null);
    expect(empty.total).toBe(0);
    expect(empty.bars.every((b) => b.fraction === 0)).toBe(true);
  });
  it('normalisePredictions accepts both shapes, drops junk, sorts by probability', () => {
    const list = [
      { machine_id: 'b', failure_probability: 0.2, time_to_failure_hours: 10, urgency: 'LOW', recommended_action: 'x', event_time: T },
      { failure_probability: 0.9 },
      { machine_id: 'a', failure_probability: 0.7, time_to_failure_hours: null, urgency: 'high', recommended_action: 'y', event_time: T },
    ];
    for (const body of [list, { predictions: list }]) {
      const got = normalisePredictions(body);
      expect(got.map((p) => p.machine_id)).toEqual(['a', 'b']);
      expect(got[1].urgency).toBe('low');
      expect(got[0].time_to_failure_hours).toBeNull();
    }
    expect(normalisePredictions(null)).toEqual([]);
    expect(normalisePredictions({ error: 'x' })).toEqual([]);
  });
  it('ganttLayout accepts ms and RFC3339 times, sorts rows, spans all bars, skips inverted ops', () => {
    const l = ganttLayout({
      plan_version: 1,
      makespan_ms: 0,
      operations: [
        { job_id: 'J1', operation_index: 0, machine_id: 'M-10', start: T, end: T + 1000 },
        { job_id: 'J1', operation_index: 1, machine_id: 'M-2', start: new Date(T + 1000).toISOString(), end: T + 4000 },
        { job_id: 'J2', operation_index: 0, machine_id: 'M-3', start: T + 5000, end: T + 100 },
        { job_id: 'J2', operation_index: 1, machine_id: 'M-3', start: 'bad', end: T },
      ],
    });
    expect(l.rows).toEqual(['M-2', 'M-10']);
    expect(l.bars).toHaveLength(2);
    expect(l.bars.find((b) => b.operation_index === 1)).toMatchObject({ row: 0, start: T + 1000, end: T + 4000 });
    expect([l.t0, l.t1]).toEqual([T, T + 4000]);
    expect(ganttLayout(null)).toEqual({ rows: [], bars: [], t0: 0, t1: 0 });
  });
  it('jobColor is stable per id and spreads neighbouring ids over the hue circle', () => {
    expect(jobColor('J1')).toBe(jobColor('J1'));
    const hues = Array.from({ length: 8 }, (_, i) => Number(/hsl\((\d+)/.exec(jobColor(`J${i + 1}`))![1]));
    expect(new Set(hues).size).toBe(8);
    expect(Math.max(...hues) - Math.min(...hues)).toBeGreaterThan(180);
  });
});

describe('floor layout and alerts', () => {
  it('gridLayout gives n distinct positions on a centred square-ish grid', () => {
    for (const n of [1, 2, 7, 24, 200]) {
      const p = gridLayout(n, 3);
      expect(p).toHaveLength(n);
      expect(new Set(p.map(([x, z]) => `${x},${z}`)).size).toBe(n);
      const xs = p.map((q) => q[0]);
      const zs = p.map((q) => q[1]);
      expect(Math.max(...xs) + Math.min(...xs)).toBeCloseTo(0, 9); // centred in x
      const cols = new Set(xs).size;
      const rows = new Set(zs).size;
      expect(Math.abs(cols - rows)).toBeLessThanOrEqual(1);
      // Neighbours are exactly one spacing apart.
      const sortedX = [...new Set(xs)].sort((a, b) => a - b);
      for (let i = 1; i < sortedX.length; i++) expect(sortedX[i] - sortedX[i - 1]).toBeCloseTo(3, 9);
    }
    expect(gridLayout(0, 3)).toEqual([]);
  });
  it('DefectTracker alerts only after an increase, and only for the window', () => {
    const d = new DefectTracker(1000);
    d.update([{ machine_id: 'a', defects: 5 }, { machine_id: 'b', defects: 1 }], 0);
    expect(d.alerting('a', 0)).toBe(false); // first sighting is a baseline
    d.update([{ machine_id: 'a', defects: 6 }, { machine_id: 'b', defects: 1 }], 100);
    expect(d.alerting('a', 100)).toBe(true);
    expect(d.alerting('b', 100)).toBe(false);
    expect(d.alerting('a', 1100)).toBe(true);
    expect(d.alerting('a', 1101)).toBe(false);
    d.update([{ machine_id: 'a', defects: 4 }], 2000); // a reset (decrease) is not an alert
    expect(d.alerting('a', 2000)).toBe(false);
    expect(d.alerting('zzz', 0)).toBe(false);
  });
});

describe('SQL helpers', () => {
  it('sqlString doubles quotes so ids cannot break out of the literal', () => {
    expect(sqlString("M'1")).toBe("'M''1'");
    const q = machineHistorySql("x' OR '1'='1");
    expect(q).toContain("machine_id = 'x'' OR ''1''=''1'");
    // Removing every escaped quote pair must leave exactly the two delimiters around the id.
    const lit = q.slice(q.indexOf("machine_id = ") + 13, q.indexOf(' ORDER BY'));
    expect(lit.replace(/''/g, '').match(/'/g)).toHaveLength(2);
  });
  it('clamps the history limit', () => {
    expect(machineHistorySql('a', 0)).toMatch(/LIMIT 1$/);
    expect(machineHistorySql('a', 1e9)).toMatch(/LIMIT 10000$/);
  });
});
