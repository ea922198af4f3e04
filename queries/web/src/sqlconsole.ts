// Read-only SQL console over the DataFusion views exposed by POST /api/v1/query.
import { ApiError, runQuery } from './api';
import { clear, h } from './dom';
import { formatTime } from './shape';
import type { QueryResult } from './types';

const EXAMPLES: [string, string][] = [
  ['twin_state', 'SELECT machine_id, status, health_score, cycles, defects FROM twin_state ORDER BY health_score ASC LIMIT 20'],
  ['history', 'SELECT machine_id, event_time, status, health_score, reason FROM twin_state_history ORDER BY event_time DESC LIMIT 50'],
  ['sensors', 'SELECT machine_id, sensor, avg(value) AS mean, count(*) AS n FROM sensor_readings GROUP BY machine_id, sensor ORDER BY machine_id, sensor LIMIT 100'],
  ['defects', 'SELECT * FROM defects LIMIT 50'],
  ['dead_letters', 'SELECT * FROM dead_letters LIMIT 50'],
];

export function cellText(v: unknown, type: string): string {
  if (v === null || v === undefined) return 'NULL';
  if (/timestamp/i.test(type) && (typeof v === 'string' || typeof v === 'number')) return formatTime(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function sqlConsole(): HTMLElement {
  const ta = h('textarea', { id: 'sql-input', spellcheck: 'false', rows: 4 }) as HTMLTextAreaElement;
  ta.value = EXAMPLES[0][1];
  const status = h('span', { class: 'muted', id: 'sql-status' });
  const out = h('div', { id: 'sql-result', class: 'table-wrap tall' });
  const runBtn = h('button', { class: 'btn', id: 'sql-run', text: 'Run ⌘↵' }) as HTMLButtonElement;
  let ac: AbortController | null = null;

  const run = async () => {
    const sql = ta.value.trim();
    if (!sql) return;
    ac?.abort();
    ac = new AbortController();
    runBtn.disabled = true;
    status.textContent = 'running…';
    clear(out);
    try {
      const r = await runQuery(sql, ac.signal);
      status.textContent = `${r.row_count} row${r.row_count === 1 ? '' : 's'}${r.truncated ? ' (truncated)' : ''} · ${r.elapsed_ms} ms`;
      out.append(resultTable(r));
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      status.textContent = '';
      const body = e instanceof ApiError ? e.body : null;
      out.append(
        h('div', { class: 'error', id: 'sql-error', role: 'alert' }, h('b', { text: body?.type ? `${body.type}: ` : 'Error: ' }), body?.error ?? (e as Error).message, body?.detail ? h('pre', { text: body.detail }) : null),
      );
    } finally {
      runBtn.disabled = false;
    }
  };
  runBtn.addEventListener('click', () => void run());
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void run();
    }
  });
  const chips = h(
    'div',
    { class: 'chips' },
    ...EXAMPLES.map(([label, sql]) =>
      h('button', {
        class: 'chip',
        text: label,
        onclick: () => {
          ta.value = sql;
          void run();
        },
      }),
    ),
  );
  return h('div', { class: 'sql' }, chips, ta, h('div', { class: 'sql-bar' }, runBtn, status), out);
}

function resultTable(r: QueryResult): HTMLElement {
  if (r.rows.length === 0) return h('p', { class: 'muted empty', text: 'Query returned no rows.' });
  const cols = r.columns.length ? r.columns : Object.keys(r.rows[0]).map((name) => ({ name, type: '' }));
  return h(
    'table',
    { class: 'data' },
    h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { title: c.type, text: c.name })))),
    h('tbody', {}, ...r.rows.map((row) => h('tr', {}, ...cols.map((c) => h('td', { text: cellText(row[c.name], c.type) }))))),
  );
}
