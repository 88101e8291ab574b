// The node agent's wire contract: one JSON command in on stdin, one JSON answer out on stdout.
// The orchestrator (through the SSH transport or the in-process fake nodes) and the agent both
// import these types, so the two sides cannot drift. Every operation is fixed; arguments are
// names and numbers the agent validates, never a command line.

/** Keepalived's VRRP state as the agent reads it. */
export type VrrpState = 'MASTER' | 'BACKUP' | 'FAULT' | 'STOPPED' | 'UNKNOWN';

/** Which side of the database pair a node is on. */
export type DatabaseRole = 'primary' | 'standby' | 'unknown';

export interface ReplicationStatusResult {
  role: DatabaseRole;
  /** Primary: at least one standby streaming from it. Standby: its WAL receiver streams. */
  connected: boolean;
  /** Standbys streaming from this primary (0 on a standby). */
  standbys: number;
  /** connected, and no replay lag at all. */
  inSync: boolean;
  /** Primary: current WAL position minus the slowest standby's replay position; standby: received minus replayed. */
  lagBytes: number | null;
  /** Replay lag in milliseconds (primary: pg_stat_replication.replay_lag; standby: age of the last replayed transaction while behind). */
  lagMs: number | null;
  /** Primary: current WAL position; standby: last replayed position (`X/Y`). */
  lsn: string | null;
  /** Where peers reach this database (the agent's configured host and port). */
  endpoint: { host: string; port: number };
  detail: string;
}

export type BackupKind = 'jar' | 'config' | 'root_key' | 'database';

export interface BackupFile {
  kind: BackupKind;
  /** Absolute path on the node. */
  path: string;
  sizeBytes: number;
  md5: string;
  sha256: string;
}

export interface CheckResult {
  ok: boolean;
  durationMs: number;
  /** A stable, human-readable reason; never a raw driver or stack text. */
  detail?: string;
}

/** Every operation with its arguments (`args`) and its answer (`result`). */
export interface AgentOperations {
  /** Database connection, service ports, keepalived, the node's HTTP /health. */
  health: {
    args: Record<string, never>;
    result: {
      ok: boolean;
      /** Version the node's HTTP /health reports, when it answered. */
      version: string | null;
      database: CheckResult & { role: DatabaseRole };
      ports: (CheckResult & { service: string; port: number })[];
      keepalived: CheckResult & { state: VrrpState; holdsVip: boolean };
      http: CheckResult & { status: number | null };
    };
  };
  /** Backs up jar, config dir (with the root key) and a full database dump under `backupId`. */
  'backup.create': {
    args: { backupId: string; retention: number };
    result: { backupId: string; dir: string; files: BackupFile[]; removed: string[] };
  };
  /** Re-hashes a backup's files against the checksums given (those recorded at backup time). */
  'backup.verify': {
    args: { backupId: string; files: Pick<BackupFile, 'kind' | 'path' | 'md5' | 'sha256'>[] };
    result: { ok: boolean; mismatches: { kind: BackupKind; path: string; reason: string }[] };
  };
  /** Restores jar, config + root key and the database from a backup (services must be stopped). */
  'backup.restore': {
    args: { backupId: string; kinds: BackupKind[] };
    result: { restored: BackupKind[] };
  };
  /** Sets this node's keepalived priority and reloads it. */
  'keepalived.set_priority': {
    args: { priority: number };
    result: { previous: number; current: number };
  };
  'keepalived.status': {
    args: Record<string, never>;
    result: { state: VrrpState; priority: number; holdsVip: boolean; vip: string };
  };
  /** Config sync (rsync from the primary): pause stops further syncs until resume. */
  'rsync.pause': { args: Record<string, never>; result: { paused: true } };
  'rsync.resume': { args: Record<string, never>; result: { paused: false } };
  'rsync.status': {
    args: Record<string, never>;
    result: { paused: boolean; lastSyncAt: string | null; lastResult: 'ok' | 'failed' | null };
  };
  /**
   * Makes the synced config dir's files and the root key read-only until `config.unlock`, recording
   * each file's mode and SHA-256 first (in the staging dir). Locking a locked node keeps the first
   * record's modes.
   */
  'config.lock': {
    args: { owner: string };
    result: { locked: true; files: number; alreadyLocked: boolean };
  };
  /** Puts the recorded modes back; `changed` names files whose content changed while locked. */
  'config.unlock': {
    args: Record<string, never>;
    result: { locked: false; files: number; changed: string[]; wasLocked: boolean };
  };
  /** SHA-256 of every file under the synced config dir, and one digest over all of them. */
  'config.checksums': {
    args: Record<string, never>;
    result: { digest: string; files: Record<string, string> };
  };
  /** `service` is a name from the agent's own config, never a unit string from the caller. */
  'service.stop': { args: { service: string }; result: { service: string; active: boolean } };
  'service.start': { args: { service: string }; result: { service: string; active: boolean } };
  'service.status': {
    args: { service: string };
    result: { service: string; active: boolean; version: string | null };
  };
  /** Installs a jar previously staged with `putFile`, checked against its SHA-256. */
  'jar.install': {
    args: { stagedName: string; sha256: string; version: string };
    result: { version: string; path: string; previousVersion: string | null };
  };
  /** Runs a staged SQL schema-change script with the configured database client. */
  'schema.apply': {
    args: { stagedName: string; sha256: string };
    result: { applied: boolean; durationMs: number };
  };
  /**
   * The database pair as this node sees it. On the primary: standbys streaming from it (from
   * pg_stat_replication) and how far the slowest one has replayed; on a standby: whether its WAL
   * receiver streams from a primary and how far replay is behind what it received. `inSync` is
   * `connected` with no lag at all; the orchestrator judges lag against its own bounds.
   */
  'replication.status': {
    args: Record<string, never>;
    result: ReplicationStatusResult;
  };
  /** Free space in the backup dir against what backup.create would write (an estimate). */
  'backup.space': {
    args: Record<string, never>;
    result: { dir: string; freeBytes: number; neededBytes: number };
  };
  /**
   * Fences writes for a switchover: stops the database cleanly (clients are refused; a primary's
   * WAL senders ship everything up to the shutdown checkpoint first) and returns that checkpoint's
   * LSN, the last WAL position a standby must have replayed before it is promoted.
   */
  'database.fence': { args: Record<string, never>; result: { lastLsn: string; wasRunning: boolean } };
  /** Undoes a fence: starts the database again as it was (no-op when it runs). */
  'database.unfence': { args: Record<string, never>; result: { started: boolean } };
  /** Promotes this standby; a checkpoint follows so a peer can pg_rewind against it at once. */
  'database.promote': { args: Record<string, never>; result: { promoted: boolean; lsn: string } };
  /**
   * Turns this node's database into a standby of `primaryHost:primaryPort`: stopped cleanly,
   * pg_rewind when its history diverged (configured rewind client), standby.signal and
   * primary_conninfo written, started, and its WAL receiver seen streaming.
   */
  'database.follow': {
    args: { primaryHost: string; primaryPort: number };
    result: { rewound: boolean; streaming: boolean; detail: string };
  };
  /** Removes this task's staged files. */
  'staging.clean': { args: { prefix: string }; result: { removed: string[] } };
}

export type AgentOp = keyof AgentOperations;
export type ArgsOf<O extends AgentOp> = AgentOperations[O]['args'];
export type ResultOf<O extends AgentOp> = AgentOperations[O]['result'];

/** What the orchestrator writes to the agent's stdin. */
export interface AgentRequest<O extends AgentOp = AgentOp> {
  op: O;
  args: ArgsOf<O>;
  /** The agent gives up (and says TIMEOUT) after this long. */
  timeoutMs: number;
  /** Echoed back, and logged on the node, so both sides' logs can be joined. */
  requestId: string;
}

/** What the agent writes to stdout: exactly one line of JSON. */
export type AgentResponse<O extends AgentOp = AgentOp> =
  | { ok: true; requestId: string; op: O; result: ResultOf<O>; durationMs: number }
  | {
      ok: false;
      requestId: string;
      op: O | null;
      /** A code from @upgrade/core's ERROR_CODES (VALIDATION_FAILED, FORBIDDEN, TIMEOUT, ...). */
      error: { code: string; message: string; retryable: boolean };
      durationMs: number;
    };
