// The narrow interfaces the round flow needs. Adapters implement them; the flow never sees
// vendor field names, SQL or HTTP.
import type { RotationState } from '@upgrade/core';

/** One firmware build the rotation hands out. */
export interface FirmwareFile {
  /** The file name the vendor cloud knows the build by, e.g. `RCU_V2.3.1.bin`. */
  filename: string;
  /** The vendor's file type code (firmware image, configuration, ...). */
  fileType: number;
}

/** A set of hosts of one room type, upgraded by one vendor call. */
export interface HostGroup {
  roomTypeId: number;
  hosts: string[];
}

/** Host states of one upgrade. Only the last three are final and logged. */
export type HostStatus = 'pending' | 'running' | 'completed' | 'failed' | 'timeout';
export type FinalHostStatus = 'completed' | 'failed' | 'timeout';

export const isFinalStatus = (s: HostStatus): s is FinalHostStatus =>
  s === 'completed' || s === 'failed' || s === 'timeout';

/** What the vendor says about one host of an upgrade. */
export interface HostProgress {
  host: string;
  status: HostStatus;
  /** 0-100 */
  progress: number;
  configVersion: string | null;
  firmwareVersion: string | null;
  /** The vendor's own words about a failure, when it gives any. */
  message: string | null;
}

/** The vendor cloud. Errors are UpgradeErrors: VENDOR_CONTRACT_VIOLATION (answer not per spec),
 * NOT_FOUND (the vendor does not know the uuid), UNREACHABLE / UNAVAILABLE / TIMEOUT (transient,
 * after the adapter's own bounded retries), VALIDATION_FAILED (the vendor refused the request). */
export interface VendorApi {
  /** `Upgrade_V2`: starts upgrading `hosts` to `file`; answers the upgrade's uuid. */
  triggerUpgrade(
    request: { group: HostGroup; file: FirmwareFile },
    signal?: AbortSignal,
  ): Promise<{ uuid: string }>;
  /** `QueryUpdateHostProgressBar`: where each host of the upgrade stands. */
  queryProgress(uuid: string, signal?: AbortSignal): Promise<HostProgress[]>;
}

/** One row of `upgrade_log`: a host that reached a final state. */
export interface UpgradeLogEntry {
  roundId: string;
  uuid: string | null;
  roomTypeId: number;
  host: string;
  filename: string;
  fileType: number;
  status: FinalHostStatus;
  startTime: Date;
  endTime: Date;
  configVersion: string | null;
  firmwareVersion: string | null;
  /** Why a host failed or timed out, in our words (vendor error, spec violation, restart). */
  detail: string | null;
}

/** A group of a round as it is recorded while the round runs. */
export interface RoundGroup {
  roomTypeId: number;
  hosts: string[];
  /** The vendor's uuid, once the trigger answered. */
  uuid: string | null;
  /** Why the trigger failed, when it did: the group's hosts are logged failed with it. */
  triggerError: string | null;
}

export type RoundStatus = 'running' | 'finished';
export type RoundTrigger = 'schedule' | 'manual' | 'recovery';

/** A round as recorded when it starts, so a crash never loses it. */
export interface RoundRecord {
  id: string;
  /** The schedule slot (start of the interval it belongs to, ms); null for a manual round. */
  slot: number | null;
  trigger: RoundTrigger;
  filename: string;
  fileType: number;
  /** The rotation state to persist once this round is finished and logged. */
  rotationAfter: RotationState;
  status: RoundStatus;
  startedAt: Date;
  finishedAt: Date | null;
  groups: RoundGroup[];
}

/** Counts of a finished round, for status pages. */
export interface RoundSummary {
  total: number;
  completed: number;
  failed: number;
  timeout: number;
}

/** The storage the round flow needs. Every method is one short statement or transaction. */
export interface RoundStore {
  /** The persisted rotation, or null before the first finished round. */
  loadRotation(): Promise<RotationState | null>;
  /** Records a round before its first vendor call. CONFLICT when a round already holds its slot. */
  startRound(round: RoundRecord): Promise<void>;
  /** Records a group's trigger outcome as soon as the vendor answered. */
  recordTrigger(
    roundId: string,
    roomTypeId: number,
    outcome: { uuid: string } | { error: string },
  ): Promise<void>;
  /**
   * In one transaction: writes the log rows, marks the round finished and persists its
   * `rotationAfter`. Idempotent per round: a retry after an unclear failure never doubles rows.
   */
  finishRound(roundId: string, entries: UpgradeLogEntry[], finishedAt: Date): Promise<void>;
  /** Rounds recorded as running: left by a crash or a restart. */
  unfinishedRounds(): Promise<RoundRecord[]>;
}

/**
 * Results of a finished round waiting for the database: written to local disk before the
 * database is tried, so a round whose results could not be stored survives a restart.
 */
export interface ResultSpool {
  put(roundId: string, batch: SpooledResult): Promise<void>;
  list(): Promise<SpooledResult[]>;
  remove(roundId: string): Promise<void>;
}

export interface SpooledResult {
  roundId: string;
  finishedAt: Date;
  entries: UpgradeLogEntry[];
}

/** A round as the API lists it. */
export interface RoundView {
  id: string;
  trigger: RoundTrigger;
  status: RoundStatus;
  filename: string;
  fileType: number;
  startedAt: Date;
  finishedAt: Date | null;
  groups: { roomTypeId: number; uuid: string | null; hosts: number; triggerError: string | null }[];
  /** Counts from `upgrade_log`; all zero while the round runs. */
  summary: RoundSummary;
}

export interface RoundDetail extends RoundView {
  results: UpgradeLogEntry[];
}

/** Attempts and outcome of one firmware file or one host over a window. */
export interface StatsRow {
  key: string;
  attempts: number;
  completed: number;
  failed: number;
  timeout: number;
  /** completed / attempts, 0..1 */
  successRate: number;
  /** Upgrade duration (end - start) of completed attempts, ms; null without any. */
  p50DurationMs: number | null;
  p95DurationMs: number | null;
}

export interface Stats {
  since: Date;
  byFirmware: StatsRow[];
  byHost: StatsRow[];
}

/** Read side for the API and the report CLI. */
export interface RoundQueries {
  listRounds(page: { page: number; pageSize: number }): Promise<{ items: RoundView[]; total: number }>;
  /** By round id or by a vendor uuid of one of its groups. */
  getRound(idOrUuid: string): Promise<RoundDetail | null>;
  stats(since: Date): Promise<Stats>;
}

/** How trend points are cut: one per finished round, or one per UTC day. */
export type TrendBucket = 'round' | 'day';

/** Attempts and outcome of one bucket, with the durations of its completed attempts. */
export interface TrendPoint {
  /** The round's start, or the start of the UTC day. */
  at: Date;
  /** The round, when points are per round. */
  roundId: string | null;
  attempts: number;
  completed: number;
  /** completed / attempts, 0..1 */
  successRate: number;
  p50DurationMs: number | null;
  p90DurationMs: number | null;
  p99DurationMs: number | null;
}

/** One firmware file's or one room type's share of a bucket. */
export interface TrendShare {
  at: Date;
  /** The firmware file name, or the room type id as text. */
  key: string;
  attempts: number;
  completed: number;
  successRate: number;
}

export interface Trends {
  bucket: TrendBucket;
  /** Oldest first. */
  overall: TrendPoint[];
  byFirmware: TrendShare[];
  byRoomType: TrendShare[];
}

/** A host that failed or timed out at least once in the window. */
export interface FailingHost {
  host: string;
  /** The room type of its latest attempt. */
  roomTypeId: number;
  attempts: number;
  failed: number;
  timeout: number;
  /** (failed + timeout) / attempts, 0..1 */
  failureRate: number;
  lastFailureAt: Date;
  /** Why its latest failure happened, when known. */
  lastDetail: string | null;
}

/** Aggregations over the upgrade log for the console: each one bounded statement. */
export interface TrendQueries {
  /** The last `limit` finished rounds, or the last `limit` UTC days up to `now`. */
  trends(options: { bucket: TrendBucket; limit: number; now: Date }): Promise<Trends>;
  /** Hosts with failures since `since`, most failures first, at most `limit`. */
  failingHosts(options: { since: Date; limit: number }): Promise<FailingHost[]>;
}
