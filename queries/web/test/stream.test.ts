import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LiveStream, parseMessage, streamUrl, type ConnState } from '../src/stream';

class FakeSocket {
  static all: FakeSocket[] = [];
  onopen: (() => void) | null = null;
  onclose: (() => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  close() {
    this.closed = true;
  }
}

describe('stream', () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
    vi.stubGlobal('WebSocket', FakeSocket);
    vi.spyOn(Math, 'random').mockReturnValue(1); // jitter at its maximum: delays = deterministic cap
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
  });

  it('builds ws/wss URLs from the page location', () => {
    expect(streamUrl({ protocol: 'http:', host: 'h:1' })).toBe('ws://h:1/api/v1/ws/stream');
    expect(streamUrl({ protocol: 'https:', host: 'h' })).toBe('wss://h/api/v1/ws/stream');
  });

  it('parses typed JSON frames only', () => {
    expect(parseMessage('{"type":"hello","v":1}')).toEqual({ type: 'hello', v: 1 });
    expect(parseMessage('{"data":1}')).toBeNull();
    expect(parseMessage('not json')).toBeNull();
    expect(parseMessage(new ArrayBuffer(2))).toBeNull();
  });

  it('reconnects with growing delays and resets them after a successful open', () => {
    const states: [ConnState, number | undefined][] = [];
    const msgs: unknown[] = [];
    const s = new LiveStream('ws://x/api/v1/ws/stream', { onMessage: (m) => msgs.push(m), onState: (st, r) => states.push([st, r]) });
    s.start();
    expect(FakeSocket.all).toHaveLength(1);
    // Three failed attempts: 500, 1000, 2000 ms.
    for (const [i, delay] of [500, 1000, 2000].entries()) {
      FakeSocket.all[i].onclose!();
      expect(states.at(-1)).toEqual(['reconnecting', delay]);
      vi.advanceTimersByTime(delay - 1);
      expect(FakeSocket.all).toHaveLength(i + 1);
      vi.advanceTimersByTime(1);
      expect(FakeSocket.all).toHaveLength(i + 2);
    }
    const live = FakeSocket.all[3];
    live.onopen!();
    expect(s.state).toBe('connected');
    live.onmessage!({ data: '{"type":"dashboard_stats","data":{}}' });
    live.onmessage!({ data: 'garbage' });
    expect(msgs).toEqual([{ type: 'dashboard_stats', data: {} }]);
    live.onclose!();
    expect(states.at(-1)).toEqual(['reconnecting', 500]); // backoff was reset by the open
    s.stop();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.all).toHaveLength(4); // stopped: no more attempts
  });
});
