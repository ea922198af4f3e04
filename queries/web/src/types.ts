// API contract of twinline's read API (queries crate). Times may arrive as
// RFC3339 strings or epoch milliseconds, so they are typed loosely here and
// normalised with parseTime() where the UI needs numbers.

export type Status = 'IDLE' | 'RUNNING' | 'WARNING' | 'ERROR' | 'MAINTENANCE' | 'OFFLINE';
export const STATUSES: readonly Status[] = ['RUNNING', 'IDLE', 'WARNING', 'ERROR', 'MAINTENANCE', 'OFFLINE'];

export type TimeLike = string | number | null | undefined;

export interface Machine {
  machine_id: string;
  status: string;
  health_score: number;
  cycles: number;
  defects: number;
  parts_inspected: number;
  defect_rate: number;
  temperature?: number | null;
  vibration?: number | null;
  pressure?: number | null;
  speed?: number | null;
  last_seen?: TimeLike;
  updated_at?: TimeLike;
  reason?: string | null;
}

export interface StateStatistics {
  total_machines: number;
  status_counts: Partial<Record<Status, number>>;
  average_health: number;
  total_cycles: number;
  total_defects: number;
  parts_inspected: number;
  defect_rate: number;
}

export interface TwinState {
  factory_id: string;
  timestamp: TimeLike;
  machines: Machine[];
  statistics: StateStatistics;
}

export interface HistoryEntry {
  event_id?: string;
  event_time: TimeLike;
  status: string;
  health_score: number;
  cycles: number;
  defects: number;
  reason?: string | null;
}

export interface MachineDetail extends Machine {
  history: HistoryEntry[];
}

export interface MaintenanceAlerts {
  critical: number;
  high: number;
  medium: number;
  low: number;
  open_requests: number;
}

export interface DashboardStats {
  timestamp: TimeLike;
  overall_health: number;
  total_machines: number;
  status_breakdown: Partial<Record<Status, number>>;
  total_cycles: number;
  total_defects: number;
  parts_inspected: number;
  defect_rate: number;
  maintenance_alerts?: Partial<MaintenanceAlerts> | null;
}

export interface QueryColumn {
  name: string;
  type: string;
}

export interface QueryResult {
  columns: QueryColumn[];
  rows: Record<string, unknown>[];
  row_count: number;
  truncated: boolean;
  elapsed_ms: number;
}

export interface ApiErrorBody {
  error: string;
  detail?: string;
  type?: string;
}

export interface Prediction {
  machine_id: string;
  failure_probability: number;
  time_to_failure_hours: number | null;
  urgency: string;
  recommended_action: string;
  event_time: TimeLike;
}

export interface ScheduleOperation {
  job_id: string;
  operation_index: number;
  machine_id: string;
  start: TimeLike;
  end: TimeLike;
}

export interface Schedule {
  plan_version: string | number;
  makespan_ms: number;
  operations: ScheduleOperation[];
}

export type StreamMessage =
  | { type: 'hello'; [k: string]: unknown }
  | { type: 'twin_state'; data: TwinState }
  | { type: 'dashboard_stats'; data: DashboardStats }
  | { type: 'predictions'; data: { predictions: Prediction[] } | Prediction[] }
  | { type: 'schedule'; data: Schedule };
