// Shared wiring of the API tests: signed packages built with yazl, multipart bodies, and the app
// on real stores with a scripted upgrade flow (or the real one, where the test passes it).
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock, type Clock } from '@upgrade/core';
import type { ServiceApp } from '@upgrade/service';
import yazl from 'yazl';
import type { RestoreOptions } from '../src/restore.js';
import { buildApp } from '../src/app.js';
import type { ApiRequestLog } from '../src/http/request-log.js';
import type {
  AuditTrail,
  Cluster,
  NodeClient,
  TaskStore,
  UpgradeConfigStore,
  UpgradeTask,
} from '../src/ports.js';
import { createTaskRunner, type FlowDeps, type RunUpgrade, type TaskRunner } from '../src/task-runner.js';
import type { HealthCheck } from '@upgrade/core';

export const TOKEN = 'ops-token-0123456789abcdef';
export const AUTH = { authorization: `Bearer ${TOKEN}` };

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

export function signingKeys(): { publicKey: KeyObject; privateKey: KeyObject; publicPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { publicKey, privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export const signPackage = (zip: Buffer, key: KeyObject): string => sign(null, zip, key).toString('base64');

export interface PackageSpec {
  version?: string;
  jar?: Buffer;
  /** Each with its rollback script (default `<name>.rollback.sql`; null leaves it out). */
  scripts?: { path: string; content: string; rollback?: { path: string; content: string } | null }[];
  /** Replaces fields of the generated manifest (undefined values delete them). */
  manifest?: Record<string, unknown>;
  /** Raw manifest text instead of the generated one. */
  manifestText?: string;
  omitManifest?: boolean;
  extra?: { name: string; content: Buffer | string; mode?: number }[];
}

/** A package ZIP: manifest.json, app.jar and the schema scripts, checksums filled in. */
export async function buildPackage(spec: PackageSpec = {}): Promise<Buffer> {
  const jar = spec.jar ?? Buffer.from(`jar of ${spec.version ?? '2.4.0'}`);
  const scripts = (
    spec.scripts ?? [{ path: 'sql/001_add_column.sql', content: 'alter table t add column c int;' }]
  ).map((s) => ({
    ...s,
    rollback:
      s.rollback === undefined
        ? { path: s.path.replace(/\.sql$/, '.rollback.sql'), content: `-- undoes ${s.path}\n` }
        : s.rollback,
  }));
  const manifest: Record<string, unknown> = {
    version: spec.version ?? '2.4.0',
    jar: 'app.jar',
    jarSha256: sha256(jar),
    schemaScripts: scripts.map((s) => ({
      path: s.path,
      sha256: sha256(s.content),
      ...(s.rollback === null
        ? {}
        : { rollback: { path: s.rollback.path, sha256: sha256(s.rollback.content) } }),
    })),
  };
  for (const [key, value] of Object.entries(spec.manifest ?? {})) {
    if (value === undefined) delete manifest[key];
    else manifest[key] = value;
  }
  const zip = new yazl.ZipFile();
  if (spec.omitManifest !== true)
    zip.addBuffer(Buffer.from(spec.manifestText ?? JSON.stringify(manifest)), 'manifest.json');
  zip.addBuffer(jar, 'app.jar');
  for (const s of scripts) {
    zip.addBuffer(Buffer.from(s.content), s.path);
    if (s.rollback !== null) zip.addBuffer(Buffer.from(s.rollback.content), s.rollback.path);
  }
  for (const e of spec.extra ?? [])
    zip.addBuffer(Buffer.from(e.content), e.name, e.mode === undefined ? {} : { mode: e.mode });
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Replaces every occurrence of `from` with `to` (same length): names yazl refuses to write. */
export function patchBytes(zip: Buffer, from: string, to: string): Buffer {
  if (from.length !== to.length) throw new Error('patchBytes keeps lengths');
  const out = Buffer.from(zip);
  const needle = Buffer.from(from);
  for (let i = out.indexOf(needle); i !== -1; i = out.indexOf(needle, i + 1)) out.write(to, i);
  return out;
}

export interface Part {
  name: string;
  value: Buffer | string;
  filename?: string;
}

/** A multipart/form-data body for app.inject. */
export function multipart(parts: Part[]): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----ha-test-${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition =
      part.filename === undefined
        ? `form-data; name="${part.name}"`
        : `form-data; name="${part.name}"; filename="${part.filename}"`;
    const type = part.filename === undefined ? '' : 'Content-Type: application/zip\r\n';
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`));
    chunks.push(Buffer.isBuffer(part.value) ? part.value : Buffer.from(part.value));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

/** The usual trigger body: the package as file `package` and its signature. */
export function triggerBody(zip: Buffer, signature: string) {
  return multipart([
    { name: 'package', value: zip, filename: 'upgrade.zip' },
    { name: 'signature', value: signature },
  ]);
}

/** What a scripted node reports; everything but `ok` and `version` has a healthy default. */
export interface NodeAnswer {
  ok: boolean;
  version: string | null;
  /** Holds the VIP and the database primary. Default: the node id is `node-a`. */
  primary?: boolean;
  rsyncPaused?: boolean;
  /** Replication streams (seen from this node). Default true. */
  streaming?: boolean;
}

/**
 * A node whose agent answers the read-only operations (health, keepalived, replication, rsync)
 * from `answer`; a throwing `answer` fails every call with its error. Other ops are refused.
 */
export function healthOnlyNode(id: string, answer: () => Promise<NodeAnswer>): NodeClient {
  return {
    id,
    address: `${id}:22`,
    async call(op) {
      const a = await answer();
      const primary = a.primary ?? id === 'node-a';
      const streaming = a.streaming ?? true;
      const check = { ok: a.ok, durationMs: 1 };
      const state = primary ? 'MASTER' : 'BACKUP';
      switch (op) {
        case 'health':
          return {
            ok: a.ok,
            version: a.version,
            database: { ...check, role: primary ? 'primary' : 'standby' },
            ports: [],
            keepalived: { ...check, state, holdsVip: primary },
            http: { ...check, status: a.ok ? 200 : 503 },
          } as never;
        case 'keepalived.status':
          return { state, priority: primary ? 150 : 100, holdsVip: primary, vip: '10.0.0.100' } as never;
        case 'replication.status':
          return {
            role: primary ? 'primary' : 'standby',
            connected: streaming,
            standbys: primary && streaming ? 1 : 0,
            inSync: streaming,
            lagBytes: streaming ? 0 : null,
            lagMs: streaming ? 0 : null,
            lsn: '0/3000060',
            endpoint: { host: id, port: 5432 },
            detail: streaming ? 'streaming' : 'no standby connected',
          } as never;
        case 'rsync.status':
          return { paused: a.rsyncPaused ?? false, lastSyncAt: null, lastResult: 'ok' } as never;
        default:
          throw new Error(`unexpected op ${op}`);
      }
    },
    putFile: async () => ({ sha256: '' }),
    close: async () => undefined,
  };
}

export interface TestAppOptions {
  tasks: TaskStore;
  audit: AuditTrail;
  configStore: UpgradeConfigStore;
  requestLog: ApiRequestLog;
  database: HealthCheck;
  cluster?: Cluster;
  run: RunUpgrade;
  restore?: (deps: FlowDeps, taskId: string, options?: RestoreOptions) => Promise<UpgradeTask>;
  keys: readonly KeyObject[];
  allowedIps?: string[];
  maxPackageBytes?: number;
  clock?: Clock;
  nodeVersions?: () => Promise<(string | null)[]>;
  /** HEALTH_NODE_TIMEOUT_MS. Default 500. */
  healthTimeoutMs?: number;
}

export interface TestApp {
  app: ServiceApp;
  runner: TaskRunner;
  workDir: string;
  close(): Promise<void>;
}

export async function buildTestApp(options: TestAppOptions): Promise<TestApp> {
  const workDir = mkdtempSync(join(tmpdir(), 'ha-api-'));
  const clock = options.clock ?? systemClock;
  const cluster =
    options.cluster ??
    ({
      nodes: [
        healthOnlyNode('node-a', async () => ({ ok: true, version: '2.3.0' })),
        healthOnlyNode('node-b', async () => ({ ok: true, version: '2.3.0' })),
      ],
      vip: '10.0.0.100',
    } satisfies Cluster);
  const runner = createTaskRunner({
    tasks: options.tasks,
    audit: options.audit,
    configStore: options.configStore,
    cluster,
    clock,
    run: options.run,
  });
  const flowDeps = async (): Promise<FlowDeps> => ({
    cluster,
    tasks: options.tasks,
    audit: options.audit,
    config: await options.configStore.get(),
    clock,
  });
  const app = await buildApp({
    tasks: options.tasks,
    audit: options.audit,
    runner,
    restore: async (id, restoreOptions) => {
      if (options.restore === undefined) throw new Error('no restore in this test');
      return options.restore(await flowDeps(), id, restoreOptions);
    },
    nodeVersions: options.nodeVersions ?? (async () => ['2.3.0', '2.3.0']),
    packages: {
      workDir,
      keys: options.keys,
      maxPackageBytes: options.maxPackageBytes ?? 10 * 1024 * 1024,
      unpackLimits: { maxEntries: 100, maxEntryBytes: 5 * 1024 * 1024, maxTotalBytes: 10 * 1024 * 1024 },
    },
    now: () => clock.now(),
    auth: {
      tokens: [{ name: 'ops', token: TOKEN }],
      allowedIps: options.allowedIps ?? ['127.0.0.1/32', '::1/128'],
    },
    health: {
      database: options.database,
      nodes: cluster.nodes,
      timeoutMs: options.healthTimeoutMs ?? 500,
      tasks: options.tasks,
      audit: options.audit,
      config: options.configStore,
      now: () => clock.now(),
    },
    requestLog: options.requestLog,
    logger: false,
  });
  return {
    app,
    runner,
    workDir,
    close: async () => {
      await runner.stop();
      await app.close();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/**
 * A stand-in for the rolling upgrade, for API tests that are about the API: walks the states,
 * records steps and logs through the real stores, waits at `gate` before finishing, honours cancel.
 */
export function scriptedRun(gate: () => Promise<void> = async () => undefined): RunUpgrade {
  return async (deps, task, pkg, signal) => {
    const now = (): Date => new Date(deps.clock.now());
    const move = async (from: UpgradeTask['state'], to: UpgradeTask['state'], percent: number) => {
      await deps.audit.log({
        taskId: task.id,
        level: 'INFO',
        message: `${from} -> ${to}`,
        fromState: from,
        toState: to,
        at: now(),
      });
      return deps.tasks.update(task.id, {
        state: to,
        percent,
        currentStep: `${to.toLowerCase()}.step`,
        lastMessage: `entered ${to}`,
      });
    };
    await deps.tasks.update(task.id, { startedAt: now(), fromVersion: '2.3.0', primaryBefore: 'node-a' });
    await move('IDLE', 'PREPARE', 5);
    await deps.audit.step({
      taskId: task.id,
      step: 'prepare.rsync_pause',
      nodeId: null,
      status: 'succeeded',
      message: `jar ${pkg.jarSha256.slice(0, 8)}`,
      percent: 5,
      at: now(),
      durationMs: 12,
    });
    await deps.audit.log({
      taskId: task.id,
      level: 'WARNING',
      message: 'replication lag 1 MB',
      fromState: null,
      toState: null,
      at: now(),
    });
    await move('PREPARE', 'UPGRADE_BACKUP', 40);
    await Promise.race([
      gate(),
      new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })),
    ]);
    if (signal.aborted) {
      await move('UPGRADE_BACKUP', 'CANCELLED', 40);
      return deps.tasks.update(task.id, { finishedAt: now(), lastMessage: 'cancelled at a safe point' });
    }
    await deps.audit.log({
      taskId: task.id,
      level: 'ERROR',
      message: 'one health check failed (retried)',
      fromState: null,
      toState: null,
      at: now(),
    });
    await move('UPGRADE_BACKUP', 'COMPLETE', 100);
    return deps.tasks.update(task.id, { finishedAt: now(), primaryAfter: 'node-b', downtimeMs: 1200 });
  };
}
