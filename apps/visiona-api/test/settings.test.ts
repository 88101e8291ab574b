// Settings as the operator sets them: the pairing rate limit (raised for bulk provisioning behind
// one NAT) and the warnings said at start-up.
import { describe, expect, it } from 'vitest';
import { loadVisionaConfig } from '../src/config.js';
import { appSettings, configWarnings } from '../src/main.js';
import { Client, startTestApi } from './helpers.js';

describe('pairing rate limit', () => {
  it('comes from PAIRING_RATE_LIMIT_MAX / _WINDOW_MS, 30 a minute by default', () => {
    expect(appSettings(loadVisionaConfig({})).pairRateLimit).toEqual({ max: 30, windowMs: 60_000 });
    expect(
      appSettings(loadVisionaConfig({ PAIRING_RATE_LIMIT_MAX: '500', PAIRING_RATE_LIMIT_WINDOW_MS: '1000' }))
        .pairRateLimit,
    ).toEqual({ max: 500, windowMs: 1_000 });
  });

  it('answers 429 past the configured number of attempts from one address', async () => {
    const api = await startTestApi({}, { pairRateLimit: { max: 2, windowMs: 60_000 } });
    try {
      const agent = new Client(api.app, '10.9.9.9');
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const answer = await agent.call('POST', '/api/agent/pair', {
          pairing_code: 'ABCD-2345',
          serial: `SN-${i}`,
        });
        statuses.push(answer.status);
      }
      expect(statuses).toEqual([401, 401, 429]);
    } finally {
      await api.close();
    }
  });
});

describe('start-up warnings', () => {
  it('say loudly that a Secure cookie without a declared TLS proxy breaks sign-in over plain HTTP', () => {
    expect(configWarnings(loadVisionaConfig({}))).toEqual([
      expect.stringContaining('browsers return the session cookie over HTTPS only'),
    ]);
    expect(configWarnings(loadVisionaConfig({ TRUST_PROXY: 'true' }))).toEqual([]);
    expect(configWarnings(loadVisionaConfig({ SESSION_COOKIE_SECURE: 'false' }))).toEqual([]);
  });
});
