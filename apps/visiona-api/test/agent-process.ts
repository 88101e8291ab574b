// The built visiona-agent CLI (dist/agent-cli.js) as a real process, for the tests that run it.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const AGENT_CLI = fileURLToPath(new URL('../dist/agent-cli.js', import.meta.url));

/** Fails with the command to run when the CLI is not built. */
export function requireAgentCli(): void {
  if (!existsSync(AGENT_CLI)) {
    throw new Error(`${AGENT_CLI} is missing: run pnpm --filter @upgrade/visiona-api build`);
  }
}

export interface AgentRun {
  /** The exit code, once the process has exited. */
  readonly exited: Promise<number | null>;
  /** What the process wrote so far (stdout, and stderr when asked). */
  output(): string;
  kill(signal: NodeJS.Signals): void;
}

/**
 * Starts `visiona-agent run --api <url>` in `cwd` (where its token file is) and registers its
 * SIGKILL, should it outlive the test, in `cleanups`.
 */
export function startAgentRun(
  url: string,
  cwd: string,
  cleanups: (() => Promise<unknown> | void)[],
  options: { stderr?: boolean } = {},
): AgentRun {
  const child = spawn(process.execPath, [AGENT_CLI, 'run', '--api', url], {
    cwd,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  if (options.stderr === true) child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  return { exited, output: () => output, kill: (signal) => child.kill(signal) };
}
