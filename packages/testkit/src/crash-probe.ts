// Runs a real service process, waits until it is up, provokes an unhandled rejection or an uncaught
// exception inside it (fakes/provoke-crash.mjs, preloaded with `node --import`), and reports how it
// ended: exit code, the JSON lines it wrote, everything else it printed.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The preload that raises the unhandled error on SIGUSR2. */
export const PROVOKE_CRASH_MODULE = fileURLToPath(new URL('../fakes/provoke-crash.mjs', import.meta.url));

export type ProvokedCrash = 'rejection' | 'exception';

export interface CrashProbeOptions {
  /** Node arguments after the preload: the script and its arguments (`[cli, 'serve']`). */
  args: string[];
  /** The process environment (PATH is added). */
  env?: Record<string, string>;
  cwd?: string;
  /** True for the output line (stdout or stderr) that says the process is up and its policy installed. */
  ready: (line: string) => boolean;
  provoke: ProvokedCrash;
  /** Bound on start-up and on the exit after the provocation. Default 30 000 ms. */
  timeoutMs?: number;
}

export interface CrashProbeResult {
  /** Exit code, or null when ended by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Every stdout/stderr line that parsed as a JSON object. */
  jsonLines: Record<string, unknown>[];
  stdout: string;
  stderr: string;
}

/** Starts the process, provokes the crash once it is ready, and resolves when it has exited. */
export async function probeCrash(options: CrashProbeOptions): Promise<CrashProbeResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const child = spawn(process.execPath, ['--import', PROVOKE_CRASH_MODULE, ...options.args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', ...options.env, PROVOKE_CRASH: options.provoke },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  const jsonLines: Record<string, unknown>[] = [];
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  for (const name of ['stdout', 'stderr'] as const) {
    createInterface({ input: child[name] }).on('line', (line) => {
      out[name] += `${line}\n`;
      const parsed = parseObject(line);
      if (parsed !== undefined) jsonLines.push(parsed);
      if (options.ready(line)) onReady();
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const within = async <T>(what: string, promise: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        promise,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`${what} within ${timeoutMs} ms; stdout: ${out.stdout}\nstderr: ${out.stderr}`));
          }, timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
  const first = await within(
    'the process was not ready',
    Promise.race([ready.then(() => 'ready' as const), exited.then(() => 'exited' as const)]),
  );
  if (first === 'exited') {
    throw new Error(`the process exited before it was ready; stdout: ${out.stdout}\nstderr: ${out.stderr}`);
  }
  child.kill('SIGUSR2');
  const { code, signal } = await within('the process did not exit after the provoked crash', exited);
  return { code, signal, jsonLines, ...out };
}

function parseObject(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
