// `pnpm demo`: the real service on embedded defaults (PGlite in ./data/rcu-scheduler) against the
// vendor simulator, with time compressed so a round takes seconds. Prints each round's progress.
// --once: exit after the first round.
import { rmSync } from 'node:fs';
import { loadRcuConfig } from '../src/config.js';
import { startRcuScheduler } from '../src/main.js';
import { formatDuration } from '../src/report.js';
import type { RoundEvent } from '../src/rounds.js';
import { startVendorSimulator } from '../test/simulator/vendor-simulator.js';

const once = process.argv.includes('--once');
const dataDir = process.env.DATA_DIR ?? './data/rcu-scheduler-demo';
if (process.argv.includes('--fresh')) rmSync(dataDir, { recursive: true, force: true });

const sim = await startVendorSimulator({ hostDurationMs: 4_000, startSpreadMs: 800 });
sim.failHosts(['rt102-h03'], { message: 'flash write error (simulated)' });

const groups = [100, 101, 102].map((roomTypeId) => ({
  roomTypeId,
  hosts: Array.from({ length: 5 }, (_, i) => `rt${roomTypeId}-h${String(i).padStart(2, '0')}`),
}));
const config = loadRcuConfig({
  PORT: process.env.PORT ?? '8310',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
  DATA_DIR: dataDir,
  ...(process.env.DATABASE_URL === undefined ? {} : { DATABASE_URL: process.env.DATABASE_URL }),
  VENDOR_BASE_URL: sim.baseUrl,
  VENDOR_USERNAME: sim.credentials.username,
  VENDOR_PASSWORD: sim.credentials.password,
  RCU_GROUPS: JSON.stringify(groups),
  FIRMWARE_FILES: JSON.stringify([
    { filename: 'RCU_V2.3.1.bin', fileType: 1 },
    { filename: 'RCU_V2.4.0.bin', fileType: 1 },
  ]),
  ROUND_INTERVAL_MS: '20000',
  INITIAL_WAIT_MS: '1000',
  POLL_INTERVAL_MS: '500',
  POLL_TIMEOUT_MS: '15000',
});

const started = new Map<string, number>();
const bar = (fraction: number): string => {
  const width = 30;
  const full = Math.round(fraction * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
};
let finishedRounds = 0;
let onFinished: () => void = () => undefined;
const firstRound = new Promise<void>((resolve) => (onFinished = resolve));

const show = (event: RoundEvent): void => {
  switch (event.type) {
    case 'started':
      started.set(event.roundId, Date.now());
      console.log(`round ${event.roundId.slice(0, 8)}: upgrading ${event.hosts} hosts to ${event.filename}`);
      break;
    case 'triggered':
      console.log(
        `  room type ${event.roomTypeId}: ${event.uuid === null ? `trigger failed: ${event.error}` : `vendor upgrade ${event.uuid}`}`,
      );
      break;
    case 'progress':
      console.log(
        `  ${bar(event.meanProgress / 100)} ${event.meanProgress.toFixed(0).padStart(3)}%  ${event.final}/${event.hosts} hosts final`,
      );
      break;
    case 'hosts':
      break; // the console shows each host; the terminal keeps to the totals
    case 'store-retry':
      console.log(`  storing results failed (${event.error}); retrying`);
      break;
    case 'stored':
      console.log(`  ${event.rows} rows written to upgrade_log`);
      break;
    case 'finished': {
      const s = event.summary;
      const took = formatDuration(Date.now() - (started.get(event.roundId) ?? Date.now()));
      console.log(`  done in ${took}: ${s.completed} completed, ${s.failed} failed, ${s.timeout} timeout`);
      finishedRounds++;
      onFinished();
      break;
    }
  }
};

const service = await startRcuScheduler(config, { onEvent: show, handleSignals: false });
console.log(`rcu-scheduler console: ${service.address}/`);
console.log(`rcu-scheduler demo: API ${service.address}, docs ${service.address}/docs`);
console.log(`  status: curl ${service.address}/api/status`);
console.log(`  rounds: curl ${service.address}/api/rounds`);
console.log(`  stats:  curl ${service.address}/api/stats`);
console.log(`  database: ${service.db.target}; a round every 20 s; Ctrl-C to stop`);

const stop = async (): Promise<void> => {
  await service.stop();
  await sim.close();
  console.log(`stopped after ${finishedRounds} round(s)`);
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
if (once) {
  await firstRound;
  await stop();
}
