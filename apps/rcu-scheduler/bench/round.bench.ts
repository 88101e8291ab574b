// `pnpm bench` for rcu-scheduler: one round over 10,000 hosts in 100 groups against the vendor
// simulator on loopback, with time compressed by settings, storing into the real PostgreSQL.
// Prints: wall time, HTTP calls per poll (goal: one per group), rows/s of the upgrade_log write
// beside a plain multi-row INSERT of the same rows in the same run (goal >= 0.8), peak RSS.
// Env: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), BENCH_GROUPS,
// BENCH_HOSTS_PER_GROUP.
import { randomUUID } from 'node:crypto';
import { systemClock } from '@upgrade/core';
import { createTestDatabase } from '@upgrade/testkit';
import { createFileSpool } from '../src/adapters/file-spool.js';
import { createPgStore } from '../src/adapters/pg-store.js';
import { createVendorApi } from '../src/adapters/vendor-api.js';
import { openRcuDatabase } from '../src/main.js';
import type { RoundStore, UpgradeLogEntry } from '../src/ports.js';
import { runRound, type RoundEvent } from '../src/rounds.js';
import { FILES, makeGroups, tempDir } from '../test/helpers.js';
import { startVendorSimulator } from '../test/simulator/vendor-simulator.js';

const GROUPS = Number(process.env.BENCH_GROUPS ?? 100);
const HOSTS = Number(process.env.BENCH_HOSTS_PER_GROUP ?? 100);
const POLL_MS = 500;

const database = await createTestDatabase({ hint: 'rcu_bench' });
const spool = tempDir('rcu-bench-');
const sim = await startVendorSimulator({ hostDurationMs: 3_000, startSpreadMs: 500 });
const vendor = createVendorApi({
  baseUrl: sim.baseUrl,
  ...sim.credentials,
  responseTimeoutMs: 10_000,
  connections: 16,
});
const db = await openRcuDatabase({
  DATABASE_URL: database.url,
  DATA_DIR: spool.path,
  MIGRATE_ON_START: true,
});

try {
  const pgStore = createPgStore(db.db);
  let storeMs = 0;
  let stored: UpgradeLogEntry[] = [];
  const store: RoundStore = {
    ...pgStore,
    finishRound: async (roundId, entries, finishedAt) => {
      const t = performance.now();
      await pgStore.finishRound(roundId, entries, finishedAt);
      storeMs = performance.now() - t;
      stored = entries;
    },
  };
  let polls = 0;
  const onEvent = (e: RoundEvent): void => {
    if (e.type === 'progress') {
      polls++;
      process.stdout.write(
        `\r  poll ${polls}: ${e.final}/${e.hosts} hosts final, mean ${e.meanProgress.toFixed(0)}%   `,
      );
    }
  };

  console.log(`rcu-scheduler bench: one round, ${GROUPS} groups x ${HOSTS} hosts, poll every ${POLL_MS} ms`);
  const started = performance.now();
  const outcome = await runRound(
    {
      vendor,
      store,
      spool: createFileSpool(`${spool.path}/spool`),
      clock: systemClock,
      logger: {
        info: () => undefined,
        warn: (o, m) => console.warn(m, o),
        error: (o, m) => console.error(m, o),
      },
      newId: randomUUID,
      onEvent,
    },
    {
      files: FILES,
      repeats: 2,
      groups: makeGroups(GROUPS, HOSTS),
      initialDelayMs: 1_000,
      pollIntervalMs: POLL_MS,
      pollTimeoutMs: 30_000,
      concurrency: 16,
      storeRetryMaxMs: 1_000,
    },
    { trigger: 'manual', slot: null },
  );
  const wallMs = performance.now() - started;
  process.stdout.write('\n');
  const queries = sim.calls.QueryUpdateHostProgressBar;

  // The same rows through a plain parameterised multi-row INSERT (1,000 rows per statement, one
  // transaction) into a twin table, in the same run.
  await db.execute('create table upgrade_log_plain (like upgrade_log including all)');
  const columns = [
    'round_id',
    'uuid',
    'roomtype_id',
    'host_str',
    'filename',
    'file_type',
    'status',
    'start_time',
    'end_time',
    'config_version',
    'firmware_version',
    'detail',
  ];
  const pool = db.kind === 'postgres' ? db.client : null;
  if (pool === null) throw new Error('the bench needs PostgreSQL (TEST_DATABASE_URL)');
  const client = await pool.connect();
  const t = performance.now();
  try {
    await client.query('begin');
    for (let i = 0; i < stored.length; i += 1000) {
      const batch = stored.slice(i, i + 1000);
      const values: unknown[] = [];
      const tuples = batch.map((e, r) => {
        values.push(
          e.roundId,
          e.uuid,
          e.roomTypeId,
          e.host,
          e.filename,
          e.fileType,
          e.status,
          e.startTime,
          e.endTime,
          e.configVersion,
          e.firmwareVersion,
          e.detail,
        );
        return `(${columns.map((_, c) => `$${r * columns.length + c + 1}`).join(',')})`;
      });
      await client.query(
        `insert into upgrade_log_plain (${columns.join(',')}) values ${tuples.join(',')}`,
        values,
      );
    }
    await client.query('commit');
  } finally {
    client.release();
  }
  const plainMs = performance.now() - t;

  const rowsPerSec = (stored.length / storeMs) * 1000;
  const plainPerSec = (stored.length / plainMs) * 1000;
  const rss = process.resourceUsage().maxRSS / 1024;
  const s = outcome?.summary;
  console.log(`  result: ${s?.completed} completed, ${s?.failed} failed, ${s?.timeout} timeout`);
  console.log(
    `  wall time of the round:      ${(wallMs / 1000).toFixed(2)} s (1.0 s initial wait, ${polls} polls)`,
  );
  console.log(
    `  HTTP calls per poll:         ${(queries / polls).toFixed(2)} (${queries} queries / ${polls} polls; groups: ${GROUPS}; goal ${GROUPS})`,
  );
  console.log(
    `  upgrade_log write:           ${stored.length} rows in ${storeMs.toFixed(0)} ms = ${rowsPerSec.toFixed(0)} rows/s (finishRound: insert + round + rotation in one transaction)`,
  );
  console.log(
    `  plain multi-row INSERT:      ${stored.length} rows in ${plainMs.toFixed(0)} ms = ${plainPerSec.toFixed(0)} rows/s`,
  );
  console.log(`  ratio (goal >= 0.8):         ${(rowsPerSec / plainPerSec).toFixed(2)}`);
  console.log(`  peak RSS (service + simulator in one process): ${rss.toFixed(0)} MiB`);
} finally {
  await db.close();
  await vendor.close();
  await sim.close();
  await database.drop();
  spool.remove();
}
