// The built service as a real process (`node dist/cli.js serve`), for tests that must kill it the
// way a crash or a power cut does. It runs in its own process group, so a test can kill the service
// alone (its in-flight `systemctl` calls run on, like systemd jobs outlive the client that asked
// for them) or the whole group (a power cut takes everything). Logs are the JSON lines the service
// writes on stdout, parsed and kept.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The app directory (apps/ota-updater). */
export const APP_DIR = fileURLToPath(new URL('..', import.meta.url));
/** What `pnpm --filter @upgrade/ota-updater build` produces. */
export const CLI_PATH = join(APP_DIR, 'dist', 'cli.js');

/** One pino line as the service writes it. */
export interface LogLine {
  level: number;
  /** ISO 8601, e.g. 2026-01-28T09:15:02.123Z. */
  time: string;
  msg: string;
  [key: string]: unknown;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  readonly pid: number;
  /** `http://127.0.0.1:<port>`, from the `ota-updater listening` line. */
  readonly address: string;
  /** The `docs` field of that line. */
  readonly docs: string;
  /** Parsed JSON log lines, in order. */
  readonly logs: LogLine[];
  /** Lines that were not JSON (stdout) and everything on stderr. */
  readonly otherOutput: string[];
  /** Settles when the process has exited. */
  readonly exited: Promise<ProcessExit>;
  /** Whether it has exited. */
  readonly alive: boolean;
  /** SIGKILL to the service process only; resolves once it is gone. */
  kill(): Promise<ProcessExit>;
  /** SIGKILL to its whole process group (the service and the commands it runs); resolves once it is gone. */
  killGroup(): Promise<ProcessExit>;
  /** SIGTERM, then SIGKILL to the group after `graceMs`. */
  stop(graceMs?: number): Promise<ProcessExit>;
  /** The first log line (already written or still to come) that `match` accepts. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** The last `count` lines of output, JSON or not, for a failure message. */
  tail(count?: number): string;
}

export interface StartServiceOptions {
  /** The whole environment of the process (nothing is inherited). */
  env: NodeJS.ProcessEnv;
  /** Working directory; `.env` there is read by the CLI, so give it a directory without one. */
  cwd: string;
  /** Default CLI_PATH. */
  cliPath?: string;
  /** How long to wait for the `listening` line. Default 20 000. */
  startTimeoutMs?: number;
}

/** The message the service logs once it accepts requests. */
export const LISTENING_MESSAGE = 'ota-updater listening';

/**
 * Process groups of the services started here, until waitForProcessGroupExit saw them empty (the
 * service may be gone while commands it started still run in its group).
 */
const running = new Set<number>();

/**
 * SIGKILLs every service process group started by this module that is still running. Synchronous,
 * so it can run in a process 'exit' handler: the services are detached (their own process group),
 * and a test runner that dies or is interrupted must not leave them behind.
 */
export function killAllServiceProcessesSync(): void {
  for (const pid of running) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Spawns `node <cli> serve` and resolves once it logged `ota-updater listening`. Rejects (and
 * kills it) when it exits or stays silent first, with the end of its output in the message.
 */
export async function startServiceProcess(options: StartServiceOptions): Promise<ServiceProcess> {
  const cli = options.cliPath ?? CLI_PATH;
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run pnpm --filter @upgrade/ota-updater build`);
  const child = spawn(process.execPath, [cli, 'serve'], {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn ${process.execPath} ${cli}`);
  running.add(pid);

  const logs: LogLine[] = [];
  const otherOutput: string[] = [];
  const raw: string[] = [];
  const waiters = new Set<{ match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }>();
  let exit: ProcessExit | null = null;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  const remember = (line: string): void => {
    raw.push(line);
    if (raw.length > 400) raw.shift();
  };
  createInterface({ input: child.stdout }).on('line', (text) => {
    remember(text);
    const line = parseLogLine(text);
    if (line === null) {
      otherOutput.push(text);
      return;
    }
    logs.push(line);
    for (const waiter of waiters) {
      if (waiter.match(line)) {
        waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  });
  createInterface({ input: child.stderr }).on('line', (text) => {
    remember(`stderr: ${text}`);
    otherOutput.push(text);
  });

  const tail = (count = 30): string => raw.slice(-count).join('\n');
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-pid, signal);
    } catch {
      // the group is already gone
    }
  };
  const waitForLog = (match: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> => {
    const found = logs.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<LogLine>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (line: LogLine) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`no matching log line within ${timeoutMs} ms; last output:\n${tail()}`));
      }, timeoutMs);
      waiters.add(waiter);
      void exited.then(() => {
        if (!waiters.delete(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`the service exited (${describeExit(exit)}) first; last output:\n${tail()}`));
      });
    });
  };

  let listening: LogLine;
  try {
    listening = await waitForLog((l) => l.msg === LISTENING_MESSAGE, options.startTimeoutMs ?? 20_000);
  } catch (error) {
    signalGroup('SIGKILL');
    await exited;
    throw error;
  }
  const docs = typeof listening.docs === 'string' ? listening.docs : '';
  if (!docs.endsWith('/docs')) {
    signalGroup('SIGKILL');
    await exited;
    throw new Error(`the listening line carries no docs address: ${tail(1)}`);
  }

  return {
    pid,
    address: docs.slice(0, -'/docs'.length),
    docs,
    logs,
    otherOutput,
    exited,
    get alive() {
      return exit === null;
    },
    async kill() {
      if (exit === null) process.kill(pid, 'SIGKILL');
      return exited;
    },
    async killGroup() {
      signalGroup('SIGKILL');
      return exited;
    },
    async stop(graceMs = 5_000) {
      if (exit !== null) return exit;
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
    waitForLog,
    tail,
  };
}

/** Live (non-zombie) processes of a process group: what a killed service left running. */
export async function liveProcessGroupMembers(pgid: number): Promise<number[]> {
  const members: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name: state, ppid, pgrp, ...
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') members.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return members;
}

/** Waits until no live process is left in the group; the stragglers' pids when the time runs out. */
export async function waitForProcessGroupExit(pgid: number, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const members = await liveProcessGroupMembers(pgid);
    if (members.length === 0) running.delete(pgid);
    if (members.length === 0 || Date.now() >= deadline) return members;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** True when dist/cli.js exists and is newer than every file under src/. */
export async function isBuildFresh(cliPath = CLI_PATH, srcDir = join(APP_DIR, 'src')): Promise<boolean> {
  const built = await stat(cliPath).catch(() => null);
  if (built === null) return false;
  const entries = await readdir(srcDir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const info = await stat(join(entry.parentPath, entry.name));
    if (info.mtimeMs > built.mtimeMs) return false;
  }
  return true;
}

function parseLogLine(text: string): LogLine | null {
  if (!text.startsWith('{')) return null;
  try {
    const value = JSON.parse(text) as Partial<LogLine> | null;
    if (value === null || typeof value !== 'object' || typeof value.msg !== 'string') return null;
    return value as LogLine;
  } catch {
    return null;
  }
}

function describeExit(exit: ProcessExit | null): string {
  if (exit === null) return 'still running';
  return exit.signal === null ? `exit code ${String(exit.code)}` : `signal ${exit.signal}`;
}
