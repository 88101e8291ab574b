// The API's event loop stalling for longer than a tunnel heartbeat (a long GC pause, a CPU-starved
// host) must not close a live agent's tunnel as "heartbeat missed": the agent, a process of its
// own (the built visiona-agent), answers the PING during the stall, and the ack waits in the
// socket until the loop runs again.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@upgrade/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAgentRun, requireAgentCli } from './agent-process.js';
import { Client, startTestApi } from './helpers.js';

const BEAT_MS = 250;
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Blocks this process's event loop, as a stall does. */
function stall(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy: nothing else of this process runs meanwhile
  }
}

describe('tunnel heartbeat across a stalled event loop', () => {
  beforeAll(requireAgentCli);

  it('keeps the tunnel of an agent that answered while the API was stalled', async () => {
    const api = await startTestApi({}, { tunnel: { heartbeatIntervalMs: BEAT_MS } });
    cleanups.push(() => api.close());
    const url = await api.app.listen({ port: 0, host: '127.0.0.1' });
    const owner = new Client(api.app);
    await owner.signUp('owner@example.com');
    const issued = await owner.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
    const paired = await new Client(api.app).call<{ device: { id: string }; session_token: string }>(
      'POST',
      '/api/agent/pair',
      { pairing_code: issued.body.pairing_code, serial: 'SN-STALL' },
    );
    const dir = mkdtempSync(join(tmpdir(), 'visiona-stall-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'visiona-agent.token'), paired.body.session_token, { mode: 0o600 });

    const agent = startAgentRun(url, dir, cleanups);
    const deviceUrl = `/api/devices/${paired.body.device.id}`;
    await waitFor(
      async () => (await owner.call<{ tunnel_connected: boolean }>('GET', deviceUrl)).body.tunnel_connected,
      { timeoutMs: 20_000, what: 'the agent process to connect' },
    );

    // Each stall outlasts several beats; between two, the loop turns once: a beat sends its PING,
    // and the next stall begins before the agent's ack can arrive.
    for (let i = 0; i < 4; i++) {
      stall(BEAT_MS * 6);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }

    const deps = await owner.call('GET', `${deviceUrl}/agent/deps`);
    expect(deps.status).toBe(200);
    agent.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    const lines = agent
      .output()
      .split('\n')
      .filter((line) => line.includes('"msg"'));
    expect(lines.filter((line) => line.includes('"msg":"connected to the API"'))).toHaveLength(1);
    expect(lines.filter((line) => line.includes('disconnected'))).toEqual([]);
  });
});
