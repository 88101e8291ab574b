// The one in-process fake of the HA pair: two simulated nodes behind the NodeClient port, with the
// state the real agent manages and the rules the real parts follow, driven by the injected clock:
//  - the jar installed vs. the version each running service loaded at its start (like a JVM);
//  - keepalived: the running node with the highest priority takes the VIP, `vipMoveDelayMs` after
//    a priority change (ties keep the current holder);
//  - the database: a primary (where schema scripts run; a standby refuses them) and a standby that
//    catches up `replicationCatchUpMs` after each change on the primary;
//  - config sync: the node without the VIP pulls the holder's config dir every `rsyncIntervalMs`
//    unless its sync is paused (the root key lives outside the synced dir, as on the nodes);
//  - backups with real MD5 / SHA-256 over their content, retention, verify and restore;
//  - staged files with their real SHA-256 (putFile reads the local file).
// It fails the way the real transport and agent fail: UpgradeErrors with the agent's codes,
// UNREACHABLE when the node cannot be reached, TIMEOUT when a call outlives its timeoutMs, the
// abort reason when the caller's signal aborts. Faults are injected per op and node.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UpgradeError, abortError, type Clock, type ErrorCode } from '@upgrade/core';
import type {
  AgentOp,
  ArgsOf,
  BackupFile,
  BackupKind,
  DatabaseRole,
  ResultOf,
  VrrpState,
} from '../../src/agent/protocol.js';
import type { CallOptions, Cluster, NodeClient } from '../../src/ports.js';

export type FakeOp = AgentOp | 'putFile';

export type FaultEffect =
  /** The agent answers with this error code. */
  | { type: 'fail'; code: ErrorCode; message?: string }
  /** No answer: TIMEOUT at the call's timeoutMs, or the abort reason of its signal. */
  | { type: 'hang' }
  /** The node drops off the network from this call on (every later call is UNREACHABLE). */
  | { type: 'unreachable' };

export interface Fault {
  /** Node id; any node when absent. */
  node?: string;
  op: FakeOp;
  effect: FaultEffect;
  /** Matching calls let through before the fault applies. Default 0. */
  after?: number;
  /** Matching calls the fault applies to. Default: all. */
  times?: number;
}

export interface CallRecord {
  seq: number;
  node: string;
  op: FakeOp;
  args: unknown;
  at: number;
  outcome: 'pending' | 'ok' | 'failed';
  code?: string;
}

export interface FakeServiceSpec {
  name: string;
  port: number;
}

export interface FakeClusterOptions {
  clock: Clock;
  /** Version installed and running on both nodes. Default 1.0.0. */
  version?: string;
  nodeIds?: readonly [string, string];
  /** Node holding the VIP and the database primary at the start. Default the first. */
  primary?: string;
  /** keepalived priorities at the start: primary 150, standby 100 (as in the lab). */
  priorities?: { primary: number; standby: number };
  /** The services the agent manages: a Java app and a Python worker by default. */
  services?: readonly FakeServiceSpec[];
  vip?: string;
  vipMoveDelayMs?: number;
  replicationCatchUpMs?: number;
  rsyncIntervalMs?: number;
  /** Time each op takes on the node. */
  latencyMs?: Partial<Record<FakeOp, number>>;
}

export const DEFAULT_SERVICES: readonly FakeServiceSpec[] = [
  { name: 'app', port: 8080 },
  { name: 'worker', port: 9090 },
];

const DEFAULT_LATENCY: Partial<Record<FakeOp, number>> = {
  'backup.create': 3000,
  'backup.restore': 4000,
  'backup.verify': 500,
  'service.stop': 500,
  'service.start': 1500,
  'jar.install': 1000,
  'schema.apply': 800,
  putFile: 200,
};

interface ServiceState extends FakeServiceSpec {
  active: boolean;
  /** Version the process loaded when it started. */
  runningVersion: string | null;
}

interface StoredFile {
  kind: BackupKind;
  path: string;
  content: Buffer;
}

interface FakeBackup {
  id: string;
  dir: string;
  files: StoredFile[];
  /** The checksums written at backup time (the agent's manifest). */
  recorded: BackupFile[];
  jarVersion: string;
}

interface NodeState {
  id: string;
  address: string;
  reachable: boolean;
  jar: { version: string; content: Buffer };
  services: ServiceState[];
  keepalived: { running: boolean; priority: number };
  holdsVip: boolean;
  rsync: { paused: boolean; lastSyncAt: string | null; lastResult: 'ok' | 'failed' | null };
  /** Owner of the config lock (config.lock), null when unlocked. */
  configLock: string | null;
  /** The synced config dir: relative path -> content. */
  config: Map<string, string>;
  rootKey: string;
  db: { role: DatabaseRole; applied: string[]; running: boolean };
  backups: Map<string, FakeBackup>;
  staged: Map<string, Buffer>;
}

/** What a test reads back about a node. */
export interface NodeView {
  id: string;
  reachable: boolean;
  jarVersion: string;
  /** Version each service runs (null when stopped). */
  running: Record<string, string | null>;
  servicesActive: boolean;
  holdsVip: boolean;
  priority: number;
  rsyncPaused: boolean;
  configLocked: boolean;
  staged: string[];
  schema: string[];
  databaseRole: DatabaseRole;
  databaseRunning: boolean;
  backups: string[];
  config: Record<string, string>;
  rootKey: string;
}

const JAR_PATH = '/opt/app/lib/app.jar';
const BACKUP_ROOT = '/var/backups/ha';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
const md5 = (data: Buffer | string): string => createHash('md5').update(data).digest('hex');

/** A fake jar's content: what putFile would copy for `version`. */
export const jarContent = (version: string): Buffer => Buffer.from(`PK fake jar of app ${version}\n`);

export class FakeCluster {
  readonly cluster: Cluster;
  readonly calls: CallRecord[] = [];
  readonly vip: string;
  private readonly clock: Clock;
  private readonly nodes: Map<string, NodeState>;
  private readonly faults: (Fault & { seen: number; applied: number })[] = [];
  private readonly listeners = new Set<(call: CallRecord) => void>();
  private readonly healthFailures: { version: string; node?: string }[] = [];
  private readonly latency: Partial<Record<FakeOp, number>>;
  private readonly vipMoveDelayMs: number;
  private readonly replicationCatchUpMs: number;
  private readonly rsyncIntervalMs: number;
  private electionAt: number | null = null;
  private vipFrozen = false;
  private replicaCaughtUpAt: number;
  private replicationStalled = false;
  private standbyDisconnected = false;
  /** The primary's WAL position and how far the standby has replayed (whole numbers). */
  private wal = 1000;
  private replayed = 1000;
  private readonly freeSpace = new Map<string, number>();
  private syncFailing = false;
  private nextSyncAt: number;

  constructor(options: FakeClusterOptions) {
    this.clock = options.clock;
    const version = options.version ?? '1.0.0';
    const [a, b] = options.nodeIds ?? ['node-a', 'node-b'];
    const primary = options.primary ?? a;
    const priorities = options.priorities ?? { primary: 150, standby: 100 };
    this.vip = options.vip ?? '10.99.0.100';
    this.latency = { ...DEFAULT_LATENCY, ...options.latencyMs };
    this.vipMoveDelayMs = options.vipMoveDelayMs ?? 2000;
    this.replicationCatchUpMs = options.replicationCatchUpMs ?? 1500;
    this.rsyncIntervalMs = options.rsyncIntervalMs ?? 2000;
    this.replicaCaughtUpAt = this.clock.now();
    this.nextSyncAt = this.clock.now() + this.rsyncIntervalMs;
    const services = options.services ?? DEFAULT_SERVICES;
    const config = new Map([
      ['app.properties', `app.name=ha\napp.port=8080\ndb.host=${this.vip}\n`],
      ['worker.yaml', 'queue: jobs\nconcurrency: 4\n'],
    ]);
    this.nodes = new Map(
      [a, b].map((id, i) => {
        const isPrimary = id === primary;
        const state: NodeState = {
          id,
          address: `10.99.0.${11 + i}:22`,
          reachable: true,
          jar: { version, content: jarContent(version) },
          services: services.map((s) => ({ ...s, active: true, runningVersion: version })),
          keepalived: { running: true, priority: isPrimary ? priorities.primary : priorities.standby },
          holdsVip: isPrimary,
          rsync: { paused: false, lastSyncAt: new Date(this.clock.now()).toISOString(), lastResult: 'ok' },
          configLock: null,
          config: new Map(config),
          rootKey: 'ROOT-KEY 6f1c9a0e4b\n',
          db: { role: isPrimary ? 'primary' : 'standby', applied: ['0001-initial'], running: true },
          backups: new Map(),
          staged: new Map(),
        };
        return [id, state];
      }),
    );
    const clients = [a, b].map((id) => this.client(id));
    this.cluster = { nodes: [clients[0] as NodeClient, clients[1] as NodeClient], vip: this.vip };
  }

  // -------------------------------------------------------------------------------------------
  // Failure injection and inspection.

  inject(fault: Fault): this {
    this.faults.push({ ...fault, seen: 0, applied: 0 });
    return this;
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** The node's /health answers 503 while a service runs `version`. */
  failHealthOn(version: string, node?: string): this {
    this.healthFailures.push(node === undefined ? { version } : { version, node });
    return this;
  }

  /** keepalived ignores priority changes: the VIP stays where it is. */
  freezeVip(frozen = true): this {
    this.vipFrozen = frozen;
    return this;
  }

  /** The standby stops replaying: never in sync until unstalled. */
  stallReplication(stalled = true): this {
    this.replicationStalled = stalled;
    if (!stalled) this.replicaCaughtUpAt = this.clock.now();
    return this;
  }

  /** The standby's WAL receiver stops (primary_conninfo emptied): nothing streams until reconnected. */
  disconnectStandby(disconnected = true): this {
    this.standbyDisconnected = disconnected;
    if (!disconnected) this.replicaCaughtUpAt = this.clock.now() + this.replicationCatchUpMs;
    return this;
  }

  /** Someone installed and started `version` on one node by hand. */
  setVersion(node: string, version: string): this {
    const state = this.state(node);
    state.jar = { version, content: jarContent(version) };
    for (const svc of state.services) if (svc.active) svc.runningVersion = version;
    return this;
  }

  /** Free bytes in a node's backup dir (default 50 GiB). */
  setFreeSpace(node: string, bytes: number): this {
    this.freeSpace.set(node, bytes);
    return this;
  }

  /** Every config sync run fails (rsync cannot reach the peer): configs drift apart. */
  failSync(failing = true): this {
    this.syncFailing = failing;
    return this;
  }

  setReachable(node: string, reachable: boolean): this {
    this.state(node).reachable = reachable;
    return this;
  }

  /** Someone edits a config file on a node (it syncs from the VIP holder unless paused). */
  editConfig(node: string, path: string, content: string): void {
    this.state(node).config.set(path, content);
  }

  /** Flips a byte of one file of a backup, as bit rot or a tampered disk would. */
  corruptBackup(node: string, backupId: string, kind: BackupKind): void {
    const file = this.state(node)
      .backups.get(backupId)
      ?.files.find((f) => f.kind === kind);
    if (file === undefined) throw new Error(`no ${kind} in backup ${backupId} on ${node}`);
    const content = Buffer.from(file.content);
    content[0] = (content[0] ?? 0) ^ 0xff;
    file.content = content;
  }

  deleteBackup(node: string, backupId: string): void {
    this.state(node).backups.delete(backupId);
  }

  /** Called synchronously when each call starts (before its fault or effect). */
  onCall(listener: (call: CallRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  node(id: string): NodeView {
    this.settle();
    const s = this.state(id);
    return {
      id: s.id,
      reachable: s.reachable,
      jarVersion: s.jar.version,
      running: Object.fromEntries(
        s.services.map((svc) => [svc.name, svc.active ? svc.runningVersion : null]),
      ),
      servicesActive: s.services.every((svc) => svc.active),
      holdsVip: s.holdsVip,
      priority: s.keepalived.priority,
      rsyncPaused: s.rsync.paused,
      configLocked: s.configLock !== null,
      staged: [...s.staged.keys()].sort(),
      schema: [...s.db.applied],
      databaseRole: s.db.role,
      databaseRunning: s.db.running,
      backups: [...s.backups.keys()],
      config: Object.fromEntries(s.config),
      rootKey: s.rootKey,
    };
  }

  vipHolder(): string | null {
    this.settle();
    return [...this.nodes.values()].find((n) => n.holdsVip)?.id ?? null;
  }

  /** The calls made so far as `node op` strings, in order. */
  trace(filter?: (c: CallRecord) => boolean): string[] {
    return this.calls.filter(filter ?? (() => true)).map((c) => `${c.node} ${c.op}`);
  }

  // -------------------------------------------------------------------------------------------
  // The NodeClient of each node.

  private client(id: string): NodeClient {
    const state = this.state(id);
    return {
      id,
      address: state.address,
      call: <O extends AgentOp>(op: O, args: ArgsOf<O>, options?: CallOptions) =>
        this.perform(id, op, args, options, () => this.execute(state, op, args) as ResultOf<O>),
      putFile: (localPath, stagedName, options) =>
        this.perform(id, 'putFile', { localPath, stagedName }, options, () => {
          checkName(stagedName);
          const content = readFileSync(localPath);
          state.staged.set(stagedName, content);
          return { sha256: sha256(content) };
        }),
      close: async () => undefined,
    };
  }

  private async perform<T>(
    nodeId: string,
    op: FakeOp,
    args: unknown,
    options: CallOptions | undefined,
    effect: () => T,
  ): Promise<T> {
    const record: CallRecord = {
      seq: this.calls.length,
      node: nodeId,
      op,
      args: structuredClone(args),
      at: this.clock.now(),
      outcome: 'pending',
    };
    this.calls.push(record);
    for (const listener of this.listeners) listener(record);
    try {
      const result = await this.answer(nodeId, op, options, effect);
      record.outcome = 'ok';
      return result;
    } catch (error) {
      record.outcome = 'failed';
      record.code = error instanceof UpgradeError ? error.code : 'INTERNAL';
      throw error;
    }
  }

  private async answer<T>(
    nodeId: string,
    op: FakeOp,
    options: CallOptions | undefined,
    effect: () => T,
  ): Promise<T> {
    const state = this.state(nodeId);
    const signal = options?.signal;
    if (signal?.aborted) throw abortError(signal);
    const fault = this.matchFault(nodeId, op);
    if (fault?.type === 'unreachable') state.reachable = false;
    if (!state.reachable)
      throw new UpgradeError(
        'UNREACHABLE',
        `cannot connect to ${nodeId} (${state.address}): connection refused`,
      );
    if (fault?.type === 'hang') {
      await this.wait(Number.POSITIVE_INFINITY, nodeId, op, options);
      throw new Error('unreachable: a hang only ends by timeout or abort');
    }
    await this.wait(this.latency[op] ?? 0, nodeId, op, options);
    if (!state.reachable)
      throw new UpgradeError('UNREACHABLE', `connection to ${nodeId} (${state.address}) lost`);
    if (fault?.type === 'fail')
      throw new UpgradeError(fault.code, fault.message ?? `${op} failed on ${nodeId} (injected)`);
    this.settle();
    const result = effect();
    this.settle();
    return result;
  }

  /** Takes `ms` on the clock, bounded by the call's timeoutMs and its signal like the transport. */
  private async wait(
    ms: number,
    nodeId: string,
    op: FakeOp,
    options: CallOptions | undefined,
  ): Promise<void> {
    const timeout = options?.timeoutMs;
    const signal = options?.signal;
    if (ms <= 0 && ms !== Number.POSITIVE_INFINITY) return;
    const limit = Math.min(ms, timeout ?? Number.POSITIVE_INFINITY);
    if (limit === Number.POSITIVE_INFINITY) {
      if (signal === undefined) return new Promise<void>(() => undefined);
      return new Promise<void>((_, reject) =>
        signal.addEventListener('abort', () => reject(abortError(signal)), { once: true }),
      );
    }
    await this.clock.sleep(limit, signal);
    if (limit < ms)
      throw new UpgradeError('TIMEOUT', `${op} on ${nodeId} did not answer within ${timeout} ms`, {
        details: { timeoutMs: timeout },
      });
  }

  private matchFault(nodeId: string, op: FakeOp): FaultEffect | null {
    for (const f of this.faults) {
      if (f.op !== op || (f.node !== undefined && f.node !== nodeId)) continue;
      f.seen++;
      if (f.seen <= (f.after ?? 0)) continue;
      if (f.applied >= (f.times ?? Number.POSITIVE_INFINITY)) continue;
      f.applied++;
      return f.effect;
    }
    return null;
  }

  // -------------------------------------------------------------------------------------------
  // The agent's operations on one node's state.

  private execute(node: NodeState, op: AgentOp, rawArgs: unknown): ResultOf<AgentOp> {
    const now = this.clock.now();
    switch (op) {
      case 'health':
        return this.health(node);
      case 'backup.create': {
        const args = rawArgs as ArgsOf<'backup.create'>;
        checkName(args.backupId);
        if (node.backups.has(args.backupId))
          throw new UpgradeError(
            'CONFLICT',
            `backup ${args.backupId} already exists on ${node.id}; use a new backup id`,
          );
        const backup = this.createBackup(node, args.backupId);
        node.backups.set(backup.id, backup);
        const removed: string[] = [];
        const keep = Math.max(1, args.retention);
        for (const id of [...node.backups.keys()].slice(0, Math.max(0, node.backups.size - keep))) {
          removed.push(node.backups.get(id)?.dir ?? id);
          node.backups.delete(id);
        }
        return { backupId: backup.id, dir: backup.dir, files: backup.recorded, removed };
      }
      case 'backup.verify': {
        const args = rawArgs as ArgsOf<'backup.verify'>;
        const stored = node.backups.get(args.backupId);
        const mismatches: { kind: BackupKind; path: string; reason: string }[] = [];
        for (const want of args.files) {
          const file = stored?.files.find((f) => f.path === want.path);
          if (file === undefined) mismatches.push({ kind: want.kind, path: want.path, reason: 'missing' });
          else if (md5(file.content) !== want.md5)
            mismatches.push({ kind: want.kind, path: want.path, reason: 'md5 differs' });
          else if (sha256(file.content) !== want.sha256)
            mismatches.push({ kind: want.kind, path: want.path, reason: 'sha256 differs' });
        }
        return { ok: mismatches.length === 0, mismatches };
      }
      case 'backup.restore': {
        const args = rawArgs as ArgsOf<'backup.restore'>;
        const backup = node.backups.get(args.backupId);
        if (backup === undefined)
          throw new UpgradeError('NOT_FOUND', `backup ${args.backupId} does not exist on ${node.id}`);
        // Like the agent: every file is checked before anything is touched.
        const recorded = backup.recorded;
        for (const kind of args.kinds) {
          const file = backup.files.find((f) => f.kind === kind);
          const want = recorded.find((f) => f.kind === kind);
          if (file !== undefined && want !== undefined && sha256(file.content) !== want.sha256)
            throw new UpgradeError(
              'CHECKSUM_MISMATCH',
              `backup ${args.backupId} ${kind} file ${file.path}: sha256 differs; restore refused`,
            );
        }
        const running = node.services.filter((s) => s.active).map((s) => s.name);
        if (running.length > 0)
          throw new UpgradeError('CONFLICT', `stop ${running.join(', ')} before restoring a backup`);
        for (const kind of args.kinds) {
          const file = backup.files.find((f) => f.kind === kind);
          if (file === undefined)
            throw new UpgradeError('NOT_FOUND', `backup ${args.backupId} has no ${kind}`);
          switch (kind) {
            case 'jar':
              node.jar = { version: backup.jarVersion, content: file.content };
              break;
            case 'config':
              node.config = parseConfig(file.content);
              break;
            case 'root_key':
              node.rootKey = file.content.toString();
              break;
            case 'database':
              node.db.applied = JSON.parse(file.content.toString()) as string[];
              if (node.db.role === 'primary') {
                this.wal += 100;
                this.replicaCaughtUpAt = now + this.replicationCatchUpMs;
              }
              break;
          }
        }
        return { restored: [...args.kinds] };
      }
      case 'keepalived.set_priority': {
        const { priority } = rawArgs as ArgsOf<'keepalived.set_priority'>;
        if (!Number.isInteger(priority) || priority < 1 || priority > 254)
          throw new UpgradeError('VALIDATION_FAILED', `priority must be 1..254, got ${priority}`);
        const previous = node.keepalived.priority;
        node.keepalived.priority = priority;
        if (!this.vipFrozen) this.electionAt = now + this.vipMoveDelayMs;
        return { previous, current: priority };
      }
      case 'keepalived.status':
        return {
          state: vrrpState(node),
          priority: node.keepalived.priority,
          holdsVip: node.holdsVip,
          vip: this.vip,
        };
      case 'rsync.pause':
        node.rsync.paused = true;
        return { paused: true };
      case 'rsync.resume':
        node.rsync.paused = false;
        this.nextSyncAt = now + this.rsyncIntervalMs;
        return { paused: false };
      case 'rsync.status':
        return { ...node.rsync };
      case 'config.lock': {
        const alreadyLocked = node.configLock !== null;
        node.configLock = (rawArgs as ArgsOf<'config.lock'>).owner;
        return { locked: true, files: node.config.size + 1, alreadyLocked };
      }
      case 'config.unlock': {
        const wasLocked = node.configLock !== null;
        node.configLock = null;
        return { locked: false, files: wasLocked ? node.config.size + 1 : 0, changed: [], wasLocked };
      }
      case 'config.checksums': {
        const files = Object.fromEntries([...node.config].map(([path, content]) => [path, sha256(content)]));
        const digest = sha256(
          Object.keys(files)
            .sort()
            .map((p) => `${p} ${files[p]}\n`)
            .join(''),
        );
        return { digest, files };
      }
      case 'service.stop': {
        const svc = this.service(node, (rawArgs as ArgsOf<'service.stop'>).service);
        svc.active = false;
        svc.runningVersion = null;
        return { service: svc.name, active: false };
      }
      case 'service.start': {
        const svc = this.service(node, (rawArgs as ArgsOf<'service.start'>).service);
        svc.active = true;
        svc.runningVersion = node.jar.version;
        return { service: svc.name, active: true };
      }
      case 'service.status': {
        const svc = this.service(node, (rawArgs as ArgsOf<'service.status'>).service);
        return { service: svc.name, active: svc.active, version: svc.runningVersion };
      }
      case 'jar.install': {
        const args = rawArgs as ArgsOf<'jar.install'>;
        const staged = this.staged(node, args.stagedName, args.sha256);
        const app = node.services[0];
        if (app?.active === true)
          throw new UpgradeError('CONFLICT', `stop ${app.name} before installing a jar on ${node.id}`);
        const previousVersion = node.jar.version;
        node.jar = { version: args.version, content: staged };
        return { version: args.version, path: JAR_PATH, previousVersion };
      }
      case 'schema.apply': {
        const args = rawArgs as ArgsOf<'schema.apply'>;
        this.staged(node, args.stagedName, args.sha256);
        if (node.db.role !== 'primary')
          throw new UpgradeError(
            'CONFLICT',
            `the database on ${node.id} is a standby (read-only); run schema changes on the primary`,
          );
        // A rollback script (staged as `...-rollback.sql`) undoes the newest change.
        if (args.stagedName.endsWith('-rollback.sql')) {
          if (node.db.applied.length > 1) node.db.applied.pop();
        } else node.db.applied.push(args.sha256.slice(0, 12));
        this.wal += 100;
        this.replicaCaughtUpAt = now + this.replicationCatchUpMs;
        return { applied: true, durationMs: this.latency['schema.apply'] ?? 0 };
      }
      case 'replication.status':
        return this.replicationStatus(node);
      case 'backup.space':
        return {
          dir: BACKUP_ROOT,
          freeBytes: this.freeSpace.get(node.id) ?? 50 * 1024 ** 3,
          neededBytes: 10 * 1024 ** 2,
        };
      case 'database.fence': {
        const wasRunning = node.db.running;
        const lastLsn = lsnOf(this.wal);
        if (wasRunning && node.db.role === 'primary') {
          // The shutdown checkpoint; WAL senders ship it to a streaming standby before they exit.
          this.wal += 1;
          if (this.linked() && !this.replicationStalled) {
            this.replayed = this.wal;
            for (const n of this.nodes.values()) if (n !== node) n.db.applied = [...node.db.applied];
          }
        }
        node.db.running = false;
        return { lastLsn, wasRunning };
      }
      case 'database.unfence': {
        const started = !node.db.running;
        node.db.running = true;
        return { started };
      }
      case 'database.promote': {
        if (!node.db.running)
          throw new UpgradeError('UNAVAILABLE', `the database on ${node.id} is not running`);
        const promoted = node.db.role === 'standby';
        if (promoted) {
          node.db.role = 'primary';
          this.wal = this.replayed + 1;
          this.replayed = this.wal;
          for (const n of this.nodes.values()) if (n !== node) n.db.role = 'unknown';
        }
        return { promoted, lsn: lsnOf(this.wal) };
      }
      case 'database.follow': {
        const primary = [...this.nodes.values()].find((n) => n !== node && n.db.role === 'primary');
        if (primary === undefined || !primary.db.running)
          throw new UpgradeError('UNAVAILABLE', `no primary to follow from ${node.id}`);
        node.db.role = 'standby';
        node.db.running = true;
        node.db.applied = [...primary.db.applied];
        this.replayed = this.wal;
        this.replicaCaughtUpAt = now;
        return { rewound: false, streaming: true, detail: 'no rewind required; streaming' };
      }
      case 'staging.clean': {
        const { prefix } = rawArgs as ArgsOf<'staging.clean'>;
        if (prefix === '') throw new UpgradeError('VALIDATION_FAILED', 'prefix must not be empty');
        const removed = [...node.staged.keys()].filter((name) => name.startsWith(prefix));
        for (const name of removed) node.staged.delete(name);
        return { removed };
      }
    }
  }

  private health(node: NodeState): ResultOf<'health'> {
    const [app] = node.services;
    const failing =
      app?.active === true &&
      this.healthFailures.some(
        (f) => f.version === app.runningVersion && (f.node === undefined || f.node === node.id),
      );
    const database = { ok: node.db.running, durationMs: 3, role: node.db.role };
    const ports = node.services.map((s) => ({
      service: s.name,
      port: s.port,
      ok: s.active,
      durationMs: 1,
      ...(s.active ? {} : { detail: 'connection refused' }),
    }));
    const keepalived = {
      ok: node.keepalived.running,
      durationMs: 2,
      state: vrrpState(node),
      holdsVip: node.holdsVip,
    };
    const http =
      app?.active === true
        ? {
            ok: !failing,
            durationMs: 5,
            status: failing ? 503 : 200,
            ...(failing ? { detail: 'answered 503' } : {}),
          }
        : { ok: false, durationMs: 1, status: null, detail: 'connection refused' };
    return {
      ok: database.ok && ports.every((p) => p.ok) && keepalived.ok && http.ok,
      version: app?.active === true ? app.runningVersion : null,
      database,
      ports,
      keepalived,
      http,
    };
  }

  private createBackup(node: NodeState, backupId: string): FakeBackup {
    const dir = `${BACKUP_ROOT}/${backupId}`;
    const config = [...node.config]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([path, content]) => ({ path, content }));
    const files: StoredFile[] = [
      { kind: 'jar', path: `${dir}/app.jar`, content: node.jar.content },
      { kind: 'config', path: `${dir}/config.json`, content: Buffer.from(JSON.stringify(config)) },
      { kind: 'root_key', path: `${dir}/root.key`, content: Buffer.from(node.rootKey) },
      {
        kind: 'database',
        path: `${dir}/database.dump`,
        content: Buffer.from(JSON.stringify(node.db.applied)),
      },
    ];
    return { id: backupId, dir, jarVersion: node.jar.version, files, recorded: files.map(describeFile) };
  }

  private staged(node: NodeState, name: string, wantSha: string): Buffer {
    const content = node.staged.get(name);
    if (content === undefined) throw new UpgradeError('NOT_FOUND', `${name} is not staged on ${node.id}`);
    if (sha256(content) !== wantSha)
      throw new UpgradeError(
        'CHECKSUM_MISMATCH',
        `${name} on ${node.id} has SHA-256 ${sha256(content)}, expected ${wantSha}`,
      );
    return content;
  }

  private service(node: NodeState, name: string): ServiceState {
    const svc = node.services.find((s) => s.name === name);
    if (svc === undefined)
      throw new UpgradeError(
        'VALIDATION_FAILED',
        `unknown service ${name}; the agent manages ${node.services.map((s) => s.name).join(', ')}`,
      );
    return svc;
  }

  private replicaInSync(): boolean {
    return this.linked() && !this.replicationStalled && this.clock.now() >= this.replicaCaughtUpAt;
  }

  /** A running primary with a running standby streaming from it. */
  private linked(): boolean {
    if (this.standbyDisconnected) return false;
    const all = [...this.nodes.values()];
    const primary = all.find((n) => n.db.role === 'primary');
    const standby = all.find((n) => n.db.role === 'standby');
    return primary?.db.running === true && standby?.db.running === true;
  }

  private replicationStatus(node: NodeState): ResultOf<'replication.status'> {
    if (!node.db.running)
      throw new UpgradeError(
        'UNAVAILABLE',
        `database query failed: the database on ${node.id} is not running`,
      );
    const connected = this.linked();
    const inSync = this.replicaInSync();
    const lagBytes = !connected ? null : inSync ? 0 : this.replicationStalled ? 20 * 1024 ** 2 : 16_384;
    const lagMs = !connected ? null : inSync ? 0 : this.replicationStalled ? 60_000 : 500;
    const endpoint = { host: node.address.replace(/:\d+$/, ''), port: 5432 };
    if (node.db.role === 'primary')
      return {
        role: 'primary',
        connected,
        standbys: connected ? 1 : 0,
        inSync,
        lagBytes,
        lagMs,
        lsn: lsnOf(this.wal),
        endpoint,
        detail: !connected ? 'no standby connected' : inSync ? '1 standby(s) streaming' : 'streaming, behind',
      };
    return {
      role: node.db.role,
      connected,
      standbys: 0,
      inSync,
      lagBytes: connected ? (inSync ? 0 : lagBytes) : 0,
      lagMs: connected ? lagMs : 0,
      lsn: lsnOf(this.replayed),
      endpoint,
      detail: connected ? 'streaming' : 'WAL receiver stopped: not streaming from a primary',
    };
  }

  /** Brings the simulated world up to the clock: elections, replication replay, config sync. */
  private settle(): void {
    const now = this.clock.now();
    const all = [...this.nodes.values()];
    if (this.electionAt !== null && now >= this.electionAt) {
      this.electionAt = null;
      const running = all.filter((n) => n.keepalived.running);
      const top = Math.max(...running.map((n) => n.keepalived.priority));
      const holder =
        running.find((n) => n.holdsVip && n.keepalived.priority === top) ??
        running.find((n) => n.keepalived.priority === top);
      for (const n of all) n.holdsVip = n === holder;
    }
    const primary = all.find((n) => n.db.role === 'primary');
    if (primary !== undefined && this.replicaInSync()) {
      this.replayed = this.wal;
      for (const n of all)
        if (n !== primary && n.db.role === 'standby') n.db.applied = [...primary.db.applied];
    }
    const holder = all.find((n) => n.holdsVip);
    if (holder !== undefined && now >= this.nextSyncAt) {
      for (const n of all) {
        if (n === holder || n.rsync.paused) continue;
        if (!this.syncFailing) n.config = new Map(holder.config);
        n.rsync.lastSyncAt = new Date(now).toISOString();
        n.rsync.lastResult = this.syncFailing ? 'failed' : 'ok';
      }
      this.nextSyncAt = now + this.rsyncIntervalMs;
    }
  }

  private state(id: string): NodeState {
    const s = this.nodes.get(id);
    if (s === undefined) throw new Error(`no node ${id} in the fake cluster`);
    return s;
  }
}

export function createFakeCluster(options: FakeClusterOptions): FakeCluster {
  return new FakeCluster(options);
}

/** A WAL position as PostgreSQL prints it. */
export function lsnOf(position: number): string {
  return `0/${position.toString(16).toUpperCase()}`;
}

function vrrpState(node: NodeState): VrrpState {
  if (!node.keepalived.running) return 'STOPPED';
  return node.holdsVip ? 'MASTER' : 'BACKUP';
}

function describeFile(file: StoredFile): BackupFile {
  return {
    kind: file.kind,
    path: file.path,
    sizeBytes: file.content.length,
    md5: md5(file.content),
    sha256: sha256(file.content),
  };
}

function parseConfig(content: Buffer): Map<string, string> {
  const entries = JSON.parse(content.toString()) as { path: string; content: string }[];
  return new Map(entries.map((e) => [e.path, e.content]));
}

function checkName(name: string): void {
  if (!NAME.test(name))
    throw new UpgradeError('VALIDATION_FAILED', `${JSON.stringify(name)} is not a plain file name`);
}
