// Machine detail drawer shared by the dashboard and the 3D view: the machine
// object and its recent history from the REST endpoint, plus a health chart
// from a SQL query over twin_state_history.
import { fetchMachine, isMissingView, runQuery } from './api';
import { LineChart } from './chart';
import { clear, h } from './dom';
import { alignSeries, formatInt, formatPct, formatTime, machineHistorySql, num, parseTime, rowsToPoints, type Point } from './shape';
import { statusColorHex } from './status';
import type { HistoryEntry, MachineDetail } from './types';

export function statusBadge(status: string): HTMLElement {
  const b = h('span', { class: 'badge', text: status || '?' });
  b.style.setProperty('--c', statusColorHex(status));
  return b;
}

export class DetailPanel {
  readonly root: HTMLElement;
  private body: HTMLElement;
  private title: HTMLElement;
  private chart: LineChart | null = null;
  private current: string | null = null;
  private abort: AbortController | null = null;

  constructor() {
    this.title = h('h2', { text: '' });
    this.body = h('div', { class: 'drawer-body' });
    this.root = h(
      'aside',
      { class: 'drawer', id: 'detail', 'aria-hidden': 'true' },
      h('div', { class: 'drawer-head' }, this.title, h('button', { class: 'btn ghost', id: 'detail-close', onclick: () => this.close(), text: '✕' })),
      this.body,
    );
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.close();
    });
  }

  get openId(): string | null {
    return this.current;
  }

  close(): void {
    this.current = null;
    this.abort?.abort();
    this.root.classList.remove('open');
    this.root.setAttribute('aria-hidden', 'true');
  }

  /** Re-fetch when a push says the open machine changed. */
  refresh(): void {
    if (this.current) void this.load(this.current, false);
  }

  open(id: string): void {
    this.current = id;
    this.root.classList.add('open');
    this.root.setAttribute('aria-hidden', 'false');
    this.title.textContent = id;
    clear(this.body);
    this.chart?.destroy();
    this.chart = null;
    this.body.append(h('p', { class: 'muted', text: 'Loading…' }));
    void this.load(id, true);
  }

  private async load(id: string, fresh: boolean): Promise<void> {
    this.abort?.abort();
    const ac = new AbortController();
    this.abort = ac;
    let detail: MachineDetail;
    try {
      detail = await fetchMachine(id, ac.signal);
    } catch (e) {
      if (ac.signal.aborted || this.current !== id) return;
      clear(this.body);
      this.body.append(h('p', { class: 'error', text: `Could not load ${id}: ${(e as Error).message}` }));
      return;
    }
    if (this.current !== id) return;
    const sqlPoints = await this.sqlHistory(id, ac.signal);
    if (this.current !== id || ac.signal.aborted) return;
    this.render(detail, sqlPoints, fresh);
  }

  private async sqlHistory(id: string, signal: AbortSignal): Promise<{ health: Point[]; defectRate: Point[]; rows: number } | { error: string; missing: boolean }> {
    try {
      const r = await runQuery(machineHistorySql(id), signal);
      return { health: rowsToPoints(r.rows, 'event_time', 'health_score'), defectRate: rowsToPoints(r.rows, 'event_time', 'defect_rate'), rows: r.row_count };
    } catch (e) {
      const missing = isMissingView(e);
      return { error: missing ? 'twin_state_history not available' : `History query failed: ${(e as Error).message}`, missing };
    }
  }

  private render(d: MachineDetail, sql: Awaited<ReturnType<DetailPanel['sqlHistory']>>, fresh: boolean): void {
    const scroll = this.body.scrollTop;
    this.chart?.destroy();
    this.chart = null;
    clear(this.body);
    const field = (k: string, v: string) => h('div', { class: 'field' }, h('span', { text: k }), h('b', { text: v }));
    const fmtNum = (v: unknown, digits = 2) => (v === null || v === undefined ? '—' : num(v).toFixed(digits));
    this.body.append(
      h('div', { class: 'detail-status' }, statusBadge(d.status), d.reason ? h('span', { class: 'muted', text: d.reason }) : null),
      h(
        'div',
        { class: 'fields' },
        field('Health', formatPct(d.health_score)),
        field('Cycles', formatInt(d.cycles)),
        field('Defects', formatInt(d.defects)),
        field('Parts inspected', formatInt(d.parts_inspected)),
        field('Defect rate', formatPct(d.defect_rate, 2)),
        field('Temperature', fmtNum(d.temperature, 1)),
        field('Vibration', fmtNum(d.vibration)),
        field('Pressure', fmtNum(d.pressure)),
        field('Speed', fmtNum(d.speed, 1)),
        field('Last seen', formatTime(d.last_seen)),
      ),
    );
    const chartBox = h('div', { class: 'chart small', id: 'detail-history-chart' });
    this.body.append(h('h3', { text: 'Health (twin_state_history)' }));
    if ('error' in sql) {
      this.body.append(h('p', { class: sql.missing ? 'muted' : 'error', id: 'detail-history-error', text: sql.error }));
    } else if (sql.health.length === 0) {
      this.body.append(h('p', { class: 'muted empty', text: 'No history rows yet.' }));
    } else {
      this.body.append(chartBox);
      this.chart = new LineChart(chartBox, [
        { label: 'health', color: '#38bdf8', fmt: (v) => `${(v * 100).toFixed(0)}%` },
        { label: 'defect rate', color: '#f97316', fmt: (v) => `${(v * 100).toFixed(1)}%`, dash: [4, 3] },
      ], 160);
      this.chart.setData(alignSeries([sql.health, sql.defectRate]) as never);
      chartBox.dataset.rows = String(sql.rows);
      chartBox.dataset.points = String(sql.health.length);
    }
    this.body.append(h('h3', { text: `Recent events (${d.history?.length ?? 0})` }), historyTable(d.history ?? []));
    if (!fresh) this.body.scrollTop = scroll;
  }
}

function historyTable(rows: HistoryEntry[]): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'muted empty', text: 'No events recorded.' });
  const sorted = [...rows].sort((a, b) => (parseTime(b.event_time) ?? 0) - (parseTime(a.event_time) ?? 0));
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'data' },
      h('thead', {}, h('tr', {}, ...['time', 'status', 'health', 'cycles', 'defects', 'reason'].map((c) => h('th', { text: c })))),
      h(
        'tbody',
        {},
        ...sorted.slice(0, 100).map((r) =>
          h('tr', {}, h('td', { text: formatTime(r.event_time) }), h('td', {}, statusBadge(r.status)), h('td', { text: formatPct(r.health_score, 0) }), h('td', { text: formatInt(r.cycles) }), h('td', { text: formatInt(r.defects) }), h('td', { text: r.reason ?? '' })),
        ),
      ),
    ),
  );
}
