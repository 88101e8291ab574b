// The API's answers as the page reads them (snake_case, as on the wire; see openapi.json).

export const STATES = [
  'IDLE',
  'PREPARE',
  'BACKUP',
  'UPGRADE_BACKUP',
  'VIP_SWITCH',
  'UPGRADE_MASTER',
  'VERIFY',
  'COMPLETE',
  'ROLLBACK',
  'CANCELLED',
  'FAILED',
  'TIMEOUT',
  'UNREACHABLE',
] as const;
export type State = (typeof STATES)[number];

export const FINAL: readonly State[] = ['COMPLETE', 'CANCELLED', 'FAILED', 'TIMEOUT', 'UNREACHABLE'];

export interface Task {
  task_id: string;
  state: State;
  final: boolean;
  percent: number;
  current_step: string | null;
  last_message: string | null;
  error: { code: string; message: string; step: string | null } | null;
  from_version: string | null;
  to_version: string;
  package_sha256: string;
  primary_before: string | null;
  primary_after: string | null;
  downtime_ms: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  cancel_requested_at: string | null;
  cancel_reason: string | null;
  requested_by: string | null;
}

export interface Progress extends Task {
  finished_steps: {
    step: string;
    node_id: string | null;
    status: string;
    message: string;
    percent: number;
    at: string;
    duration_ms: number | null;
  }[];
  elapsed_ms: number | null;
  estimated_completion_at: string | null;
}

export interface LogLine {
  at: string;
  level: 'INFO' | 'WARNING' | 'ERROR';
  source: string;
  message: string;
  from_state: State | null;
  to_state: State | null;
}

export interface NodeHealth {
  id: string;
  address: string;
  reachable: boolean;
  error: string | null;
  version: string | null;
  app: { healthy: boolean | null; http_status: number | null; detail: string | null };
  keepalived: { role: string | null; priority: number | null; holds_vip: boolean | null };
  database: {
    role: string | null;
    streaming: boolean | null;
    in_sync: boolean | null;
    lag_bytes: number | null;
    detail: string | null;
  };
  rsync: { paused: boolean | null; last_sync_at: string | null; last_result: string | null };
}

export interface PairReport {
  status: 'ok' | 'degraded' | 'down';
  timestamp: string;
  reasons: string[];
  nodes: NodeHealth[];
}

export interface Snapshot {
  task: Progress | null;
  visited: State[];
  logs: LogLine[];
  log_total: number;
  pair: PairReport | null;
}

export interface TaskEvent {
  task: Progress;
  visited: State[];
}

export interface LogEvent {
  task_id: string;
  lines: LogLine[];
  total: number;
}

export interface PackagePolicy {
  max_package_bytes: number;
  signing_keys: { key_id: string; spki: string }[];
}

export interface Page<T> {
  items: T[];
  page: number;
  page_size: number;
  total: number;
}
