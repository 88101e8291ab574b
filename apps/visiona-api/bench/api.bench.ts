// `pnpm --filter @upgrade/visiona-api bench`: the API over real PostgreSQL and Redis on loopback,
// each figure beside a baseline measured in the same run, at the same concurrency:
// 1. GET /api/devices (a page of 50 of one user's 1,000 devices, signed in) beside a raw pg loop
//    issuing the very statement the device store issues for that page (taken from the store's
//    query builder and prepared under the store's name, so the two cannot drift), on the same pool.
// 2. GET /healthz (pings PostgreSQL and Redis) beside a bare fastify hello world.
// Each pair is measured in alternation for BENCH_ROUNDS rounds after a warm-up of every contender,
// so a load change on a shared machine hits both sides of a ratio alike; the ratio printed is the
// median of the rounds' ratios. Env: TEST_DATABASE_URL, TEST_REDIS_URL, BENCH_SECONDS (5 per
// measurement), BENCH_ROUNDS (3), BENCH_CONNECTIONS (16).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, redisTestPrefix } from '@upgrade/testkit';
import { fillPlaceholders, sql } from 'drizzle-orm';
import { Pool } from 'undici';
import { DEVICE_PAGE_STATEMENT, devicePageQuery } from '../src/stores/devices.pg.js';
import { startTestApi } from '../test/helpers.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const WARM_UP_SECONDS = 2;
const DEVICES = 1_000;
const PAGE = { limit: 50, offset: 0 };

interface Result {
  requests: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/** Runs `once` from `CONNECTIONS` loops for `seconds`; latencies in ms. */
async function load(once: () => Promise<void>, seconds = SECONDS): Promise<Result> {
  const latencies: number[] = [];
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < until) {
        const began = performance.now();
        await once();
        latencies.push(performance.now() - began);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { requests: latencies.length, perSecond: latencies.length / elapsed, p50: at(0.5), p99: at(0.99) };
}

function row(name: string, r: Result): string {
  return `  ${name.padEnd(40)} ${r.perSecond.toFixed(0).padStart(7)} req/s   p50 ${r.p50.toFixed(2).padStart(7)} ms   p99 ${r.p99.toFixed(2).padStart(7)} ms`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Measures `subject` and `baseline` in alternation; prints every round and the median ratio. */
async function compare(
  title: string,
  subject: [string, () => Promise<void>],
  baseline: [string, () => Promise<void>],
): Promise<void> {
  console.log(title);
  const ratios: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const a = await load(subject[1]);
    const b = await load(baseline[1]);
    ratios.push(a.perSecond / b.perSecond);
    console.log(` round ${round}`);
    console.log(row(subject[0], a));
    console.log(row(baseline[0], b));
  }
  console.log(
    `  => ${subject[0]} / ${baseline[0]}: median ${median(ratios).toFixed(2)} (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})`,
  );
}

/** A bare fastify, the one @upgrade/service is built on (the app does not depend on it directly). */
interface BareFastify {
  get(path: string, handler: () => unknown): unknown;
  listen(options: { port: number; host: string }): Promise<string>;
  close(): Promise<void>;
}
const requireFromService = createRequire(fileURLToPath(import.meta.resolve('@upgrade/service')));
const fastify = requireFromService('fastify') as (options: { logger: boolean }) => BareFastify;

const database = await createTestDatabase({ hint: 'visiona_bench' });
const redis = redisTestPrefix();
const api = await startTestApi(
  { DATABASE_URL: database.url, REDIS_URL: redis.url, REDIS_KEY_PREFIX: redis.prefix },
  { loginRateLimit: { max: 1000, windowMs: 60_000 } },
);
const hello = fastify({ logger: false });
hello.get('/', () => ({ hello: 'world' }));
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
  await handle.client.query('ANALYZE devices');

  const pool = new Pool(url, { connections: CONNECTIONS });
  const get =
    (path: string, headers: Record<string, string> = {}) =>
    async () => {
      const res = await pool.request({ method: 'GET', path, headers });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}`);
    };
  const listDevices = get(`/api/devices?limit=${PAGE.limit}&offset=${PAGE.offset}`, { cookie });
  // The store's statement, named as the store names it: both sides send Bind/Execute only.
  const statement = devicePageQuery(handle.db, sql.placeholder('ownerId'), {
    limit: sql.placeholder('limit'),
    offset: sql.placeholder('offset'),
  }).toSQL();
  const values = fillPlaceholders(statement.params, { ownerId: owner, ...PAGE });
  const raw = async () => {
    const result = await handle.client.query({ name: DEVICE_PAGE_STATEMENT, text: statement.sql, values });
    if (result.rows.length !== PAGE.limit) throw new Error(`raw page returned ${result.rows.length} rows`);
  };

  const helloUrl = await hello.listen({ port: 0, host: '127.0.0.1' });
  const helloPool = new Pool(helloUrl, { connections: CONNECTIONS });
  const helloGet = async () => {
    const res = await helloPool.request({ method: 'GET', path: '/' });
    await res.body.text();
  };

  // Warm-up of every contender: JIT, pool connections, plan cache, script cache.
  for (const once of [listDevices, raw, get('/healthz'), helloGet]) await load(once, WARM_UP_SECONDS);
  console.log(
    `visiona-api bench: ${DEVICES} devices, ${CONNECTIONS} connections, ${ROUNDS} rounds of ${SECONDS} s per contender`,
  );
  await compare(
    'GET /api/devices?limit=50 beside the same statement over raw pg (same pool)',
    ['GET /api/devices (API)', listDevices],
    ['same statement (raw pg loop)', raw],
  );
  await compare(
    'GET /healthz beside a bare fastify hello world',
    ['GET /healthz (API, pings PG+Redis)', get('/healthz')],
    ['hello world (bare fastify)', helloGet],
  );
  await pool.close();
  await helloPool.close();
} finally {
  await hello.close();
  await api.close();
  await redis.cleanup();
  await database.drop();
}
