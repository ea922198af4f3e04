import { describe, expect, it } from 'vitest';
import { STATUS_COLORS, UNKNOWN_COLOR, hexColor, isAlarm, normaliseStatus, statusColor, statusColorHex } from '../src/status';
import { STATUSES } from '../src/types';

const rgb = (c: number) => [(c >> 16) & 255, (c >> 8) & 255, c & 255];

describe('status colours', () => {
  it('has a colour for each of the six statuses of the contract', () => {
    expect(Object.keys(STATUS_COLORS).sort()).toEqual([...STATUSES].sort());
  });

  it('uses the hue the spec asks for', () => {
    const [r, g, b] = rgb(statusColor('RUNNING'));
    expect(g).toBeGreaterThan(r * 1.5); // green
    expect(g).toBeGreaterThan(b * 1.5);
    const [yr, yg, yb] = rgb(statusColor('WARNING'));
    expect(Math.min(yr, yg)).toBeGreaterThan(yb * 3); // yellow: red+green, little blue
    for (const s of ['ERROR', 'MAINTENANCE']) {
      const [er, eg, eb] = rgb(statusColor(s));
      expect(er).toBeGreaterThan(eg * 2); // red
      expect(er).toBeGreaterThan(eb * 2);
      expect(isAlarm(s)).toBe(true);
    }
    const [ir, ig, ib] = rgb(statusColor('IDLE'));
    expect(Math.max(ir, ig, ib) - Math.min(ir, ig, ib)).toBeLessThan(30); // grey
    const sum = (c: number) => rgb(c).reduce((a, b) => a + b, 0);
    expect(sum(statusColor('OFFLINE'))).toBeLessThan(sum(statusColor('IDLE'))); // darker than idle
  });

  it('is case- and whitespace-insensitive and flags unknown statuses', () => {
    expect(statusColor(' running ')).toBe(STATUS_COLORS.RUNNING);
    expect(normaliseStatus('Error')).toBe('ERROR');
    expect(statusColor('EXPLODED')).toBe(UNKNOWN_COLOR);
    expect(statusColor(undefined)).toBe(UNKNOWN_COLOR);
    expect(Object.values(STATUS_COLORS)).not.toContain(UNKNOWN_COLOR);
    expect(isAlarm('RUNNING')).toBe(false);
    expect(isAlarm(null)).toBe(false);
  });

  it('formats hex with zero padding', () => {
    expect(hexColor(0x00ff00)).toBe('#00ff00');
    expect(hexColor(0x000001)).toBe('#000001');
    expect(statusColorHex('RUNNING')).toBe('#22c55e');
    expect(parseInt(statusColorHex('ERROR').slice(1), 16)).toBe(STATUS_COLORS.ERROR);
  });
});
