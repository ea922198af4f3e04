// Reconnect delays for the live stream: exponential growth with a cap and
// jitter, so a restarting server is not hit by every tab at the same instant.

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  factor: number;
  /** Fraction of the delay that is randomised (0 = deterministic, 1 = full jitter). */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 15_000, factor: 2, jitter: 0.3 };

/** Delay before reconnect attempt `attempt` (0-based). `rand` returns [0,1). */
export function backoffDelay(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF, rand: () => number = Math.random): number {
  const a = Math.max(0, Math.floor(attempt));
  // Cap the exponent first so huge attempt counts cannot overflow to Infinity.
  const raw = opts.baseMs * Math.pow(opts.factor, Math.min(a, 30));
  const capped = Math.min(opts.maxMs, raw);
  const j = Math.min(1, Math.max(0, opts.jitter));
  const r = Math.min(1, Math.max(0, rand()));
  return Math.round(capped * (1 - j) + capped * j * r);
}

/** Stateful helper: next() yields successive delays, reset() after a successful connect. */
export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions = DEFAULT_BACKOFF, private readonly rand: () => number = Math.random) {}
  next(): number {
    const d = backoffDelay(this.attempt, this.opts, this.rand);
    this.attempt++;
    return d;
  }
  reset(): void {
    this.attempt = 0;
  }
  get attempts(): number {
    return this.attempt;
  }
}
