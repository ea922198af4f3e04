import { describe, expect, it } from 'vitest';
import { demoFleet, demoTick, mulberry32 } from '../src/demo';
import { FpsMeter } from '../src/fps';
import { normaliseStatus } from '../src/status';

describe('demo fleet', () => {
  it('is deterministic per seed, has n unique ids and valid statuses', () => {
    const a = demoFleet(200, 1);
    const b = demoFleet(200, 1);
    expect(a.map((m) => [m.machine_id, m.status, m.cycles])).toEqual(b.map((m) => [m.machine_id, m.status, m.cycles]));
    expect(new Set(a.map((m) => m.machine_id)).size).toBe(200);
    expect(a.every((m) => normaliseStatus(m.status) !== null)).toBe(true);
    expect(new Set(a.map((m) => m.status)).size).toBeGreaterThan(3);
  });
  it('ticks keep counters monotone and rates consistent', () => {
    let f = demoFleet(50, 3);
    const r = mulberry32(9);
    for (let i = 0; i < 20; i++) {
      const next = demoTick(f, r);
      next.forEach((m, j) => {
        expect(m.cycles).toBeGreaterThanOrEqual(f[j].cycles);
        expect(m.defects).toBeGreaterThanOrEqual(f[j].defects);
        expect(m.health_score).toBeGreaterThanOrEqual(0);
        expect(m.health_score).toBeLessThanOrEqual(1);
      });
      f = next;
    }
  });
});

describe('FpsMeter', () => {
  it('counts frames in the last second only', () => {
    const m = new FpsMeter();
    for (let t = 0; t <= 2000; t += 1000 / 30) m.tick(t);
    expect(m.fps(2000)).toBeGreaterThanOrEqual(30);
    expect(m.fps(2000)).toBeLessThanOrEqual(31);
    expect(m.fps(5000)).toBe(0);
  });
});
