// Figures of a frozen PostgreSQL (SIGSTOP on a private server) under load: how long each request
// waits for its 503, the slowest one, /healthz, and how soon the API answers again once the server
// is thawed. Run: pnpm exec tsx bench/frozen.bench.ts [concurrent requests, default 30]
import { redisTestPrefix } from '@upgrade/testkit';
import { Client, startTestApi } from '../test/helpers.js';
import { startPrivatePostgres } from '../test/private-servers.js';

const CONCURRENT = Number(process.argv[2] ?? 30);
const PASSWORD = 'correct horse battery';
const MODEL = { name: 'm', chip: 'hailo8', source: 'zoo', labels: ['person'], input_shape: [1, 3] };

const pg = await startPrivatePostgres();
const redis = redisTestPrefix();
const api = await startTestApi({
  DATABASE_URL: pg.url,
  REDIS_URL: redis.url,
  REDIS_KEY_PREFIX: redis.prefix,
});
try {
  const owner = new Client(api.app);
  await owner.signUp('owner@example.com', PASSWORD);
  const model = await owner.call<{ id: string }>('POST', '/api/models', MODEL);
  const routes: [string, string, unknown?][] = [
    ['GET', '/api/models'],
    ['GET', `/api/models/${model.body.id}`],
    ['POST', '/api/models', MODEL],
    ['GET', '/api/devices'],
    ['POST', '/api/devices/pairing-tokens'],
    ['POST', '/api/auth/login', { email: 'owner@example.com', password: PASSWORD }],
    ['POST', '/api/auth/register', { email: 'new@example.com', password: PASSWORD }],
  ];
  const timed = async (method: string, url: string, payload?: unknown) => {
    const started = performance.now();
    const answer = await owner.call(method, url, payload);
    return { call: `${method} ${url}`, status: answer.status, ms: performance.now() - started };
  };

  pg.freeze();
  const frozenAt = performance.now();
  const burst = await Promise.all(
    Array.from({ length: CONCURRENT }, (_, i) => {
      const [method, url, payload] = routes[i % routes.length] ?? ['GET', '/api/models'];
      return timed(method, url, payload);
    }),
  );
  const second = await Promise.all(routes.map(([method, url, payload]) => timed(method, url, payload)));
  const health = await timed('GET', '/healthz');
  const frozenFor = performance.now() - frozenAt;
  pg.thaw();
  const thawedAt = performance.now();
  let polls = 0;
  while ((await owner.call('GET', '/api/models')).status !== 200) {
    polls += 1;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const recoveredMs = performance.now() - thawedAt;

  const all = [...burst, ...second];
  const statuses = new Map<number, number>();
  for (const answer of all) statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
  const ms = all.map((answer) => answer.ms).sort((a, b) => a - b);
  const slowest = all.reduce((a, b) => (b.ms > a.ms ? b : a));
  const round = (n: number): string => `${Math.round(n)} ms`;
  console.log(`frozen PostgreSQL, ${CONCURRENT} concurrent requests then ${routes.length} more:`);
  console.log(`  answers: ${[...statuses].map(([status, n]) => `${n} x ${status}`).join(', ')}`);
  console.log(
    `  time to 503: fastest ${round(ms[0] ?? 0)}, median ${round(ms[Math.floor(ms.length / 2)] ?? 0)}, slowest ${round(slowest.ms)} (${slowest.call})`,
  );
  console.log(
    `  second round (after the first's connections were dropped): slowest ${round(Math.max(...second.map((s) => s.ms)))}`,
  );
  for (const answer of second) console.log(`    ${answer.call}: ${answer.status} in ${round(answer.ms)}`);
  console.log(`  /healthz while frozen: ${health.status} in ${round(health.ms)}`);
  console.log(
    `  frozen for ${round(frozenFor)}; first 200 ${round(recoveredMs)} after the thaw (${polls} 503s meanwhile)`,
  );
} finally {
  await api.close();
  await redis.cleanup();
  await pg.stop();
}
