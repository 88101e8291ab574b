// Runs one command of the agent: argv only (never a shell), its own process group so a timeout
// kills everything it started, bounded output kept for messages.
import { spawn } from 'node:child_process';
import { UpgradeError, abortError } from '@upgrade/core';

export interface RunOptions {
  env?: Record<string, string>;
  /** Kill the command (and its process group) after this long: TIMEOUT. */
  timeoutMs: number;
  /** The operation's deadline: aborting kills the command and rejects with the signal's reason. */
  signal?: AbortSignal;
  cwd?: string;
  /** Bytes kept of stdout and of stderr each. Default 1 MiB. */
  maxOutput?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `argv[0]` with `argv.slice(1)`; resolves with its exit code (non-zero is not an error here). */
export function runCommand(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  const [command, ...args] = argv;
  if (command === undefined) return Promise.reject(new UpgradeError('CONFIG_INVALID', 'empty command'));
  const what = argv.join(' ');
  const max = options.maxOutput ?? 1024 * 1024;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(abortError(options.signal));
      return;
    }
    const child = spawn(command, args, {
      env: { ...process.env, ...options.env },
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      windowsHide: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    // A pipe error (the child's end torn down) ends the output, not the agent: the exit code or
    // the kill still decides the result.
    child.stdout.on('error', () => undefined);
    child.stderr.on('error', () => undefined);
    child.stdout.on('data', (chunk: Buffer) => {
      if (outBytes < max) out.push(chunk);
      outBytes += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (errBytes < max) err.push(chunk);
      errBytes += chunk.length;
    });
    let failure: UpgradeError | null = null;
    const kill = (reason: UpgradeError): void => {
      failure ??= reason;
      killGroup(child.pid);
    };
    const timer = setTimeout(
      () =>
        kill(
          new UpgradeError(
            'TIMEOUT',
            `${what} did not finish within ${options.timeoutMs} ms and was killed`,
            {
              details: { timeoutMs: options.timeoutMs },
            },
          ),
        ),
      options.timeoutMs,
    );
    const signal = options.signal;
    const onAbort = (): void => {
      if (signal !== undefined) kill(abortError(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    child.on('error', (error: NodeJS.ErrnoException) => {
      done();
      reject(
        new UpgradeError(
          'UNAVAILABLE',
          error.code === 'ENOENT'
            ? `command not found: ${command}`
            : `cannot run ${command}: ${error.message}`,
          { cause: error, retryable: false },
        ),
      );
    });
    child.on('close', (code, signal) => {
      done();
      // Whatever the command left running in its group goes with it.
      killGroup(child.pid);
      if (failure !== null) {
        reject(failure);
        return;
      }
      resolve({
        code: code ?? (signal === null ? -1 : 128),
        stdout: Buffer.concat(out).toString('utf8').slice(0, max),
        stderr: Buffer.concat(err).toString('utf8').slice(0, max),
      });
    });
  });
}

/** The first meaningful lines of a command's error output, for a message. */
export function excerpt(result: RunResult, limit = 400): string {
  const text = (result.stderr.trim() || result.stdout.trim()).replace(/\s+/g, ' ');
  if (text === '') return 'no output';
  return text.length > limit ? `${text.slice(0, limit)}...` : text;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}
