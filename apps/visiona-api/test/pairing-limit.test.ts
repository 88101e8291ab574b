// The pairing rate limit is configurable: bulk provisioning behind one NAT raises it.
import { describe, expect, it } from 'vitest';
import { loadVisionaConfig } from '../src/config.js';
import { appSettings } from '../src/main.js';
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
