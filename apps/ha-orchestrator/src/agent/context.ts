// What every operation gets: the node's config, the operation's deadline (an abort signal that
// fires with TIMEOUT), and a command runner bound to both.
import type { AgentConfig } from './config.js';
import { runCommand, type RunResult } from './exec.js';

export interface AgentContext {
  config: AgentConfig;
  /** Aborts (reason: an UpgradeError TIMEOUT) when the operation's time is up. */
  signal: AbortSignal;
  /** Epoch ms at which the operation's time is up. */
  deadline: number;
  /** Milliseconds left before the deadline (at least 1). */
  remaining(): number;
  /** Runs a command from the config with extra validated arguments, bounded by the deadline. */
  run(
    argv: readonly string[],
    options?: { env?: Record<string, string> | undefined; timeoutMs?: number },
  ): Promise<RunResult>;
}

export function createContext(config: AgentConfig, signal: AbortSignal, deadline: number): AgentContext {
  const remaining = (): number => Math.max(1, deadline - Date.now());
  return {
    config,
    signal,
    deadline,
    remaining,
    run: (argv, options = {}) =>
      runCommand(argv, {
        timeoutMs: Math.min(options.timeoutMs ?? Number.POSITIVE_INFINITY, remaining()),
        signal,
        ...(options.env === undefined ? {} : { env: options.env }),
      }),
  };
}
