// The built ha-orchestrator (apps/ha-orchestrator/dist/cli.js) as a child process talking to the
// lab: its own data dir (embedded PGlite), a trusted signing key, the lab's nodes and pinned host
// keys, upgrade parameters set with `ha-orchestrator config set` before it starts. The test talks
// to it only through its REST API, as an operator would.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lab, LabNodeId } from './lab.js';
import type { SignedPackage, SigningKeys } from './package.js';
import { runCommand } from './run.js';

/** apps/ha-orchestrator/dist/cli.js (`pnpm --filter @upgrade/ha-orchestrator build`). */
export const ORCHESTRATOR_CLI = fileURLToPath(
  new URL('../../apps/ha-orchestrator/dist/cli.js', import.meta.url),
);

/** upgrade_config keys (camelCase) and values, as `ha-orchestrator config set` takes them. */
export type UpgradeParameters = Partial<
  Record<
    | 'upgradeTimeoutMs'
    | 'vipSwitchTimeoutMs'
    | 'vipSwitchRetries'
    | 'healthCheckTimeoutMs'
    | 'healthRetries'
    | 'healthRetryIntervalMs'
    | 'healthyChecksRequired'
    | 'backupRetention'
    | 'replicationTimeoutMs',
    number
  >
>;

export interface OrchestratorOptions {
  lab: Lab;
  keys: SigningKeys;
  /** Who holds the VIP now (listed first in HA_NODES). Default node-a. */
  primary?: LabNodeId;
  /** Set with `config set` before the start; nothing is set when omitted. */
  upgrade?: UpgradeParameters;
  /** Data dir to reuse (the audit trail survives a restart); a new temp dir otherwise. */
  dataDir?: string;
  /** Extra environment (e.g. SSH_CONNECT_TIMEOUT_MS). */
  env?: Record<string, string>;
  /** Remove `dataDir` at stop() even though it was given (a restarted process owning it now). */
  removeDataDir?: boolean;
  /** How long to wait for it to listen (a restart reconciles an interrupted task first). Default 60 s. */
  listenTimeoutMs?: number;
}

export type TaskState =
  | 'IDLE'
  | 'PREPARE'
  | 'BACKUP'
  | 'UPGRADE_BACKUP'
  | 'VIP_SWITCH'
  | 'UPGRADE_MASTER'
  | 'VERIFY'
  | 'ROLLBACK'
  | 'COMPLETE'
  | 'CANCELLED'
  | 'FAILED'
  | 'TIMEOUT'
  | 'UNREACHABLE';

export interface FinishedStep {
  step: string;
  node_id: string | null;
  status: 'succeeded' | 'failed' | 'skipped';
  message: string;
  percent: number | null;
  at: string;
  duration_ms: number | null;
}

export interface Progress {
  task_id: string;
  state: TaskState;
  final: boolean;
  percent: number;
  current_step: string | null;
  last_message: string | null;
  error: { code: string; message: string } | null;
  from_version: string | null;
  to_version: string;
  primary_before: string | null;
  primary_after: string | null;
  downtime_ms: number | null;
  started_at: string | null;
  finished_at: string | null;
  finished_steps: FinishedStep[];
  elapsed_ms: number;
}

export interface LogLine {
  level: 'INFO' | 'WARNING' | 'ERROR';
  message: string;
  from_state: string | null;
  to_state: string | null;
  at: string;
  details: unknown;
}

export interface ApiAnswer<T> {
  status: number;
  body: T;
}

export interface Orchestrator {
  url: string;
  dataDir: string;
  /** Everything the process wrote (JSON log lines), for a post-mortem. */
  output(): string;
  trigger(pkg: SignedPackage): Promise<ApiAnswer<{ task_id: string; state: string; error?: unknown }>>;
  progress(taskId: string): Promise<Progress>;
  /** Every log line of the task, oldest first. */
  logs(taskId: string): Promise<LogLine[]>;
  cancel(taskId: string, reason: string): Promise<ApiAnswer<Record<string, unknown>>>;
  rollback(taskId: string, timeoutMs?: number): Promise<ApiAnswer<Record<string, unknown>>>;
  health(): Promise<
    ApiAnswer<{ status: string; checks: { name: string; status: string; detail: string }[] }>
  >;
  /** Polls progress (every `intervalMs`) until `done` says so; rejects after timeoutMs. */
  waitFor(
    taskId: string,
    done: (p: Progress) => boolean,
    options?: { timeoutMs?: number; intervalMs?: number },
  ): Promise<Progress>;
  /** Waits for a final state. */
  waitFinal(taskId: string, timeoutMs?: number): Promise<Progress>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /**
   * SIGKILL, as an OOM kill or a power cut would end it, and waits for the exit; the data dir stays
   * for the next process (`startOrchestrator({ dataDir })`).
   */
  kill(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `ha-orchestrator config set` on the data dir, before the service starts. */
async function setUpgradeParameters(dataDir: string, parameters: UpgradeParameters): Promise<void> {
  const pairs = Object.entries(parameters).map(([key, value]) => `${key}=${value}`);
  if (pairs.length === 0) return;
  const result = await runCommand(process.execPath, [ORCHESTRATOR_CLI, 'config', 'set', ...pairs], {
    env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir },
    timeoutMs: 60_000,
  });
  if (result.code !== 0)
    throw new Error(`ha-orchestrator config set exited ${result.code}: ${result.stderr.trim()}`);
}

/** Starts `ha-orchestrator serve` on a loopback port and resolves once it listens. */
export async function startOrchestrator(options: OrchestratorOptions): Promise<Orchestrator> {
  if (!existsSync(ORCHESTRATOR_CLI))
    throw new Error(`${ORCHESTRATOR_CLI} is missing: run \`pnpm --filter @upgrade/ha-orchestrator build\``);
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'ha-orchestrator-lab-')));
  const keysDir = join(dataDir, 'signing-keys');
  await mkdir(keysDir, { recursive: true });
  await writeFile(join(keysDir, 'release.pem'), options.keys.publicPem);
  await setUpgradeParameters(dataDir, options.upgrade ?? {});

  const token = randomBytes(24).toString('hex');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    ...options.lab.orchestratorEnv(options.primary ?? 'node-a'),
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    DATA_DIR: dataDir,
    API_TOKENS: `lab-tests:${token}`,
    API_ALLOWED_IPS: '127.0.0.1/32',
    SIGNING_PUBLIC_KEYS_DIR: keysDir,
    SSH_CONNECT_TIMEOUT_MS: '5000',
    SSH_CALL_TIMEOUT_MS: '60000',
    // A dead link is noticed after ~4 s, well before a quick call's healthCheckTimeoutMs.
    SSH_KEEPALIVE_INTERVAL_MS: '1000',
    HEALTH_NODE_TIMEOUT_MS: '5000',
    SHUTDOWN_TIMEOUT_MS: '60000',
    ...options.env,
  };
  // cwd = the data dir: the service also reads ./.env, which must not be the developer's.
  const child: ChildProcess = spawn(process.execPath, [ORCHESTRATOR_CLI, 'serve'], {
    env,
    cwd: dataDir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let listening: string | null = null;
  const onData = (chunk: Buffer): void => {
    const text = chunk.toString();
    output += text;
    if (listening !== null) return;
    for (const line of text.split('\n')) {
      if (!line.includes('ha-orchestrator listening')) continue;
      try {
        const docs = (JSON.parse(line) as { docs?: string }).docs;
        if (typeof docs === 'string') listening = docs.replace(/\/docs$/, '');
      } catch {
        // not a JSON line
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.on('exit', (code) => {
      exitCode = code;
      resolve();
    }),
  );
  const listenTimeoutMs = options.listenTimeoutMs ?? 60_000;
  const deadline = Date.now() + listenTimeoutMs;
  while (listening === null) {
    if (exitCode !== undefined)
      throw new Error(`ha-orchestrator exited ${exitCode} before listening:\n${output.slice(-4000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`ha-orchestrator did not listen within ${listenTimeoutMs} ms:\n${output.slice(-4000)}`);
    }
    await sleep(50);
  }
  const url: string = listening;
  const auth = { authorization: `Bearer ${token}` };

  const api = async <T>(
    method: string,
    path: string,
    body?: FormData | Record<string, unknown>,
    timeoutMs = 30_000,
  ): Promise<ApiAnswer<T>> => {
    const init: RequestInit = { method, headers: { ...auth }, signal: AbortSignal.timeout(timeoutMs) };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { ...auth, 'content-type': 'application/json' };
    }
    const response = await fetch(`${url}${path}`, init);
    const text = await response.text();
    return { status: response.status, body: (text === '' ? {} : JSON.parse(text)) as T };
  };
  const progress = async (taskId: string): Promise<Progress> => {
    const answer = await api<Progress>('GET', `/api/v1/upgrade/progress/${taskId}`);
    if (answer.status !== 200)
      throw new Error(`progress of ${taskId} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    return answer.body;
  };
  const waitFor: Orchestrator['waitFor'] = async (taskId, done, waitOptions = {}) => {
    const timeoutMs = waitOptions.timeoutMs ?? 120_000;
    const until = Date.now() + timeoutMs;
    for (;;) {
      const p = await progress(taskId);
      if (done(p)) return p;
      if (Date.now() > until)
        throw new Error(
          `task ${taskId} still ${p.state} (${p.current_step ?? '-'}: ${p.last_message ?? ''}) after ${timeoutMs} ms`,
        );
      await sleep(waitOptions.intervalMs ?? 250);
    }
  };

  return {
    url,
    dataDir,
    output: () => output,
    async trigger(pkg) {
      const form = new FormData();
      form.append('package', new Blob([pkg.zip], { type: 'application/zip' }), `app-${pkg.version}.zip`);
      form.append('signature', pkg.signature);
      return api('POST', '/api/v1/upgrade/trigger', form);
    },
    progress,
    async logs(taskId) {
      const lines: LogLine[] = [];
      for (let page = 1; ; page++) {
        const answer = await api<{ items: LogLine[]; total: number }>(
          'GET',
          `/api/v1/upgrade/logs/${taskId}?page=${page}&page_size=100`,
        );
        if (answer.status !== 200) throw new Error(`logs of ${taskId} answered ${answer.status}`);
        lines.push(...answer.body.items);
        if (answer.body.items.length === 0 || lines.length >= answer.body.total) break;
      }
      return lines.reverse();
    },
    cancel: (taskId, reason) => api('POST', `/api/v1/upgrade/cancel/${taskId}`, { reason }),
    rollback: (taskId, timeoutMs = 180_000) =>
      api('POST', `/api/v1/upgrade/rollback/${taskId}`, undefined, timeoutMs),
    async health() {
      const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(20_000) });
      return { status: response.status, body: (await response.json()) as never };
    },
    waitFor,
    waitFinal: (taskId, timeoutMs = 180_000) => waitFor(taskId, (p) => p.final, { timeoutMs }),
    async stop() {
      if (exitCode === undefined) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 70_000);
        await exited;
        clearTimeout(killer);
      }
      if (options.dataDir === undefined || options.removeDataDir === true)
        await rm(dataDir, { recursive: true, force: true });
    },
    async kill() {
      if (exitCode === undefined) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
