// What the API answers, as the page reads it (see openapi.json for the full description).

export type HostState = 'pending' | 'running' | 'completed' | 'failed' | 'timeout';

export interface Summary {
  total: number;
  completed: number;
  failed: number;
  timeout: number;
}

export interface LiveGroup {
  roomTypeId: number;
  uuid: string | null;
  triggerError: string | null;
  hosts: { host: string; status: HostState; progress: number }[];
}

export interface LiveRound {
  roundId: string;
  filename: string;
  trigger: 'schedule' | 'manual' | 'recovery';
  resumed: boolean;
  startedAt: string;
  phase: 'running' | 'storing' | 'finished';
  groups: LiveGroup[];
  final: number;
  total: number;
  summary: Summary | null;
  stored: boolean | null;
  finishedAt: string | null;
}

export interface Snapshot {
  round: LiveRound | null;
  nextTickAt: string | null;
}

export interface GroupChange {
  roundId: string;
  group: LiveGroup;
  final: number;
  total: number;
}

export interface RoundView {
  id: string;
  trigger: 'schedule' | 'manual' | 'recovery';
  status: 'running' | 'finished';
  filename: string;
  startedAt: string;
  finishedAt: string | null;
  summary: Summary;
}

export interface RoundPage {
  items: RoundView[];
  total: number;
  page: number;
  pageSize: number;
}

export interface TrendPoint {
  at: string;
  roundId: string | null;
  attempts: number;
  completed: number;
  successRate: number;
  p50DurationMs: number | null;
  p90DurationMs: number | null;
  p99DurationMs: number | null;
}

export interface TrendShare {
  at: string;
  key: string;
  attempts: number;
  completed: number;
  successRate: number;
}

export interface Trends {
  bucket: 'round' | 'day';
  overall: TrendPoint[];
  byFirmware: TrendShare[];
  byRoomType: TrendShare[];
}

export interface FailingHost {
  host: string;
  roomTypeId: number;
  attempts: number;
  failed: number;
  timeout: number;
  failureRate: number;
  lastFailureAt: string;
  lastDetail: string | null;
}

export interface FailingHosts {
  since: string;
  items: FailingHost[];
}
