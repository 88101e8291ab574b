// Running a command with optional stdin and a deadline, keeping its exit code instead of throwing:
// the lab's scripts and ssh answer with meaningful exit codes.
import { spawn } from 'node:child_process';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs `command args`, resolving with its exit code (-1 when it could not start or timed out). */
export async function runCommand(
  command: string,
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const finish = (code: number, extra = ''): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, stdout, stderr: stderr + extra });
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(-1, `\n${command} timed out after ${options.timeoutMs} ms`);
    }, options.timeoutMs ?? 60_000);
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => finish(-1, `\n${error.message}`));
    child.on('close', (code) => finish(code ?? -1));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}
