// The logs of a failure run carry no secret: with PostgreSQL cut mid-run, registration, sign-in,
// pairing and signed-in calls fail and are logged, and no line holds a password, a password hash,
// a session cookie, a device token, a pairing code, an email, or a query with its parameters.
import { startTcpProxy, useRedisPrefix, useTestDatabase } from '@upgrade/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { openBackends } from '../src/main.js';
import { Client, defaultEnv, TEST_SETTINGS } from './helpers.js';

const database = useTestDatabase();
const redis = useRedisPrefix();
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const PASSWORD = 'tr0ub4dor&3-horse-battery';
const OTHER_PASSWORD = 'another secret passphrase';

describe('logs of a failure run', () => {
  it('hold no password, hash, cookie, token, pairing code, email or query parameter', async () => {
    const parsed = new URL(database.url);
    const proxy = await startTcpProxy({ host: parsed.hostname, port: Number(parsed.port || 5432) });
    cleanups.push(() => proxy.close());
    const lines: string[] = [];
    const backends = await openBackends(
      defaultEnv({
        DATABASE_URL: proxy.via(database.url),
        DATABASE_CONNECT_TIMEOUT_MS: '500',
        REDIS_URL: redis.url,
        REDIS_KEY_PREFIX: redis.prefix,
      }),
    );
    cleanups.push(() => backends.close());
    const app = await buildApp({
      stores: backends.stores,
      sessions: backends.sessions,
      healthChecks: backends.healthChecks,
      settings: TEST_SETTINGS,
      logger: { level: 'trace', stream: { write: (line: string) => lines.push(line) } },
    });
    cleanups.push(() => app.close());

    const ada = new Client(app);
    await ada.signUp('ada@example.com', PASSWORD);
    const issued = await ada.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
    const paired = await new Client(app, '10.0.0.9').call<{ session_token: string }>(
      'POST',
      '/api/agent/pair',
      { pairing_code: issued.body.pairing_code, serial: 'SN-1' },
    );
    expect(paired.status).toBe(201);
    const code = await ada.call<{ pairing_code: string }>('POST', '/api/devices/pairing-tokens');
    const wrong = await new Client(app, '10.0.0.2').call('POST', '/api/auth/login', {
      email: 'ada@example.com',
      password: 'not the password',
    });
    expect(wrong.status).toBe(401);

    proxy.cut();
    const failures = [
      await new Client(app, '10.0.0.3').call('POST', '/api/auth/register', {
        email: 'grace@example.com',
        password: OTHER_PASSWORD,
      }),
      await new Client(app, '10.0.0.4').call('POST', '/api/auth/login', {
        email: 'ada@example.com',
        password: PASSWORD,
      }),
      await ada.call('GET', '/api/models'),
      await ada.call('POST', '/api/models', { name: 'm', chip: 'hailo8', source: 'zoo', input_shape: [1] }),
      await new Client(app, '10.0.0.9').call('POST', '/api/agent/pair', {
        pairing_code: code.body.pairing_code,
        serial: 'SN-2',
      }),
    ];
    expect(failures.map((answer) => answer.status)).toEqual([503, 503, 503, 503, 503]);
    // The failures were logged, as errors, with their cause chain.
    const errors = lines.filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
    expect(errors.length).toBeGreaterThanOrEqual(5);

    const log = lines.join('');
    const secrets = {
      password: PASSWORD,
      'other password': OTHER_PASSWORD,
      'password hash': 'scrypt$',
      'session cookie': ada.cookie ?? 'no cookie',
      'device token': paired.body.session_token,
      'pairing code': code.body.pairing_code,
      email: 'ada@example.com',
      'other email': 'grace@example.com',
      'query parameters': 'params',
      'failed query': 'Failed query',
    };
    const found = Object.entries(secrets)
      .filter(([, secret]) => log.toLowerCase().includes(secret.toLowerCase()))
      .map(([name]) => name);
    expect(found).toEqual([]);
  });
});
