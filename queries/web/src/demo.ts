// Client-side fabricated fleet for `/3d?demo=N`: lets the frame-rate test
// render N machines without a backend. Seeded PRNG so runs are comparable.
import type { Machine, Status } from './types';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WEIGHTED: Status[] = ['RUNNING', 'RUNNING', 'RUNNING', 'RUNNING', 'RUNNING', 'IDLE', 'WARNING', 'ERROR', 'MAINTENANCE', 'OFFLINE'];

export function demoFleet(n: number, seed = 42): Machine[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, (_, i) => {
    const status = WEIGHTED[Math.floor(r() * WEIGHTED.length)];
    const cycles = Math.floor(r() * 5000);
    const defects = Math.floor(cycles * r() * 0.05);
    return {
      machine_id: `DEMO-${String(i + 1).padStart(3, '0')}`,
      status,
      health_score: status === 'ERROR' ? 0.2 + r() * 0.2 : 0.5 + r() * 0.5,
      cycles,
      defects,
      parts_inspected: cycles,
      defect_rate: cycles ? defects / cycles : 0,
      temperature: 40 + r() * 40,
      vibration: r() * 5,
      pressure: 1 + r() * 5,
      speed: 800 + r() * 400,
      last_seen: Date.now(),
      updated_at: Date.now(),
      reason: null,
    };
  });
}

/** One simulated tick: a few machines change status, running ones make cycles and sometimes defects. */
export function demoTick(fleet: Machine[], r: () => number): Machine[] {
  return fleet.map((m) => {
    const next = { ...m };
    if (r() < 0.03) next.status = WEIGHTED[Math.floor(r() * WEIGHTED.length)];
    if (next.status === 'RUNNING') {
      next.cycles += 1 + Math.floor(r() * 3);
      next.parts_inspected = next.cycles;
      if (r() < 0.05) next.defects += 1;
      next.defect_rate = next.cycles ? next.defects / next.cycles : 0;
    }
    next.health_score = Math.max(0, Math.min(1, next.health_score + (r() - 0.5) * 0.02));
    return next;
  });
}
