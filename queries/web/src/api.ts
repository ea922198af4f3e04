// HTTP client for the read API. Endpoints that other streams have not shipped
// yet answer 404: getOptional() turns that into null so views show an empty
// state instead of an error.
import type { ApiErrorBody, DashboardStats, MachineDetail, QueryResult, TwinState } from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody | null,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

async function readError(res: Response): Promise<ApiError> {
  let body: ApiErrorBody | null = null;
  try {
    const j = (await res.json()) as Partial<ApiErrorBody>;
    if (j && typeof j.error === 'string') body = { error: j.error, detail: j.detail, type: j.type };
  } catch {
    // Non-JSON error page (proxy, crash): keep the HTTP status only.
  }
  const msg = body ? `${body.error}${body.detail ? `: ${body.detail}` : ''}` : `HTTP ${res.status} ${res.statusText}`;
  return new ApiError(res.status, body, msg);
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { headers: { Accept: 'application/json' }, signal });
  if (!res.ok) throw await readError(res);
  return (await res.json()) as T;
}

/** null when the endpoint does not exist (404/501) or returns no body. */
export async function getOptional<T>(path: string, signal?: AbortSignal): Promise<T | null> {
  const res = await fetch(path, { headers: { Accept: 'application/json' }, signal });
  if (res.status === 404 || res.status === 501 || res.status === 204) return null;
  if (!res.ok) throw await readError(res);
  const text = await res.text();
  return text.trim() === '' ? null : (JSON.parse(text) as T);
}

export const fetchState = (signal?: AbortSignal) => getJson<TwinState>('/api/v1/digital-twin/state', signal);
export const fetchStats = (signal?: AbortSignal) => getJson<DashboardStats>('/api/v1/dashboard/stats', signal);
export const fetchMachine = (id: string, signal?: AbortSignal) => getJson<MachineDetail>(`/api/v1/digital-twin/machines/${encodeURIComponent(id)}`, signal);
export const fetchPredictions = (signal?: AbortSignal) => getOptional<unknown>('/api/v1/predictive/predictions', signal);
export const fetchSchedule = (signal?: AbortSignal) => getOptional<unknown>('/api/v1/scheduling/schedule', signal);

export async function runQuery(sql: string, signal?: AbortSignal): Promise<QueryResult> {
  const res = await fetch('/api/v1/query', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ sql }),
    signal,
  });
  if (!res.ok) throw await readError(res);
  return (await res.json()) as QueryResult;
}

/** A view that does not exist yet (later streams) reads as "no rows", not as a failure. */
export function isMissingView(e: unknown): boolean {
  if (!(e instanceof ApiError)) return false;
  const text = `${e.body?.error ?? ''} ${e.body?.detail ?? ''}`.toLowerCase();
  return e.status === 404 || /not found|does not exist|no table/.test(text);
}
