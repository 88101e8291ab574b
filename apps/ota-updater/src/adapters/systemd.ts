// ServiceManager over `systemctl`. Every call is execFile (no shell: unit names never meet a shell
// parser), bounded by a timeout, and turned into an UpgradeError naming the command and its output.
import { execFile } from 'node:child_process';
import { UpgradeError, abortError } from '@upgrade/core';
import { isValidUnitName } from '../manifest.js';
import type { ServiceManager } from '../ports.js';

/** Options of `createSystemdServiceManager`. */
export interface SystemdOptions {
  /** The executable, looked up on `env.PATH` when it has no slash. Default `systemctl`. */
  command?: string;
  /** Environment of every call (tests put a fake systemctl first on its PATH). Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Bound on `start` / `stop`. Default 90 s, systemd's own default stop timeout. */
  timeoutMs?: number;
  /** Bound on `is-active`. Default 10 s. */
  queryTimeoutMs?: number;
}

/** The exit code `systemctl is-active` uses for "not active" (inactive, failed, unknown unit). */
const NOT_ACTIVE = 3;
/** How much of systemctl's output goes into an error message. */
const MAX_OUTPUT = 500;

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A ServiceManager that runs `systemctl start|stop|is-active <units...>`.
 *
 * @example const services = createSystemdServiceManager({ timeoutMs: 60_000 })
 */
export function createSystemdServiceManager(options: SystemdOptions = {}): ServiceManager {
  const command = options.command ?? 'systemctl';
  const timeoutMs = options.timeoutMs ?? 90_000;
  const queryTimeoutMs = options.queryTimeoutMs ?? 10_000;
  const run = (args: string[], timeout: number, signal?: AbortSignal): Promise<RunResult> =>
    runSystemctl(command, args, { timeout, env: options.env ?? process.env, signal });

  const change = async (verb: 'start' | 'stop', units: readonly string[], signal?: AbortSignal) => {
    if (units.length === 0) return;
    checkUnits(units);
    const result = await run([verb, ...units], timeoutMs, signal);
    if (result.code !== 0)
      throw new UpgradeError(
        'DEPLOYMENT_FAILED',
        `systemctl ${verb} ${units.join(' ')} failed (exit ${result.code}): ${excerpt(result)}; ` +
          `see systemctl status / journalctl -u for the unit`,
        { details: { verb, units: [...units], exitCode: result.code } },
      );
  };

  return {
    start: (units, signal) => change('start', units, signal),
    stop: (units, signal) => change('stop', units, signal),
    async isActive(unit, signal) {
      checkUnits([unit]);
      const result = await run(['is-active', unit], queryTimeoutMs, signal);
      if (result.code === 0) return result.stdout.trim() === 'active';
      if (result.code === NOT_ACTIVE) return false;
      throw new UpgradeError(
        'UNAVAILABLE',
        `systemctl is-active ${unit} failed (exit ${result.code}): ${excerpt(result)}`,
        { details: { unit, exitCode: result.code } },
      );
    },
  };
}

function checkUnits(units: readonly string[]): void {
  const bad = units.filter((u) => !isValidUnitName(u));
  if (bad.length > 0)
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `not a systemd unit name: ${bad.map((u) => `"${u}"`).join(', ')}`,
    );
}

function runSystemctl(
  command: string,
  args: string[],
  options: { timeout: number; env: NodeJS.ProcessEnv; signal: AbortSignal | undefined },
): Promise<RunResult> {
  const what = `systemctl ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(abortError(options.signal));
      return;
    }
    execFile(
      command,
      args,
      {
        env: options.env,
        timeout: options.timeout,
        killSignal: 'SIGKILL',
        maxBuffer: 1024 * 1024,
        windowsHide: true,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ code: 0, stdout, stderr });
          return;
        }
        if (options.signal?.aborted) reject(abortError(options.signal));
        else if (error.killed)
          reject(
            new UpgradeError('TIMEOUT', `${what} did not finish within ${options.timeout} ms`, {
              cause: error,
              details: { timeoutMs: options.timeout },
            }),
          );
        else if (typeof error.signal === 'string')
          reject(new UpgradeError('UNAVAILABLE', `${what} was killed by ${error.signal}`, { cause: error }));
        else if (typeof error.code === 'number') resolve({ code: error.code, stdout, stderr });
        else
          reject(
            new UpgradeError(
              'UNAVAILABLE',
              `cannot run ${command} (${String(error.code ?? error.message)}); is systemd installed and on PATH?`,
              { cause: error },
            ),
          );
      },
    );
  });
}

function excerpt(result: RunResult): string {
  const text = (result.stderr.trim() || result.stdout.trim() || 'no output').replace(/\s+/g, ' ');
  return text.length > MAX_OUTPUT ? `${text.slice(0, MAX_OUTPUT)}...` : text;
}
