// The built visiona-agent CLI as a process (`pnpm --filter @upgrade/visiona-api build` first),
// against the API on a real loopback port: `pair` with a code the owner issued, `run` with the
// token it kept, a request forwarded through the tunnel, and a clean stop on SIGTERM.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useTestDatabase, waitFor } from '@upgrade/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_CLI, requireAgentCli, startAgentRun } from './agent-process.js';
import { Client, startTestApi } from './helpers.js';

const database = useTestDatabase();
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Runs the CLI to its end. Not spawnSync: the API answering it runs in this process. */
async function agentCli(args: string[], cwd: string) {
  const child = spawn(process.execPath, [AGENT_CLI, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

describe('visiona-agent CLI', () => {
  beforeAll(requireAgentCli);

  it('pairs with a code, runs the tunnel, serves a forwarded request and stops on SIGTERM', async () => {
    const api = await startTestApi({ DATABASE_URL: database.url });
    cleanups.push(() => api.close());
    const url = await api.app.listen({ port: 0, host: '127.0.0.1' });
    const dir = mkdtempSync(join(tmpdir(), 'visiona-agent-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

    const owner = new Client(api.app);
    await owner.signUp('owner@example.com');
    const issued = await owner.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
    const paired = await agentCli(
      ['pair', '--api', url, '--code', issued.body.pairing_code, '--serial', 'SN-CLI', '--name', 'porch'],
      dir,
    );
    expect([paired.code, paired.stderr]).toEqual([0, '']);
    const deviceId = /^paired device ([0-9a-f-]{36});/.exec(paired.stdout)?.[1];
    expect(deviceId).toBeDefined();
    const tokenFile = join(dir, 'visiona-agent.token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(tokenFile, 'utf8').trim()).not.toBe('');
    // The token is shown once, in the file: not on the terminal.
    expect(paired.stdout).not.toContain(readFileSync(tokenFile, 'utf8').trim());

    const again = await agentCli(
      ['pair', '--api', url, '--code', issued.body.pairing_code, '--serial', 'SN-2'],
      dir,
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^visiona-agent: pairing failed \(UNAUTHORIZED\)/);

    const agent = startAgentRun(url, dir, cleanups, { stderr: true });

    await waitFor(
      async () =>
        (await owner.call<{ tunnel_connected: boolean }>('GET', `/api/devices/${deviceId}`)).body
          .tunnel_connected,
      { timeoutMs: 20_000, what: 'the agent process to connect its tunnel' },
    );
    const deps = await owner.call('GET', '/api/system/deps');
    expect([deps.status, deps.body]).toEqual([
      200,
      { data: { npu_runtime: 'ok', camera: 'ok', model_store: 'ok' } },
    ]);
    const info = await owner.call<Record<string, unknown>>('GET', `/api/devices/${deviceId}/agent/info`);
    expect([info.status, info.body.agent]).toEqual([200, 'visiona-reference-agent']);

    agent.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    expect(agent.output()).toContain('"msg":"connected to the API"');
    expect(agent.output()).not.toContain(readFileSync(tokenFile, 'utf8').trim());
  });

  it('run exits 1 when the API refuses the token, and 2 without an API URL', async () => {
    const api = await startTestApi({});
    cleanups.push(() => api.close());
    const url = await api.app.listen({ port: 0, host: '127.0.0.1' });
    const dir = mkdtempSync(join(tmpdir(), 'visiona-agent-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

    const missing = await agentCli(['run'], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('visiona-agent: --api (or VISIONA_API_URL) is required');

    writeFileSync(join(dir, 'visiona-agent.token'), 'not-a-session-token\n');
    const refused = await agentCli(['run', '--api', url], dir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('visiona-agent: the API refused the session token: pair the device again\n');
  });
});
