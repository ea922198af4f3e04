// Page chrome shared by the dashboard and the 3D view (header, connection
// pill) and the window.__twinline handle that browser tests read.
import { h, setText } from './dom';
import type { ConnState } from './stream';

export interface TwinlineHandle {
  page: 'dashboard' | '3d';
  ready: boolean;
  firstMeaningfulPaintMs: number | null;
  machines: Record<string, { status: string; color: string; health: number; defects: number; alert: boolean }>;
  kpiUpdates: number;
  connection: ConnState;
  fps(): number;
  sampleColor?(id: string): [number, number, number] | null;
  [k: string]: unknown;
}

declare global {
  interface Window {
    __twinline: TwinlineHandle;
  }
}

export function initHandle(page: TwinlineHandle['page']): TwinlineHandle {
  const hnd: TwinlineHandle = {
    page,
    ready: false,
    firstMeaningfulPaintMs: null,
    machines: {},
    kpiUpdates: 0,
    connection: 'connecting',
    fps: () => 0,
  };
  window.__twinline = hnd;
  return hnd;
}

/** Record first meaningful paint at the frame after the content was put in the DOM. */
export function markFirstMeaningfulPaint(hnd: TwinlineHandle): void {
  if (hnd.firstMeaningfulPaintMs !== null) return;
  hnd.firstMeaningfulPaintMs = -1; // pending: stop later calls re-arming it
  requestAnimationFrame(() => {
    hnd.firstMeaningfulPaintMs = performance.now();
  });
}

export function header(active: 'dashboard' | '3d'): { root: HTMLElement; setConn(s: ConnState, retryMs?: number): void; setFactory(id: string): void } {
  const pill = h('span', { class: 'conn conn-connecting', id: 'conn', title: 'live stream' }, h('i'), h('span', { text: 'connecting' }));
  const factory = h('span', { class: 'factory', id: 'factory-id' });
  const root = h(
    'header',
    { class: 'topbar' },
    h('div', { class: 'brand' }, h('b', { text: 'twinline' }), factory),
    h(
      'nav',
      {},
      h('a', { href: '/', class: active === 'dashboard' ? 'active' : '', text: 'Dashboard' }),
      h('a', { href: '/3d', class: active === '3d' ? 'active' : '', text: '3D floor' }),
    ),
    pill,
  );
  return {
    root,
    setConn(s, retryMs) {
      pill.className = `conn conn-${s}`;
      const label = s === 'reconnecting' && retryMs !== undefined ? `reconnecting (${(retryMs / 1000).toFixed(1)}s)` : s;
      setText(pill.lastElementChild!, label);
      pill.dataset.state = s;
    },
    setFactory(id) {
      setText(factory, id ? `· ${id}` : '');
    },
  };
}
