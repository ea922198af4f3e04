import { describe, expect, it } from 'vitest';
import { Backoff, DEFAULT_BACKOFF, backoffDelay } from '../src/backoff';

const noJitter = { ...DEFAULT_BACKOFF, jitter: 0 };

describe('backoff', () => {
  it('doubles from the base up to the cap without jitter', () => {
    const d = Array.from({ length: 8 }, (_, i) => backoffDelay(i, noJitter));
    expect(d).toEqual([500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  });

  it('keeps jittered delays within [cap*(1-j), cap] of the deterministic value', () => {
    for (let a = 0; a < 10; a++) {
      const det = backoffDelay(a, noJitter);
      for (const r of [0, 0.25, 0.5, 0.999]) {
        const v = backoffDelay(a, DEFAULT_BACKOFF, () => r);
        expect(v).toBeGreaterThanOrEqual(Math.floor(det * (1 - DEFAULT_BACKOFF.jitter)));
        expect(v).toBeLessThanOrEqual(det);
      }
    }
  });

  it('stays finite and capped for absurd attempt counts and bad input', () => {
    expect(backoffDelay(10_000, noJitter)).toBe(15000);
    expect(backoffDelay(-3, noJitter)).toBe(500);
    expect(backoffDelay(2, noJitter, () => 5)).toBe(2000);
  });

  it('resets after a successful connection', () => {
    const b = new Backoff(noJitter);
    expect([b.next(), b.next(), b.next()]).toEqual([500, 1000, 2000]);
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.next()).toBe(500);
  });
});
