// The embedded path as an operator runs it without DATABASE_URL: PGlite in DATA_DIR, the whole
// service started by startHaOrchestrator on a real loopback port, the fake pair behind it; and a
// restart after a crash in the middle of an upgrade.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@upgrade/core';
import { waitFor } from '@upgrade/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { createPgTaskStore, createPgUpgradeConfigStore } from '../src/adapters/pg-store.js';
import { loadHaConfig } from '../src/config.js';
import { openHaDatabase, startHaOrchestrator, type RunningService } from '../src/main.js';
import { createFakeCluster } from './fakes/fake-cluster.js';
import { TOKEN, buildPackage, signPackage, signingKeys } from './helpers.js';
import { writeConfigEnv } from './config-env.js';

const dir = mkdtempSync(join(tmpdir(), 'ha-embedded-'));
const keys = signingKeys();
const env = { ...writeConfigEnv(dir, keys.publicPem), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent' };
const config = loadHaConfig(env);
let service: RunningService | undefined;

afterAll(async () => {
  await service?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const auth = { authorization: `Bearer ${TOKEN}` };

describe('embedded PGlite, real loopback', () => {
  it(
    'fails a task a crash left mid-upgrade, then serves a whole upgrade over HTTP',
    { timeout: 90_000 },
    async () => {
      // The state a crash leaves: a task in VIP_SWITCH and its unpacked upload.
      const db = await openHaDatabase(config);
      const crashed = randomUUID();
      await createPgTaskStore(db.db).create({
        id: crashed,
        toVersion: '2.4.0',
        packageSha256: 'a'.repeat(64),
        requestedBy: 'ops',
      });
      await createPgTaskStore(db.db).update(crashed, {
        state: 'VIP_SWITCH',
        currentStep: 'vip.switch',
        percent: 48,
      });
      await createPgUpgradeConfigStore(db.db).set({ healthRetryIntervalMs: 20, vipSwitchTimeoutMs: 2_000 });
      await db.close();
      mkdirSync(join(config.workDir, `pkg-${crashed}`, 'files'), { recursive: true });

      const fake = createFakeCluster({
        clock: systemClock,
        version: '2.3.0',
        latencyMs: {
          'backup.create': 5,
          'backup.verify': 2,
          'service.stop': 2,
          'service.start': 2,
          'jar.install': 2,
          'schema.apply': 2,
          putFile: 2,
        },
        vipMoveDelayMs: 30,
        replicationCatchUpMs: 20,
        rsyncIntervalMs: 20,
      });
      service = await startHaOrchestrator(config, {
        cluster: fake.cluster,
        handleSignals: false,
        logger: false,
      });
      expect(service.db.kind).toBe('pglite');
      expect(service.recovered.map((t) => t.id)).toEqual([crashed]);
      expect(existsSync(join(config.workDir, `pkg-${crashed}`))).toBe(false);

      const base = service.address;
      const crashedView = (await (
        await fetch(`${base}/api/v1/upgrade/progress/${crashed}`, { headers: auth })
      ).json()) as {
        state: string;
        error: { code: string; message: string };
      };
      expect(crashedView.state).toBe('FAILED');
      expect(crashedView.error.code).toBe('INTERRUPTED');

      const health = await fetch(`${base}/health`);
      expect(health.status).toBe(200);
      expect(((await health.json()) as { status: string }).status).toBe('ok');

      const zip = await buildPackage({ version: '2.4.0' });
      const form = new FormData();
      form.append('signature', signPackage(zip, keys.privateKey));
      form.append('package', new Blob([zip], { type: 'application/zip' }), 'upgrade-2.4.0.zip');
      const res = await fetch(`${base}/api/v1/upgrade/trigger`, {
        method: 'POST',
        body: form,
        headers: auth,
      });
      expect(res.status, await res.clone().text()).toBe(201);
      const { task_id: id } = (await res.json()) as { task_id: string };

      let state = '';
      await waitFor(
        async () => {
          const progress = (await (
            await fetch(`${base}/api/v1/upgrade/progress/${id}`, { headers: auth })
          ).json()) as {
            state: string;
            final: boolean;
          };
          state = progress.state;
          return progress.final;
        },
        { timeoutMs: 20_000, intervalMs: 50 },
      );
      expect(state).toBe('COMPLETE');
      expect(fake.vipHolder()).toBe('node-b');
      const metrics = await (await fetch(`${base}/metrics`, { headers: auth })).text();
      expect(metrics).toContain('ha_upgrade_tasks_total{state="COMPLETE"} 1');

      const rows = await service.db.execute<{ n: number }>('SELECT count(*)::int AS n FROM api_request_log');
      expect(rows[0]?.n).toBeGreaterThanOrEqual(3);
    },
  );
});
