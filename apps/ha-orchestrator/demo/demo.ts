// `pnpm demo`: the real service on embedded defaults (PGlite in a temp dir) with two simulated
// nodes in-process (the fake pair: keepalived VIP, primary/standby database, rsync'd config), one
// signed package uploaded over HTTP and its rolling upgrade followed in the terminal.
// --once: exit after the upgrade; otherwise the API and the console keep serving until Ctrl-C (or
// SIGTERM), and a new upgrade (the next minor version) starts whenever the pair has been idle for
// a while, so whoever opens the console sees one under way; a signed package is left in the temp
// dir for trying the console's upload.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@upgrade/core';
import { createPgUpgradeConfigStore } from '../src/adapters/pg-store.js';
import { loadHaConfig } from '../src/config.js';
import { openHaDatabase, startHaOrchestrator } from '../src/main.js';
import { writeConfigEnv } from '../test/config-env.js';
import { createFakeCluster } from '../test/fakes/fake-cluster.js';
import { TOKEN, buildPackage, signPackage, signingKeys } from '../test/helpers.js';

const once = process.argv.includes('--once');
const dir = mkdtempSync(join(tmpdir(), 'ha-orchestrator-demo-'));
const keys = signingKeys();
const config = loadHaConfig({
  ...writeConfigEnv(dir, keys.publicPem),
  PORT: process.env.PORT ?? '8090',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
});

// Shorter waits than production so the demo takes seconds, stored where operators set them.
const db = await openHaDatabase(config);
await createPgUpgradeConfigStore(db.db).set({ healthRetryIntervalMs: 300, upgradeTimeoutMs: 120_000 });
await db.close();

const pair = createFakeCluster({
  clock: systemClock,
  version: '2.3.0',
  latencyMs: {
    'backup.create': 1200,
    'backup.restore': 1200,
    'backup.verify': 300,
    'service.stop': 300,
    'service.start': 700,
    'jar.install': 500,
    'schema.apply': 400,
    putFile: 200,
  },
  vipMoveDelayMs: 900,
  replicationCatchUpMs: 400,
  rsyncIntervalMs: 500,
});
const service = await startHaOrchestrator(config, {
  cluster: pair.cluster,
  logger: 'warn',
  handleSignals: false,
});
const base = service.address;
const headers = { authorization: `Bearer ${TOKEN}` };
// `on`, not `once`: a signal may arrive twice (sent to the process group and relayed by tsx), and
// a second one without a handler would end the process before it cleaned up.
let stopping = false;
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

console.log(`ha-orchestrator console: ${base}/`);
console.log(`ha-orchestrator console token: ${TOKEN}`);
console.log(`ha-orchestrator demo: API ${base}, docs ${base}/docs (token: ${TOKEN})`);
console.log(`database: embedded PGlite in ${config.DATA_DIR}`);
console.log(`pair: node-a (primary, holds VIP ${pair.vip}) and node-b (standby), both on 2.3.0\n`);

const accepted = await trigger('2.4.0');
if (accepted.status !== 201) {
  console.error(`trigger refused: ${accepted.status} ${await accepted.text()}`);
  await shutdown(1);
}
const { task_id: taskId } = (await accepted.json()) as { task_id: string };
console.log(`POST /api/v1/upgrade/trigger -> 201, task ${taskId}\n`);

interface Progress {
  state: string;
  percent: number;
  final: boolean;
  last_message: string | null;
  estimated_completion_at: string | null;
  error: { code: string; message: string } | null;
  downtime_ms: number | null;
}

const bar = (percent: number): string => {
  const width = 30;
  const full = Math.round((percent / 100) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
};
let lastKey = '';
let progress: Progress;
for (;;) {
  progress = (await (
    await fetch(`${base}/api/v1/upgrade/progress/${taskId}`, { headers })
  ).json()) as Progress;
  const eta =
    progress.estimated_completion_at === null
      ? ''
      : ` eta ${Math.max(0, Math.round((Date.parse(progress.estimated_completion_at) - Date.now()) / 1000))}s`;
  const line = `${bar(progress.percent)} ${String(progress.percent).padStart(3)}% ${progress.state.padEnd(14)} ${progress.last_message ?? ''}${eta}`;
  const key = `${progress.state} ${progress.percent} ${progress.last_message ?? ''}`;
  if (key !== lastKey) console.log(line);
  lastKey = key;
  if (progress.final) break;
  await new Promise((resolve) => setTimeout(resolve, 250));
}

console.log(
  `\ntask ended ${progress.state}${progress.error === null ? '' : ` (${progress.error.code}: ${progress.error.message})`}` +
    `${progress.downtime_ms === null ? '' : `, downtime ${progress.downtime_ms} ms`}`,
);
console.log(
  `node-a runs ${pair.node('node-a').jarVersion}, node-b runs ${pair.node('node-b').jarVersion}, VIP on ${pair.vipHolder() ?? 'nobody'}`,
);
const logs = (await (
  await fetch(`${base}/api/v1/upgrade/logs/${taskId}?page_size=5`, { headers })
).json()) as {
  total: number;
  items: { level: string; message: string }[];
};
console.log(`\nlast log lines of ${logs.total} (GET /api/v1/upgrade/logs/${taskId}):`);
for (const l of logs.items) console.log(`  ${l.level.padEnd(7)} ${l.message}`);

if (once) await shutdown(progress.state === 'COMPLETE' ? 0 : 1);

// A package to try the console's upload with.
const manual = await buildPackage({ version: '9.0.0' });
writeFileSync(join(dir, 'app-9.0.0.zip'), manual);
writeFileSync(join(dir, 'app-9.0.0.zip.sig'), signPackage(manual, keys.privateKey));
console.log(`\nthe API and the console keep serving at ${base}/ (docs: ${base}/docs); Ctrl-C to stop`);
console.log(
  `a signed package to upload in the console: ${join(dir, 'app-9.0.0.zip')} (signature: .sig beside it)`,
);

// Another upgrade whenever the pair has been idle this long, so the console always has one to show.
const IDLE_BEFORE_NEXT_MS = 20_000;
let minor = 5;
while (!stopping) {
  await new Promise((resolve) => setTimeout(resolve, IDLE_BEFORE_NEXT_MS));
  if (stopping) break;
  const next = await trigger(`2.${minor}.0`).catch(() => null);
  // 409: a task someone started from the console is running; try again later.
  if (next?.status === 201) {
    console.log(`started the next demo upgrade, to 2.${minor}.0`);
    minor += 1;
  } else await next?.body?.cancel();
}

async function trigger(version: string): Promise<Response> {
  const zip = await buildPackage({
    version,
    scripts: [
      { path: 'sql/001_add_audit_column.sql', content: 'ALTER TABLE orders ADD COLUMN audited boolean;' },
    ],
  });
  const form = new FormData();
  form.append('package', new Blob([zip], { type: 'application/zip' }), `app-${version}.zip`);
  form.append('signature', signPackage(zip, keys.privateKey));
  return fetch(`${base}/api/v1/upgrade/trigger`, { method: 'POST', body: form, headers });
}

async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await service.stop();
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
