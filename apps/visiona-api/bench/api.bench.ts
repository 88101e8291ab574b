// `pnpm --filter @upgrade/visiona-api bench`: the API over real PostgreSQL and Redis on loopback.
// 1. GET /api/devices (a page of 50 of one user's 1,000 devices, signed in) beside a raw pg loop
//    issuing the same two queries (the page and the count) at the same concurrency.
// 2. GET /healthz (pings PostgreSQL and Redis) beside a bare node:http hello world.
// Prints req/s and p50/p99 for each. Env: TEST_DATABASE_URL, TEST_REDIS_URL, BENCH_SECONDS (5),
// BENCH_CONNECTIONS (16).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestDatabase, redisTestPrefix } from '@upgrade/testkit';
import { Pool } from 'undici';
import { startTestApi } from '../test/helpers.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const DEVICES = 1_000;

interface Result {
  requests: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/** Runs `once` from `CONNECTIONS` loops for `SECONDS`; latencies in ms. */
async function load(once: () => Promise<void>): Promise<Result> {
  const latencies: number[] = [];
  const until = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < until) {
        const started = performance.now();
        await once();
        latencies.push(performance.now() - started);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { requests: latencies.length, perSecond: latencies.length / SECONDS, p50: at(0.5), p99: at(0.99) };
}

function row(name: string, r: Result): string {
  return `${name.padEnd(34)} ${r.perSecond.toFixed(0).padStart(8)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms`;
}

const database = await createTestDatabase({ hint: 'visiona_bench' });
const redis = redisTestPrefix();
const api = await startTestApi(
  { DATABASE_URL: database.url, REDIS_URL: redis.url, REDIS_KEY_PREFIX: redis.prefix },
  { loginRateLimit: { max: 1000, windowMs: 60_000 } },
);
const hello = createServer((_req, res) => res.end('{"hello":"world"}'));
try {
  const url = await api.app.listen({ port: 0, host: '127.0.0.1' });
  const email = 'bench@example.com';
  const password = 'bench password 1234';
  await api.app.inject({ method: 'POST', url: '/api/auth/register', payload: { email, password } });
  const login = await api.app.inject({
    method: 'POST',
    url: '/api/auth/login',
    payload: { email, password },
  });
  const cookie = `visiona_session=${login.cookies[0]?.value ?? ''}`;
  const owner = (JSON.parse(login.body) as { user: { id: string } }).user.id;
  const handle = api.backends.database;
  if (handle?.kind !== 'postgres') throw new Error('the bench needs PostgreSQL');
  await handle.client.query(
    `INSERT INTO devices (owner_id, serial, name, pairing_status, created_at, updated_at)
     SELECT $1, 'BENCH-' || i, 'camera ' || i, 'paired', now() + i * interval '1 ms', now()
     FROM generate_series(1, ${DEVICES}) AS i`,
    [owner],
  );

  const pool = new Pool(url, { connections: CONNECTIONS });
  const get =
    (path: string, headers: Record<string, string> = {}) =>
    async () => {
      const res = await pool.request({ method: 'GET', path, headers });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}`);
    };
  const page = `SELECT id, owner_id, serial, name, pairing_status, online_status, agent_last_seen_at, created_at, updated_at
     FROM devices WHERE owner_id = $1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT 50 OFFSET 0`;
  const total = 'SELECT count(*) FROM devices WHERE owner_id = $1 AND deleted_at IS NULL';
  const raw = async () => {
    await Promise.all([handle.client.query(page, [owner]), handle.client.query(total, [owner])]);
  };

  await new Promise<void>((resolve) => hello.listen(0, '127.0.0.1', resolve));
  const helloPool = new Pool(`http://127.0.0.1:${(hello.address() as AddressInfo).port}`, {
    connections: CONNECTIONS,
  });
  const helloGet = async () => {
    const res = await helloPool.request({ method: 'GET', path: '/' });
    await res.body.text();
  };

  // Warm-up: JIT, pool connections, plan cache.
  await load(get('/api/devices?limit=50', { cookie }));
  console.log(`visiona-api bench: ${DEVICES} devices, ${CONNECTIONS} connections, ${SECONDS} s each`);
  console.log(row('GET /api/devices (API)', await load(get('/api/devices?limit=50', { cookie }))));
  console.log(row('same two queries (raw pg loop)', await load(raw)));
  console.log(row('GET /healthz (API, pings PG+Redis)', await load(get('/healthz'))));
  console.log(row('hello world (bare node:http)', await load(helloGet)));
  await pool.close();
  await helloPool.close();
} finally {
  hello.close();
  await api.close();
  await redis.cleanup();
  await database.drop();
}
