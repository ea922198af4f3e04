// The 3D factory view at `/3d`: floor from the twin's machine list, live via
// the stream (REST polling while it is down), detail drawer on click.
// `?demo=N` replaces the backend with N fabricated machines.
import { fetchState } from './api';
import { header, initHandle, markFirstMeaningfulPaint } from './common';
import { demoFleet, demoTick, mulberry32 } from './demo';
import { DetailPanel } from './detail';
import { h, setText } from './dom';
import { FactoryScene } from './factory3d';
import { statusCounts } from './shape';
import { STATUS_COLORS, hexColor } from './status';
import { LiveStream, streamUrl } from './stream';
import { STATUSES, type Machine, type TwinState } from './types';

export function mount3d(app: HTMLElement): void {
  const hnd = initHandle('3d');
  const top = header('3d');
  const detail = new DetailPanel();
  const host = h('div', { class: 'floor', id: 'floor' });
  const counts = h('div', { class: 'legend', id: 'legend' });
  const hud = h('div', { class: 'hud', id: 'hud' });
  const legendItems = new Map<string, HTMLElement>();
  for (const s of STATUSES) {
    const item = h('span', { class: 'chip-status' }, h('i'), h('span', { text: `${s.toLowerCase()} ` }), h('b', { text: '0' }));
    item.style.setProperty('--c', hexColor(STATUS_COLORS[s]));
    legendItems.set(s, item);
    counts.append(item);
  }
  app.classList.add('app-3d');
  app.append(top.root, h('main', { class: 'floor-wrap' }, host, counts, hud), detail.root);

  let scene: FactoryScene;
  try {
    // ?aa=0|1 overrides the antialiasing choice (default: off on software GL).
    const aa = new URLSearchParams(location.search).get('aa');
    scene = new FactoryScene(host, { antialias: aa === null ? undefined : aa !== '0' });
  } catch (e) {
    host.append(h('p', { class: 'error', text: `WebGL is not available: ${(e as Error).message}` }));
    return;
  }
  scene.onPick = (id) => detail.open(id);
  hnd.machines = scene.views;
  hnd.fps = () => scene.fps();
  hnd.sampleColor = (id) => scene.sampleColor(id);
  hnd.screenPoint = (id: string) => scene.screenPoint(id);
  hnd.openMachine = (id: string) => detail.open(id);
  hnd.drawCalls = () => scene.drawCalls;
  hnd.frameCost = () => ({ glMs: scene.glMs, labelMs: scene.labelMs });
  hnd.glRenderer = scene.glName;
  hnd.camera = () => scene.cameraState();
  hnd.markerCount = () => scene.markerCount();

  const apply = (machines: Machine[]) => {
    scene.update(machines);
    const c = statusCounts(Object.fromEntries(STATUSES.map((s) => [s, machines.filter((m) => String(m.status).toUpperCase() === s).length])));
    for (const [s, el] of legendItems) setText(el.lastElementChild!, String(c[s]));
    hnd.machineCount = machines.length;
    if (machines.length > 0 && !hnd.ready) {
      // Ready once the first populated frame has been drawn.
      requestAnimationFrame(() => {
        hnd.ready = true;
        markFirstMeaningfulPaint(hnd);
      });
    }
  };
  setInterval(() => setText(hud, `${hnd.machineCount ?? 0} machines · ${scene.fps()} fps · ${scene.drawCalls} draw calls`), 1000);

  const demo = Number(new URLSearchParams(location.search).get('demo'));
  if (Number.isFinite(demo) && demo > 0) {
    const n = Math.min(5000, Math.floor(demo));
    top.setConn('connected');
    top.setFactory(`demo · ${n} machines`);
    hnd.connection = 'connected';
    const r = mulberry32(7);
    let fleet = demoFleet(n);
    apply(fleet);
    setInterval(() => {
      fleet = demoTick(fleet, r);
      apply(fleet);
    }, 2000);
    return;
  }

  const applyState = (s: TwinState) => {
    top.setFactory(s.factory_id ?? '');
    apply(s.machines ?? []);
    if (detail.openId) detail.refresh();
  };
  const poll = () =>
    fetchState()
      .then(applyState)
      .catch((e) => console.warn('twinline: state fetch failed:', (e as Error).message));
  let pollTimer: ReturnType<typeof setInterval> | null = null;
  const stream = new LiveStream(streamUrl(location), {
    onMessage(msg) {
      if (msg.type === 'twin_state') applyState(msg.data);
    },
    onState(s, retry) {
      hnd.connection = s;
      top.setConn(s, retry);
      if (s === 'connected' && pollTimer) {
        clearInterval(pollTimer);
        pollTimer = null;
      } else if (s !== 'connected' && !pollTimer) pollTimer = setInterval(() => void poll(), 5000);
    },
  });
  void poll();
  stream.start();
}
