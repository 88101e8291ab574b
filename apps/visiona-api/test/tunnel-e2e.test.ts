// The tunnel inside the whole app, as a user and a device meet it: the owner issues a pairing code,
// the reference agent pairs and dials in, the owner's requests reach the agent, unpairing ends it.
import { rejectionOf, waitFor } from '@upgrade/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { pairAgent, startReferenceAgent, type ReferenceAgent } from '../src/agent/index.js';
import { Client, startTestApi, type TestApi } from './helpers.js';

describe('tunnel in the app', () => {
  let api: TestApi | undefined;
  const agents: ReferenceAgent[] = [];
  afterEach(async () => {
    for (const agent of agents.splice(0)) await agent.close();
    await api?.close();
    api = undefined;
  });

  it('pairs an agent, forwards the owner’s requests to it, and cuts it off when the device is unpaired', async () => {
    // A beat is also the deadline of the previous PING: at 100 ms a loaded machine delayed the
    // round trip past it and the tunnel closed as "heartbeat missed" before the request below.
    api = await startTestApi({}, { tunnel: { heartbeatIntervalMs: 250, requestTimeoutMs: 5_000 } });
    await api.app.listen({ host: '127.0.0.1', port: 0 });
    const address = api.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('not listening on TCP');
    const apiUrl = `http://127.0.0.1:${address.port}`;
    const owner = new Client(api.app);
    await owner.signUp('owner@example.com');
    const issued = await owner.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
    expect(issued.status).toBe(201);

    const paired = await pairAgent({
      apiUrl,
      pairingCode: issued.body.pairing_code,
      serial: 'SN-E2E',
      name: 'door',
    });
    const reused = await rejectionOf(
      pairAgent({ apiUrl, pairingCode: issued.body.pairing_code, serial: 'SN-2' }),
    );
    expect([reused.code, reused.status]).toEqual(['UNAUTHORIZED', 401]);

    const agent = startReferenceAgent({
      apiUrl,
      sessionToken: paired.sessionToken,
      reconnect: { minMs: 20, maxMs: 100 },
    });
    agents.push(agent);
    await agent.connected;
    const deviceUrl = `/api/devices/${paired.device.id}`;
    await waitFor(async () => {
      const device = await owner.call<{ tunnel_connected: boolean }>('GET', deviceUrl);
      return device.body.tunnel_connected;
    });

    const deps = await owner.call('GET', `${deviceUrl}/agent/deps`);
    expect(deps.status).toBe(200);
    expect(deps.body).toEqual({ npu_runtime: 'ok', camera: 'ok', model_store: 'ok' });

    expect((await owner.call('DELETE', deviceUrl)).status).toBeLessThan(300);
    expect(await agent.stopped).toBe('unauthorized');
  });
});
