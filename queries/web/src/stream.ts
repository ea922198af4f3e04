// Live subscription to /api/v1/ws/stream with exponential-backoff reconnect.
// Consumers get parsed messages and connection-state changes; while the
// socket is down the caller may poll REST (see onState).
import { Backoff } from './backoff';
import type { StreamMessage } from './types';

export type ConnState = 'connecting' | 'connected' | 'reconnecting';

export interface StreamHandlers {
  onMessage(msg: StreamMessage): void;
  onState?(state: ConnState, retryInMs?: number): void;
}

export function streamUrl(loc: Pick<Location, 'protocol' | 'host'>): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/api/v1/ws/stream`;
}

/** Parse one frame; null for anything that is not a typed JSON object. */
export function parseMessage(raw: unknown): StreamMessage | null {
  if (typeof raw !== 'string') return null;
  try {
    const v = JSON.parse(raw) as { type?: unknown };
    return v && typeof v === 'object' && typeof v.type === 'string' ? (v as StreamMessage) : null;
  } catch {
    return null;
  }
}

export class LiveStream {
  private ws: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private readonly backoff = new Backoff();
  state: ConnState = 'connecting';

  constructor(
    private readonly url: string,
    private readonly h: StreamHandlers,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close();
    this.ws = null;
  }

  private setState(s: ConnState, retry?: number): void {
    this.state = s;
    this.h.onState?.(s, retry);
  }

  private connect(): void {
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.backoff.reset();
      this.setState('connected');
    };
    ws.onmessage = (ev) => {
      const msg = parseMessage(ev.data);
      if (msg) this.h.onMessage(msg);
    };
    // onerror is always followed by onclose; reconnect from one place only.
    ws.onclose = () => {
      if (this.ws === ws) this.ws = null;
      if (!this.stopped) this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    const delay = this.backoff.next();
    this.setState('reconnecting', delay);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }
}
