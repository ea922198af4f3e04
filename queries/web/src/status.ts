// Status -> colour mapping shared by the dashboard badges and the 3D floor, so
// both views always agree on what "red" means.
import type { Status } from './types';

export const STATUS_COLORS: Readonly<Record<Status, number>> = {
  RUNNING: 0x22c55e,
  WARNING: 0xeab308,
  ERROR: 0xef4444,
  MAINTENANCE: 0xef4444,
  IDLE: 0x9ca3af,
  OFFLINE: 0x374151,
};

// Unknown statuses (a newer backend, a typo) get a distinct purple rather than
// silently looking healthy or offline.
export const UNKNOWN_COLOR = 0xa855f7;

export function normaliseStatus(s: unknown): Status | null {
  if (typeof s !== 'string') return null;
  const up = s.trim().toUpperCase();
  return up in STATUS_COLORS ? (up as Status) : null;
}

export function statusColor(s: unknown): number {
  const st = normaliseStatus(s);
  return st === null ? UNKNOWN_COLOR : STATUS_COLORS[st];
}

export function hexColor(c: number): string {
  return '#' + (c & 0xffffff).toString(16).padStart(6, '0');
}

export function statusColorHex(s: unknown): string {
  return hexColor(statusColor(s));
}

export function isAlarm(s: unknown): boolean {
  const st = normaliseStatus(s);
  return st === 'ERROR' || st === 'MAINTENANCE';
}
