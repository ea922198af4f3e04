// The live dashboard at `/`: KPI tiles, defect-rate trend, maintenance
// urgency, predictions, schedule Gantt, machine list + detail, SQL console.
// Data comes from REST on load and from the WebSocket stream afterwards;
// while the socket is down the page polls REST so it never goes stale.
import { ApiError, fetchPredictions, fetchSchedule, fetchState, fetchStats, isMissingView, runQuery } from './api';
import { LineChart } from './chart';
import { header, initHandle, markFirstMeaningfulPaint } from './common';
import { DetailPanel, statusBadge } from './detail';
import { byId, clear, h, setText } from './dom';
import { GanttChart, fmtSpan } from './gantt';
import {
  alignSeries,
  bucketAverage,
  FLEET_TREND_SQL,
  formatInt,
  formatPct,
  formatTime,
  ganttLayout,
  normalisePredictions,
  parseTime,
  rowsToPoints,
  sortMachines,
  statsFromState,
  statusCounts,
  TrendBuffer,
  urgencyDistribution,
  type Point,
} from './shape';
import { sqlConsole } from './sqlconsole';
import { statusColorHex } from './status';
import { LiveStream, streamUrl } from './stream';
import { STATUSES, type DashboardStats, type Machine, type Prediction, type Schedule, type TwinState } from './types';

const POLL_MS = 5000;
const SLOW_POLL_MS = 30_000;

export function mountDashboard(app: HTMLElement): void {
  // Start the first REST round-trip before building the DOM: it overlaps with
  // page construction and is what first meaningful paint waits for.
  const first = Promise.all([fetchState().catch(() => null), fetchStats().catch(() => null)]);
  const hnd = initHandle('dashboard');
  const top = header('dashboard');
  const detail = new DetailPanel();

  const tile = (id: string, label: string, extra?: HTMLElement) =>
    h('div', { class: 'tile', id: `tile-${id}` }, h('span', { class: 'tile-label', text: label }), h('b', { class: 'tile-value', id: `kpi-${id}`, text: '—' }), extra ?? null);
  const breakdown = h('div', { class: 'breakdown', id: 'status-breakdown' }, ...STATUSES.map((s) => {
    const c = h('span', { class: 'chip-status', id: `status-${s}`, title: s }, h('i'), h('span', { text: `${s.toLowerCase()} ` }), h('b', { text: '0' }));
    c.style.setProperty('--c', statusColorHex(s));
    return c;
  }));
  const card = (id: string, title: string, ...body: (HTMLElement | null)[]) => h('section', { class: `card card-${id}`, id: `card-${id}` }, h('h2', { text: title }), ...body);

  const trendBox = h('div', { class: 'chart', id: 'trend-chart' });
  const trendNote = h('p', { class: 'muted small', id: 'trend-note', text: 'Collecting live samples…' });
  const urgencyBox = h('div', { id: 'urgency' }, h('p', { class: 'muted empty', text: 'Waiting for stats…' }));
  const predBox = h('div', { id: 'predictions', class: 'table-wrap' }, h('p', { class: 'muted empty', text: 'Loading…' }));
  const ganttHost = h('div', { id: 'gantt' });
  const ganttNote = h('p', { class: 'muted empty', id: 'gantt-empty', text: 'Loading…' });
  const filter = h('input', { type: 'search', placeholder: 'filter machines…', id: 'machine-filter' }) as HTMLInputElement;
  const tbody = h('tbody', { id: 'machine-rows' });
  const machineTable = h(
    'div',
    { class: 'table-wrap tall' },
    h('table', { class: 'data machines' }, h('thead', {}, h('tr', {}, ...['machine', 'status', 'health', 'cycles', 'defects', 'defect rate', 'temp', 'last seen'].map((c) => h('th', { text: c })))), tbody),
  );

  app.append(
    top.root,
    h(
      'main',
      { class: 'grid' },
      h(
        'section',
        { class: 'kpis', id: 'kpis' },
        tile('health', 'Overall health'),
        tile('machines', 'Machines', breakdown),
        tile('cycles', 'Total cycles'),
        tile('defects', 'Total defects'),
        tile('defect-rate', 'Defect rate'),
        tile('parts', 'Parts inspected'),
      ),
      card('trend', 'Defect rate trend', trendBox, trendNote),
      card('urgency', 'Maintenance urgency', urgencyBox),
      card('machines', 'Machines', filter, machineTable),
      card('predictions', 'Failure predictions', predBox),
      card('schedule', 'Production schedule', ganttNote, ganttHost),
      card('sql', 'SQL console', h('p', { class: 'muted small', text: 'Views: twin_state, twin_state_history, sensor_readings, defects, dead_letters, failure_predictions, maintenance_requests, schedule (the current plan), schedule_changes.' }), sqlConsole()),
    ),
    detail.root,
  );

  // ------------------------------------------------------------ KPIs + trend
  const live = new TrendBuffer(900);
  let history: Point[] = [];
  const trend = new LineChart(trendBox, [
    { label: 'live (stats)', color: '#f97316', fmt: (v) => `${(v * 100).toFixed(2)}%` },
    { label: 'history (mean per 10s)', color: '#64748b', fmt: (v) => `${(v * 100).toFixed(2)}%`, dash: [4, 4] },
  ]);
  const redrawTrend = () => {
    trend.setData(alignSeries([live.points(), history]) as never);
    setText(trendNote, `${live.length} live sample${live.length === 1 ? '' : 's'} · ${history.length} history bucket${history.length === 1 ? '' : 's'}`);
  };
  let haveRealStats = false;

  const applyStats = (s: DashboardStats, real: boolean) => {
    if (!real && haveRealStats) return;
    haveRealStats ||= real;
    setText(byId('kpi-health'), formatPct(s.overall_health));
    setText(byId('kpi-machines'), formatInt(s.total_machines));
    setText(byId('kpi-cycles'), formatInt(s.total_cycles));
    setText(byId('kpi-defects'), formatInt(s.total_defects));
    setText(byId('kpi-defect-rate'), formatPct(s.defect_rate, 2));
    setText(byId('kpi-parts'), formatInt(s.parts_inspected));
    const counts = statusCounts(s.status_breakdown);
    for (const st of STATUSES) setText(byId(`status-${st}`).lastElementChild!, String(counts[st]));
    byId('kpis').dataset.filled = 'true';
    hnd.kpiUpdates++;
    hnd.stats = s;
    markFirstMeaningfulPaint(hnd);
    if (real) {
      renderUrgency(s);
      if (live.push(parseTime(s.timestamp) ?? Date.now(), s.defect_rate)) redrawTrend();
    }
  };

  const renderUrgency = (s: DashboardStats) => {
    clear(urgencyBox);
    if (!s.maintenance_alerts) {
      urgencyBox.append(h('p', { class: 'muted empty', text: 'No maintenance data yet.' }));
      return;
    }
    const u = urgencyDistribution(s.maintenance_alerts);
    if (u.total === 0) urgencyBox.append(h('p', { class: 'muted empty', id: 'urgency-empty', text: 'No open maintenance alerts.' }));
    for (const b of u.bars) {
      const bar = h('div', { class: `ubar u-${b.level}` });
      bar.style.width = `${(b.fraction * 100).toFixed(1)}%`;
      urgencyBox.append(h('div', { class: 'urow' }, h('span', { text: b.level }), h('div', { class: 'utrack' }, bar), h('b', { text: String(b.count) })));
    }
    urgencyBox.append(h('p', { class: 'muted small', text: `${u.open} open maintenance request${u.open === 1 ? '' : 's'}` }));
  };

  // ------------------------------------------------------------ machines
  const rows = new Map<string, { tr: HTMLTableRowElement; cells: HTMLTableCellElement[]; updated: string }>();
  const applyFilter = () => {
    const q = filter.value.trim().toLowerCase();
    for (const [id, r] of rows) r.tr.hidden = q !== '' && !id.toLowerCase().includes(q) && !(r.tr.dataset.status ?? '').toLowerCase().includes(q);
  };
  filter.addEventListener('input', applyFilter);

  const applyState = (s: TwinState) => {
    top.setFactory(s.factory_id ?? '');
    const ms = sortMachines(s.machines ?? []);
    const seen = new Set<string>();
    let order = 0;
    for (const m of ms) {
      seen.add(m.machine_id);
      let r = rows.get(m.machine_id);
      if (!r) {
        const cells = Array.from({ length: 8 }, () => h('td'));
        const tr = h('tr', { 'data-id': m.machine_id, onclick: () => detail.open(m.machine_id) }, ...cells) as HTMLTableRowElement;
        r = { tr, cells, updated: '' };
        rows.set(m.machine_id, r);
      }
      if (tbody.children[order] !== r.tr) tbody.insertBefore(r.tr, tbody.children[order] ?? null);
      order++;
      updateRow(r, m);
      hnd.machines[m.machine_id] = { status: m.status, color: statusColorHex(m.status), health: m.health_score, defects: m.defects, alert: false };
    }
    for (const [id, r] of rows) {
      if (!seen.has(id)) {
        r.tr.remove();
        rows.delete(id);
        delete hnd.machines[id];
      }
    }
    applyFilter();
    const open = detail.openId;
    if (open) {
      const m = ms.find((x) => x.machine_id === open);
      const key = m ? `${m.updated_at ?? ''}|${m.status}|${m.cycles}` : '';
      if (key !== lastDetailKey) {
        lastDetailKey = key;
        detail.refresh();
      }
    }
    if (!haveRealStats) applyStats(statsFromState(s), false);
  };
  let lastDetailKey = '';

  const updateRow = (r: { tr: HTMLTableRowElement; cells: HTMLTableCellElement[]; updated: string }, m: Machine) => {
    const key = `${m.status}|${m.health_score}|${m.cycles}|${m.defects}|${m.defect_rate}|${m.temperature}|${m.last_seen}`;
    if (key === r.updated) return;
    r.updated = key;
    const c = r.cells;
    r.tr.dataset.status = m.status;
    setText(c[0], m.machine_id);
    clear(c[1]);
    c[1].append(statusBadge(m.status));
    clear(c[2]);
    const hb = h('div', { class: 'hbar' }, h('i'));
    (hb.firstElementChild as HTMLElement).style.width = `${Math.max(0, Math.min(1, m.health_score)) * 100}%`;
    c[2].append(hb, h('span', { text: formatPct(m.health_score, 0) }));
    setText(c[3], formatInt(m.cycles));
    setText(c[4], formatInt(m.defects));
    setText(c[5], formatPct(m.defect_rate, 2));
    setText(c[6], m.temperature === null || m.temperature === undefined ? '—' : m.temperature.toFixed(1));
    setText(c[7], formatTime(m.last_seen));
  };

  // ------------------------------------------------------------ predictions + schedule
  const applyPredictions = (list: Prediction[] | null) => {
    clear(predBox);
    if (list === null) {
      predBox.append(h('p', { class: 'muted empty', id: 'predictions-empty', text: 'Predictive maintenance is not available yet.' }));
      return;
    }
    if (list.length === 0) {
      predBox.append(h('p', { class: 'muted empty', id: 'predictions-empty', text: 'No failure predictions.' }));
      return;
    }
    predBox.append(
      h(
        'table',
        { class: 'data' },
        h('thead', {}, h('tr', {}, ...['machine', 'p(failure)', 'time to failure', 'urgency', 'action'].map((c) => h('th', { text: c })))),
        h(
          'tbody',
          {},
          ...list.slice(0, 50).map((p) =>
            h(
              'tr',
              { onclick: () => detail.open(p.machine_id) },
              h('td', { text: p.machine_id }),
              h('td', { text: formatPct(p.failure_probability, 0) }),
              h('td', { text: p.time_to_failure_hours === null ? '—' : `${p.time_to_failure_hours.toFixed(1)} h` }),
              h('td', {}, h('span', { class: `urg u-${p.urgency}`, text: p.urgency })),
              h('td', { text: p.recommended_action }),
            ),
          ),
        ),
      ),
    );
  };

  const gantt = new GanttChart(ganttHost);
  const applySchedule = (s: Schedule | null) => {
    ganttNote.className = 'muted empty';
    const l = ganttLayout(s);
    ganttHost.hidden = l.bars.length === 0;
    ganttNote.hidden = l.bars.length !== 0;
    ganttNote.textContent = s === null ? 'Scheduling is not available yet.' : 'The current plan has no operations.';
    if (l.bars.length) {
      ganttNote.textContent = '';
      gantt.setLayout(l);
      ganttHost.dataset.plan = String(s?.plan_version ?? '');
      ganttHost.dataset.bars = String(l.bars.length);
      ganttHost.dataset.rows = String(l.rows.length);
      ganttHost.title = `plan ${s?.plan_version ?? '?'} · makespan ${fmtSpan(s?.makespan_ms ?? l.t1 - l.t0)}`;
    }
  };

  // ------------------------------------------------------------ data flow
  const safe = <T>(p: Promise<T>, what: string) =>
    p.catch((e) => {
      // Transient fetch failures are expected while the server restarts; surface as a warning only.
      console.warn(`twinline: ${what} failed:`, (e as Error).message);
      return null;
    });

  const loadRest = async () => {
    const [st, stats] = await Promise.all([safe(fetchState(), 'state'), safe(fetchStats(), 'stats')]);
    if (st) applyState(st);
    if (stats) applyStats(stats, true);
  };
  // Optional parts: 404 means "not there yet" (an empty state); any other answer from the server
  // is an error and shown as one; a network failure keeps what is shown (the server restarts).
  const optional = <T>(p: Promise<T | null>, what: string): Promise<T | null | ApiError | undefined> =>
    p.catch((e) => {
      if (e instanceof ApiError) {
        console.error(`twinline: ${what} failed:`, e.message);
        return e;
      }
      console.warn(`twinline: ${what} failed:`, (e as Error).message);
      return undefined;
    });
  const showError = (box: HTMLElement, id: string, e: ApiError) => {
    clear(box);
    box.append(h('p', { class: 'error', id, text: `Could not load: ${e.message}` }));
  };
  const loadSlow = async () => {
    const [p, s] = await Promise.all([optional(fetchPredictions(), 'predictions'), optional(fetchSchedule(), 'schedule')]);
    if (p instanceof ApiError) showError(predBox, 'predictions-error', p);
    else if (p !== undefined) applyPredictions(p === null ? null : normalisePredictions(p));
    if (s instanceof ApiError) {
      ganttHost.hidden = true;
      ganttNote.hidden = false;
      ganttNote.className = 'error';
      ganttNote.textContent = `Could not load the schedule: ${s.message}`;
    } else if (s !== undefined) {
      ganttNote.className = 'muted empty';
      applySchedule((s as Schedule | null) ?? null);
    }
  };
  const loadHistory = async () => {
    try {
      const r = await runQuery(FLEET_TREND_SQL);
      history = bucketAverage(rowsToPoints(r.rows, 'event_time', 'defect_rate'), 10_000);
    } catch (e) {
      if (!isMissingView(e)) console.warn('twinline: trend history query failed:', (e as Error).message);
      history = [];
    }
    redrawTrend();
  };

  let pollTimer: ReturnType<typeof setInterval> | null = null;
  const stream = new LiveStream(streamUrl(location), {
    onMessage(msg) {
      switch (msg.type) {
        case 'twin_state':
          applyState(msg.data);
          break;
        case 'dashboard_stats':
          applyStats(msg.data, true);
          break;
        case 'predictions':
          applyPredictions(normalisePredictions(msg.data));
          break;
        case 'schedule':
          applySchedule(msg.data);
          break;
        default:
          break;
      }
    },
    onState(s, retry) {
      hnd.connection = s;
      top.setConn(s, retry);
      if (s === 'connected' && pollTimer) {
        clearInterval(pollTimer);
        pollTimer = null;
      } else if (s !== 'connected' && !pollTimer) {
        pollTimer = setInterval(() => void loadRest(), POLL_MS);
      }
    },
  });

  void first
    .then(([st, stats]) => {
      if (st) applyState(st);
      if (stats) applyStats(stats, true);
      // Either failed (server still starting): fall back to the normal path with logging.
      return st && stats ? undefined : loadRest();
    })
    .then(() => {
      hnd.ready = true;
    });
  void loadSlow();
  void loadHistory();
  setInterval(() => void loadSlow(), SLOW_POLL_MS);
  setInterval(() => void loadHistory(), 60_000);
  stream.start();
  hnd.openMachine = (id: string) => detail.open(id);
}
