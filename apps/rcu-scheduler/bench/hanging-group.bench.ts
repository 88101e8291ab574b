// One group whose progress queries hang among healthy ones, at the timings of the report that found
// the problem (poll every 1 s, poll timeout 20 s, response timeout 5 s, 2 retries): prints when the
// healthy group was polled and when the round ended against its deadline.
//   pnpm --filter @upgrade/rcu-scheduler exec tsx bench/hanging-group.bench.ts
import { randomUUID } from 'node:crypto';
import { systemClock } from '@upgrade/core';
import { createFileSpool } from '../src/adapters/file-spool.js';
import { createVendorApi } from '../src/adapters/vendor-api.js';
import type { VendorApi } from '../src/ports.js';
import { runRound, type RoundEvent } from '../src/rounds.js';
import { createMemoryRoundStore } from '../test/fakes/memory-store.js';
import { FILES, captureLogger, makeGroups, tempDir } from '../test/helpers.js';
import { startVendorSimulator } from '../test/simulator/vendor-simulator.js';

const POLL_INTERVAL_MS = 1_000;
const POLL_TIMEOUT_MS = 20_000;

const sim = await startVendorSimulator({ hostDurationMs: 60_000 });
const vendor = createVendorApi({
  baseUrl: sim.baseUrl,
  ...sim.credentials,
  responseTimeoutMs: 5_000,
  retries: 2,
  retryDelayMs: 1_000,
});
const spool = tempDir('rcu-bench-hang-');
const groups = makeGroups(3, 5);
sim.hangGroups([100]); // room type 100 hangs; 101 and 102 answer (their hosts run for a minute)

const polls = new Map<number, number[]>();
const timed: VendorApi = {
  triggerUpgrade: (request, signal) => vendor.triggerUpgrade(request, signal),
  queryProgress: (uuid, signal) => {
    const roomTypeId = sim.upgrades.get(uuid)?.roomTypeId ?? -1;
    polls.set(roomTypeId, [...(polls.get(roomTypeId) ?? []), Date.now()]);
    return vendor.queryProgress(uuid, signal);
  },
};
let watchStart = 0;
const store = createMemoryRoundStore();
try {
  const outcome = await runRound(
    {
      vendor: timed,
      store,
      spool: createFileSpool(spool.path),
      clock: systemClock,
      logger: captureLogger(),
      newId: randomUUID,
      onEvent: (e: RoundEvent) => {
        if (e.type === 'triggered') watchStart = Date.now();
      },
    },
    {
      files: FILES,
      repeats: 2,
      groups,
      initialDelayMs: 0,
      pollIntervalMs: POLL_INTERVAL_MS,
      pollTimeoutMs: POLL_TIMEOUT_MS,
      concurrency: 8,
      storeRetryMaxMs: 1_000,
    },
    { trigger: 'manual', slot: null },
  );
  const rows = (await store.getRound(outcome?.roundId ?? ''))?.results ?? [];
  const roundEnd = Math.max(...rows.map((r) => r.endTime.getTime()));
  const deadline = watchStart + POLL_TIMEOUT_MS;
  const offsets = (rt: number) => (polls.get(rt) ?? []).map((t) => ((t - watchStart) / 1000).toFixed(2));
  console.log(
    `poll interval ${POLL_INTERVAL_MS} ms, poll timeout ${POLL_TIMEOUT_MS} ms, response timeout 5000 ms, 2 retries`,
  );
  console.log(`healthy group 101 polled at (s after the triggers): ${offsets(101).join(', ')}`);
  console.log(
    `healthy group 102 polled ${polls.get(102)?.length ?? 0} times; hanging group 100 asked ${polls.get(100)?.length ?? 0} times`,
  );
  console.log(
    `round ended ${((roundEnd - watchStart) / 1000).toFixed(2)} s after the triggers: ${roundEnd - deadline} ms after its deadline`,
  );
  console.log(`summary: ${JSON.stringify(outcome?.summary)}`);
} finally {
  await vendor.close();
  await sim.close();
  spool.remove();
}
