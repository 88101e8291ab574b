// ha-orchestrator end to end on the two-node lab: the built service as a process, driven through its
// REST API only, upgrading a real pair (sshd, keepalived, PostgreSQL primary/standby, the
// application stand-in, config sync) while a client hits the VIP. One lab for the file, put back to
// its start between scenarios (resetLab).
//   LAB_ADVERT_INT=1 pnpm --filter @upgrade/tests test -- scenarios   (default advert_int 0.1)
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { agentCall, appHealth, databasePrimaryOf, eventually, readPair, resetLab } from './cluster.js';
import { checkLab, standInJar, startLab, stopLab, type Lab, type LabOptions } from './lab.js';
import { formatLoadReport, startLoad, type LoadReport } from './load.js';
import { formatWriterReport, startWriter, type WriterReport } from './pg-writer.js';
import {
  ORCHESTRATOR_CLI,
  startOrchestrator,
  type Orchestrator,
  type Progress,
  type UpgradeParameters,
} from './orchestrator.js';
import { buildSignedPackage, createSigningKeys, type SignedPackage } from './package.js';
import { runCommand } from './run.js';

const options: LabOptions = {
  dir: process.env.LAB_DIR ?? '/tmp/ha-lab',
  // 0.1 s adverts make each VIP switch ~0.4 s instead of ~3.5 s; LAB_ADVERT_INT=1 runs the real default.
  advertInt: process.env.LAB_ADVERT_INT === '1' ? 1 : 0.1,
  syncIntervalS: 1,
  fresh: true,
};
const availability = await checkLab(options);
const skipReason = availability.ok ? '' : availability.reason;
if (!availability.ok) console.warn(`ha-orchestrator lab scenarios SKIPPED: ${skipReason}`);

/**
 * Health checks every 300 ms, 2 healthy answers in a row, 2 failures tolerated: a bad build is
 * found in about a second instead of 30 s; the VIP has 10 s per attempt (advert_int 1 takes ~3.5 s).
 */
const UPGRADE: UpgradeParameters = {
  healthRetryIntervalMs: 300,
  healthyChecksRequired: 2,
  healthRetries: 2,
  healthCheckTimeoutMs: 8_000,
  vipSwitchTimeoutMs: 10_000,
  vipSwitchRetries: 1,
  replicationTimeoutMs: 15_000,
  upgradeTimeoutMs: 120_000,
};

/**
 * Upgrades in a row in scenario 9 (LAB_UPGRADE_ROUNDS): LAB_UPGRADE_ROUNDS=15 shows priorities that
 * never drift past where the old ratchet (+10 per upgrade from 150) failed, at the 11th. The gate runs
 * 2 (back and forth: each priority and database role swap seen once more after scenario 1 and its
 * rollback) to keep CI short; each round costs 15-50 s.
 */
const ROUNDS = Number(process.env.LAB_UPGRADE_ROUNDS ?? 2);
const OLD = '1.0.0';
const NEW = '2.0.0';
/** The application's table before the upgrade (created in beforeAll), and the release's schema change. */
const APP_TABLE = 'app_settings';
const NEW_TABLE = 'app_history';
const SCHEMA = [
  {
    path: 'sql/001_add_upgraded_to.sql',
    sql:
      `alter table ${APP_TABLE} add column upgraded_to text; ` +
      `update ${APP_TABLE} set upgraded_to = '${NEW}'; ` +
      `create table ${NEW_TABLE} (id serial primary key, note text);`,
    // Expand/contract: the rollback removes what the release added and nothing else, so rows
    // written meanwhile stay.
    rollback: {
      path: 'sql/001_add_upgraded_to.rollback.sql',
      sql: `drop table if exists ${NEW_TABLE}; alter table ${APP_TABLE} drop column if exists upgraded_to;`,
    },
  },
];
/** The table the client writes to through the VIP, one row per acknowledged insert. */
const WRITES_TABLE = 'client_writes';
/** How many of the schema change's two objects (a new column, a new table) exist: 0 or 2. */
const SCHEMA_CHANGE_OBJECTS =
  `select (select count(*) from information_schema.columns ` +
  `where table_name = '${APP_TABLE}' and column_name = 'upgraded_to') + ` +
  `(select count(*) from pg_tables where tablename = '${NEW_TABLE}')`;

/** Steps of a complete run, in order (node ids: node-a the primary, node-b the standby). */
const COMPLETE_STEPS = [
  'prepare.check',
  'prepare.rsync_pause',
  'backup.create node-b',
  'backup.verify node-b',
  'backup.create node-a',
  'backup.verify node-a',
  'backup.config_lock',
  'standby.schema_stage node-a',
  'standby.schema_apply node-a',
  'standby.replication node-b',
  'standby.stage node-b',
  'standby.stop node-b',
  'standby.install node-b',
  'standby.start node-b',
  'standby.health node-b',
  'database.fence node-a',
  'database.catch_up node-b',
  'database.promote node-b',
  'vip.switch node-b',
  'vip.health node-b',
  'database.follow node-a',
  'database.replication',
  'master.replication node-a',
  'master.stage node-a',
  'master.stop node-a',
  'master.install node-a',
  'master.start node-a',
  'master.health node-a',
  'verify.config_unlock',
  'verify.rsync_resume',
  'verify.config',
  'verify.health',
  'verify.replication',
  'verify.vip',
  'verify.downtime',
];

const stepName = (s: Progress['finished_steps'][number]): string =>
  s.node_id === null ? s.step : `${s.step} ${s.node_id}`;

describe.skipIf(!availability.ok)(
  `ha-orchestrator on the two-node lab${skipReason === '' ? '' : ` (skipped: ${skipReason})`}`,
  () => {
    let lab: Lab;
    let orchestrator: Orchestrator;
    const keys = createSigningKeys();
    const release = (jar: Buffer, version = NEW): SignedPackage =>
      buildSignedPackage({ version, jar, schemaScripts: SCHEMA }, keys);

    beforeAll(async () => {
      if (!existsSync(ORCHESTRATOR_CLI))
        throw new Error(
          `${ORCHESTRATOR_CLI} is missing: run \`pnpm --filter @upgrade/ha-orchestrator build\``,
        );
      const started = Date.now();
      lab = await startLab(options);
      await lab.psql(
        'node-a',
        `create table ${APP_TABLE} (key text primary key, value text); ` +
          `insert into ${APP_TABLE} values ('greeting', 'hello'); ` +
          `create table ${WRITES_TABLE} (id int primary key)`,
      );
      orchestrator = await startOrchestrator({ lab, keys, upgrade: UPGRADE });
      console.log(
        `lab (advert_int ${lab.advertInt}) and orchestrator up in ${Date.now() - started} ms; ` +
          `upgrade_config ${JSON.stringify(UPGRADE)}`,
      );
    }, 120_000);

    afterAll(async () => {
      await orchestrator?.stop();
      await stopLab(options);
    }, 90_000);

    beforeEach(async () => {
      await resetLab(lab);
      // The schema as before any upgrade: a scenario whose rollback could not reach the database
      // primary leaves the change in place.
      await lab.psql(
        'node-a',
        `alter table ${APP_TABLE} drop column if exists upgraded_to; drop table if exists ${NEW_TABLE}; ` +
          `truncate ${WRITES_TABLE}`,
      );
    }, 60_000);

    const startClientWrites = () =>
      startWriter({
        host: lab.vip,
        port: lab.pgPort,
        database: 'app',
        user: 'postgres',
        table: WRITES_TABLE,
        intervalMs: 50,
        timeoutMs: 1000,
      });

    /** Acknowledged writes vs rows present on the database primary; every acknowledged id must be there. */
    async function checkWrites(writes: WriterReport, label: string): Promise<string> {
      const primary = (await databasePrimaryOf(lab)) ?? 'node-a';
      const ids = new Set(
        (await lab.psql(primary, `select coalesce(string_agg(id::text, ','), '') from ${WRITES_TABLE}`))
          .split(',')
          .filter((x) => x !== '')
          .map(Number),
      );
      const line = `${label}: writes through the VIP: ${formatWriterReport(writes, ids.size)}`;
      console.log(line);
      expect(
        writes.acked.filter((id) => !ids.has(id)),
        `${label}: acknowledged writes missing`,
      ).toEqual([]);
      expect(writes.acked.length).toBeGreaterThan(0);
      return line;
    }

    /** Triggers `pkg` with load on the VIP; returns the final progress and the load report. */
    async function upgradeUnderLoad(
      pkg: SignedPackage,
      during?: (taskId: string) => Promise<void>,
    ): Promise<{ taskId: string; final: Progress; load: LoadReport; writes: WriterReport; wallMs: number }> {
      const load = startLoad({ url: `${lab.vipUrl}/`, intervalMs: 20, timeoutMs: 1000 });
      const writer = startClientWrites();
      try {
        const started = Date.now();
        const trigger = await orchestrator.trigger(pkg);
        expect(trigger.status, JSON.stringify(trigger.body)).toBe(201);
        const taskId = trigger.body.task_id;
        await during?.(taskId);
        const final = await orchestrator.waitFinal(taskId, 180_000);
        return {
          taskId,
          final,
          load: await load.stop(),
          writes: await writer.stop(),
          wallMs: Date.now() - started,
        };
      } catch (error) {
        await load.stop();
        await writer.stop();
        throw error;
      }
    }

    const describeRun = (r: { final: Progress; load: LoadReport; wallMs: number }): string =>
      `${r.final.state} in ${r.wallMs} ms, recorded downtime ${r.final.downtime_ms ?? '-'} ms; ` +
      `clients: ${formatLoadReport(r.load)}`;

    /**
     * POST /rollback of the completed upgrade `taskId` under HTTP load and client writes: the
     * rolling rollback, node by node with the VIP moved to the restored node first.
     */
    async function rollBackUnderLoad(taskId: string): Promise<void> {
      // A new writer numbers its rows from 1 again.
      await lab.psql((await databasePrimaryOf(lab)) ?? 'node-b', `truncate ${WRITES_TABLE}`);
      const load = startLoad({ url: `${lab.vipUrl}/`, intervalMs: 20, timeoutMs: 1000 });
      const writer = startClientWrites();
      const started = Date.now();
      const answer = orchestrator.rollback(taskId);
      // The clients stop whatever the answer, before a failure is reported.
      await answer.catch(() => undefined);
      const rollbackMs = Date.now() - started;
      const clients = await load.stop();
      const writes = await writer.stop();
      const rollback = await answer;
      console.log(
        `scenario 1 rollback: answered ${rollback.status} in ${rollbackMs} ms; ` +
          `clients during the rollback: ${formatLoadReport(clients)}` +
          clients.samples
            .filter((x) => !x.ok)
            .map((x) => `; failed at +${x.startedAt} ms (${x.error ?? x.status})`)
            .join(''),
      );
      const steps = (await orchestrator.progress(taskId)).finished_steps.filter(
        (x) => x.step.startsWith('restore.') && Date.parse(x.at) >= started,
      );
      console.log(
        `scenario 1 rollback steps: ${steps.map((x) => `${stepName(x)} +${Date.parse(x.at) - started} ms (${x.duration_ms} ms)`).join(', ')}`,
      );
      expect(rollback.status, JSON.stringify(rollback.body)).toBe(200);
      expect(rollback.body).toMatchObject({ task_id: taskId, state: 'COMPLETE' });
      const pair = await readPair(lab);
      expect(pair.apps['node-a']).toMatchObject({ status: 200, version: OLD });
      expect(pair.apps['node-b']).toMatchObject({ status: 200, version: OLD });
      // Back to the placement before the upgrade: VIP and database primary on node-a.
      expect(pair.vipHolders).toEqual(['node-a']);
      expect(pair.databasePrimary).toBe('node-a');
      expect(pair.replication).toBe('node-b streaming async');
      expect(pair.rsync['node-a']).toMatchObject({ paused: false });
      expect(pair.rsync['node-b']).toMatchObject({ paused: false });
      // The schema change undone by its rollback script; every acknowledged write kept.
      expect(await lab.psql('node-a', SCHEMA_CHANGE_OBJECTS)).toBe('0');
      await checkWrites(writes, 'scenario 1 (rollback)');
      const logs = await orchestrator.logs(taskId);
      expect(logs.some((l) => l.message.includes('node by node: node-a first'))).toBe(true);
      // Clients of the VIP are answered throughout: nothing they use is stopped while it serves
      // them. The one request that can be lost is one in flight at the instant the address moves
      // (its answer leaves from an address the old holder no longer has): at most one per VIP move,
      // as in the upgrade. Writes are refused only while fenced (~1 s).
      expect(clients.failed, 'HTTP requests failed during the rollback').toBeLessThanOrEqual(1);
      expect(clients.byNode['node-a']).toBeGreaterThan(0);
    }

    it('1. rolling upgrade under load: both nodes on the new version, VIP on the former standby; then the rolling rollback, clients answered throughout', async () => {
      const run = await upgradeUnderLoad(release(standInJar(NEW)));
      console.log(`scenario 1 (advert_int ${lab.advertInt}): ${describeRun(run)}`);
      const { final } = run;
      expect(final.state, final.last_message ?? '').toBe('COMPLETE');
      expect(final).toMatchObject({
        percent: 100,
        error: null,
        from_version: OLD,
        to_version: NEW,
        primary_before: 'node-a',
        primary_after: 'node-b',
      });
      expect(final.downtime_ms).toEqual(expect.any(Number));

      // Every step recorded, in order, none failed; every state entered once, in order.
      expect(final.finished_steps.map(stepName).filter((s) => !s.startsWith('cleanup.'))).toEqual(
        COMPLETE_STEPS,
      );
      expect(final.finished_steps.every((s) => s.status === 'succeeded')).toBe(true);
      const logs = await orchestrator.logs(run.taskId);
      expect(logs.filter((l) => l.to_state !== null).map((l) => l.to_state)).toEqual([
        'PREPARE',
        'BACKUP',
        'UPGRADE_BACKUP',
        'VIP_SWITCH',
        'UPGRADE_MASTER',
        'VERIFY',
        'COMPLETE',
      ]);
      expect(logs.filter((l) => l.level === 'ERROR')).toEqual([]);

      // The pair as seen from outside the orchestrator.
      const pair = await readPair(lab);
      expect(pair.apps['node-a']).toMatchObject({ status: 200, version: NEW });
      expect(pair.apps['node-b']).toMatchObject({ status: 200, version: NEW });
      expect(pair.vipHolders).toEqual(['node-b']);
      // The database primary moved with the VIP; the former primary streams from it.
      expect(pair.databasePrimary).toBe('node-b');
      expect(pair.replication).toBe('node-a streaming async');
      expect(pair.replicationCaughtUp).toBe(true);
      await checkWrites(run.writes, 'scenario 1');
      expect(await lab.psql('node-b', `select upgraded_to from ${APP_TABLE}`)).toBe(NEW);
      expect(await lab.psql('node-b', SCHEMA_CHANGE_OBJECTS)).toBe('2');
      expect(pair.rsyncUnitActive).toEqual({ 'node-a': true, 'node-b': true });
      expect(pair.rsync['node-b']).toMatchObject({ paused: false });
      expect(pair.configDigests['node-a']).toBe(pair.configDigests['node-b']);

      // What clients saw: the answers moved from node-a to node-b, (almost) nothing failed.
      expect(run.load.byNode['node-a']).toBeGreaterThan(0);
      expect(run.load.byNode['node-b']).toBeGreaterThan(0);
      expect(run.load.failed).toBeLessThanOrEqual(2);

      // The same upgrade rolled back (POST /rollback): node by node, back to the placement before.
      await rollBackUnderLoad(run.taskId);
    }, 400_000);

    it('2. the new version fails its health check on the standby: rolled back, the VIP never moved', async () => {
      const run = await upgradeUnderLoad(release(standInJar(NEW, 'fail-health')));
      console.log(`scenario 2: ${describeRun(run)}; last message: ${run.final.last_message}`);
      const { final } = run;
      expect(final.state).toBe('FAILED');
      expect(final.error).toMatchObject({ code: 'HEALTH_CHECK_FAILED' });
      expect(final.primary_after).toBe('node-a');
      const steps = final.finished_steps.map((s) => `${stepName(s)} ${s.status}`);
      expect(steps).toContain('standby.health node-b failed');
      expect(steps).toContain('rollback.restore node-b succeeded');
      // The schema change undone by the package's rollback script, not by a restore of the live database.
      expect(steps).toContain('rollback.schema node-a succeeded');
      expect(steps.filter((s) => s.startsWith('rollback.database'))).toEqual([]);
      expect(steps.filter((s) => s.startsWith('vip.'))).toEqual([]);
      expect(steps.filter((s) => s.startsWith('rollback.rsync_resume'))).toEqual([
        'rollback.rsync_resume node-a succeeded',
        'rollback.rsync_resume node-b succeeded',
      ]);

      const pair = await readPair(lab);
      expect(pair.apps['node-a']).toMatchObject({ status: 200, version: OLD });
      expect(pair.apps['node-b']).toMatchObject({ status: 200, version: OLD });
      expect(pair.vipHolders).toEqual(['node-a']);
      // Every answer came from node-a, which was never stopped: the schema rollback runs beside the
      // live application.
      expect(run.load.byNode).toEqual({ 'node-a': run.load.ok });
      expect(run.load.failed).toBe(0);
      await checkWrites(run.writes, 'scenario 2');
      expect(run.writes.failed).toBe(0);
      expect(pair.rsyncUnitActive['node-b']).toBe(true);
      expect(pair.rsync['node-b']).toMatchObject({ paused: false });
      // The schema change (new column and new table) was undone with the database restore, and the
      // standby followed.
      expect(await lab.psql('node-a', SCHEMA_CHANGE_OBJECTS)).toBe('0');
      expect(await lab.psql('node-a', `select value from ${APP_TABLE} where key = 'greeting'`)).toBe('hello');
      await eventually('the standby to follow the rollback script', 10_000, async () =>
        (await lab.psql('node-b', SCHEMA_CHANGE_OBJECTS)) === '0' ? true : undefined,
      );
      expect(pair.replication).toBe('node-b streaming async');
    }, 240_000);

    it('3. the old primary unreachable after the VIP switch: UNREACHABLE, what could be reached rolled back', async () => {
      let linkDownAt = '';
      const run = await upgradeUnderLoad(release(standInJar(NEW)), async (taskId) => {
        await orchestrator.waitFor(taskId, (p) => p.state === 'UPGRADE_MASTER' || p.final, {
          intervalMs: 50,
          timeoutMs: 120_000,
        });
        const down = await runCommand('ip', ['-n', 'node-a', 'link', 'set', 'eth0', 'down']);
        expect(down.code, down.stderr).toBe(0);
        linkDownAt = new Date().toISOString();
      });
      try {
        console.log(`scenario 3 (node-a's link down at ${linkDownAt}): ${describeRun(run)}`);
        const { final } = run;
        const logs = await orchestrator.logs(run.taskId);
        expect(final.state, final.last_message ?? '').toBe('UNREACHABLE');
        expect(final.error).toMatchObject({ code: 'UNREACHABLE' });
        expect(final.last_message).toContain('node-a');
        expect(final.last_message).toContain('unreachable');
        expect(logs.some((l) => l.level === 'ERROR' && l.message.includes('node-a'))).toBe(true);
        const steps = final.finished_steps.map((s) => `${stepName(s)} ${s.status}`);
        // Reached: node-b restored to the old version, its config sync resumed. Not reached: node-a's
        // side (it never got the new version), said so step by step.
        expect(steps).toContain('vip.switch node-b succeeded');
        expect(steps).toContain('rollback.restore node-b succeeded');
        expect(steps).toContain('rollback.vip node-a skipped');
        // The database primary moved to node-b with the VIP and stays there with it.
        expect(steps).toContain('rollback.database_promote node-a skipped');
        expect(steps).toContain('rollback.schema node-b succeeded');
        await checkWrites(run.writes, 'scenario 3');
        expect(steps).toContain('rollback.rsync_resume node-a skipped');
        expect(steps).toContain('rollback.rsync_resume node-b succeeded');
        expect(final.primary_after).toBe('node-b');
        expect(await appHealth(lab, 'node-b')).toMatchObject({ status: 200, version: OLD });
        expect(await lab.vipHolders()).toContain('node-b');
      } finally {
        await runCommand('ip', ['-n', 'node-a', 'link', 'set', 'eth0', 'up']);
      }
      // Healed: the link back, node-a still on the old version, the pair whole again.
      await eventually('node-a back on the old version', 20_000, async () => {
        const health = await appHealth(lab, 'node-a');
        return health.status === 200 && health.version === OLD ? true : undefined;
      });
      await resetLab(lab);
      const pair = await readPair(lab);
      expect(pair.vipHolders).toEqual(['node-a']);
      expect(pair.replication).toBe('node-b streaming async');
    }, 240_000);

    it('4. cancel during the standby upgrade: CANCELLED at a safe point, the pair healthy on the old version', async () => {
      let cancelledIn = '';
      const run = await upgradeUnderLoad(release(standInJar(NEW)), async (taskId) => {
        const p = await orchestrator.waitFor(taskId, (q) => q.state === 'UPGRADE_BACKUP' || q.final, {
          intervalMs: 50,
          timeoutMs: 120_000,
        });
        cancelledIn = `${p.state} (${p.current_step ?? '-'})`;
        const cancel = await orchestrator.cancel(taskId, 'operator stopped the change window');
        expect(cancel.status, JSON.stringify(cancel.body)).toBe(200);
      });
      console.log(`scenario 4 (cancel sent in ${cancelledIn}): ${describeRun(run)}`);
      const { final } = run;
      expect(final.state, final.last_message ?? '').toBe('CANCELLED');
      expect(final.error).toBeNull();
      expect(final.last_message).toContain('operator stopped the change window');
      const steps = final.finished_steps.map((s) => `${stepName(s)} ${s.status}`);
      expect(steps.filter((s) => s.startsWith('vip.'))).toEqual([]);
      expect(steps.some((s) => s.endsWith('failed'))).toBe(false);
      expect(steps).toContain('rollback.rsync_resume node-b succeeded');

      const pair = await readPair(lab);
      expect(pair.apps['node-a']).toMatchObject({ status: 200, version: OLD });
      expect(pair.apps['node-b']).toMatchObject({ status: 200, version: OLD });
      expect(pair.vipHolders).toEqual(['node-a']);
      expect(pair.rsyncUnitActive['node-b']).toBe(true);
      expect(pair.rsync['node-b']).toMatchObject({ paused: false });
      expect(pair.replication).toBe('node-b streaming async');
      expect(run.load.byNode).toEqual({ 'node-a': run.load.ok });
      expect(run.load.failed).toBe(0);
      await checkWrites(run.writes, 'scenario 4');
    }, 240_000);

    /** Runs a trigger that the pre-checks must refuse; returns the final progress and the writes. */
    async function refusedUnderWrites(label: string): Promise<{ final: Progress; writes: WriterReport }> {
      const writer = startClientWrites();
      let final: Progress;
      try {
        const trigger = await orchestrator.trigger(release(standInJar(NEW)));
        expect(trigger.status, JSON.stringify(trigger.body)).toBe(201);
        final = await orchestrator.waitFinal(trigger.body.task_id, 60_000);
      } catch (error) {
        await writer.stop();
        throw error;
      }
      const writes = await writer.stop();
      await checkWrites(writes, label);
      expect(writes.failed, `${label}: failed writes`).toBe(0);
      return { final, writes };
    }

    const expectNothingChanged = async (final: Progress): Promise<void> => {
      expect(final.finished_steps.map((s) => `${stepName(s)} ${s.status}`)).toEqual(['prepare.check failed']);
      expect(final.last_message).toContain('nothing was changed');
      const pair = await readPair(lab);
      expect(pair.apps['node-a']).toMatchObject({ status: 200, version: OLD });
      expect(pair.apps['node-b']).toMatchObject({ status: 200, version: OLD });
      expect(pair.vipHolders).toEqual(['node-a']);
      expect(await lab.psql('node-a', SCHEMA_CHANGE_OBJECTS)).toBe('0');
    };

    it("6. broken replication (the standby's primary_conninfo emptied): refused before any change", async () => {
      await lab.psql('node-b', "alter system set primary_conninfo = ''");
      await lab.psql('node-b', 'select pg_reload_conf()');
      await eventually('node-b to stop streaming', 15_000, async () =>
        (await lab.psql('node-a', 'select count(*) from pg_stat_replication')) === '0' ? true : undefined,
      );
      const { final } = await refusedUnderWrites('scenario 6');
      console.log(`scenario 6: ${final.state}: ${final.error?.message ?? ''}`);
      expect(final.state).toBe('FAILED');
      expect(final.error?.message).toMatch(
        /^pre-check replication\.connected failed: no standby streams from primary node-a/,
      );
      await expectNothingChanged(final);
    }, 120_000);

    it('7. a lagging standby (replay paused, ~35 MB written): refused before any change', async () => {
      await lab.psql('node-b', 'select pg_wal_replay_pause()');
      try {
        await lab.psql(
          'node-a',
          "create table lag_filler as select g, repeat('x', 1000) as pad from generate_series(1, 30000) g",
        );
        const { final } = await refusedUnderWrites('scenario 7');
        console.log(`scenario 7: ${final.state}: ${final.error?.message ?? ''}`);
        expect(final.state).toBe('FAILED');
        expect(final.error?.message).toMatch(
          /^pre-check replication\.lag failed: standby node-b is \d+\.\d MiB behind \(bound 16\.0 MiB\)/,
        );
        await expectNothingChanged(final);
      } finally {
        await lab.psql('node-b', 'select pg_wal_replay_resume()');
        await lab.psql('node-a', 'drop table if exists lag_filler');
      }
    }, 120_000);

    it('8. cancel after the switchover: the database primary and the VIP move back, the schema rollback runs, no acknowledged write lost', async () => {
      const run = await upgradeUnderLoad(release(standInJar(NEW)), async (taskId) => {
        await orchestrator.waitFor(taskId, (p) => p.state === 'UPGRADE_MASTER' || p.final, {
          intervalMs: 50,
          timeoutMs: 120_000,
        });
        const cancel = await orchestrator.cancel(taskId, 'change window over');
        expect(cancel.status, JSON.stringify(cancel.body)).toBe(200);
      });
      console.log(`scenario 8: ${describeRun(run)}`);
      const { final } = run;
      expect(final.state, final.last_message ?? '').toBe('CANCELLED');
      const steps = final.finished_steps.map((s) => `${stepName(s)} ${s.status}`);
      expect(steps.some((s) => s.endsWith('failed'))).toBe(false);
      expect(steps).toContain('rollback.database_promote node-a succeeded');
      expect(steps).toContain('rollback.schema node-a succeeded');
      const pair = await readPair(lab);
      expect(pair.vipHolders).toEqual(['node-a']);
      expect(pair.databasePrimary).toBe('node-a');
      expect(pair.replication).toBe('node-b streaming async');
      expect(pair.apps['node-a']).toMatchObject({ status: 200, version: OLD });
      expect(pair.apps['node-b']).toMatchObject({ status: 200, version: OLD });
      expect(await lab.psql('node-a', SCHEMA_CHANGE_OBJECTS)).toBe('0');
      await checkWrites(run.writes, 'scenario 8');
    }, 240_000);

    /**
     * Where scenario 10 kills the orchestrator (SIGKILL, as an OOM kill or a power cut would), and
     * what the restarted process must make of it: before the VIP switch the journal is rolled back,
     * past it the upgrade is finished (RECOVERY_POLICY=finish-forward, the default).
     */
    const KILL_POINTS: {
      name: string;
      at: (p: Progress) => boolean;
      ends: 'COMPLETE' | 'FAILED';
    }[] = [
      { name: 'after BACKUP', at: (p) => p.state === 'UPGRADE_BACKUP', ends: 'FAILED' },
      {
        name: 'inside UPGRADE_BACKUP (standby stopped for its install)',
        at: (p) => p.finished_steps.some((s) => stepName(s) === 'standby.stop node-b'),
        ends: 'FAILED',
      },
      { name: 'right after VIP_SWITCH', at: (p) => p.state === 'UPGRADE_MASTER', ends: 'COMPLETE' },
      {
        name: 'inside UPGRADE_MASTER (former primary stopped for its install)',
        at: (p) => p.finished_steps.some((s) => stepName(s) === 'master.stop node-a'),
        ends: 'COMPLETE',
      },
    ];

    for (const [i, point] of KILL_POINTS.entries())
      it(`10${'abcd'[i]}. orchestrator killed ${point.name}: the restarted one ${point.ends === 'COMPLETE' ? 'finishes the upgrade' : 'rolls back'}, the pair whole, no client request failed during the recovery`, async () => {
        const label = `scenario 10${'abcd'[i]}`;
        const trigger = await orchestrator.trigger(release(standInJar(NEW)));
        expect(trigger.status, JSON.stringify(trigger.body)).toBe(201);
        const taskId = trigger.body.task_id;
        const atKill = await orchestrator.waitFor(taskId, (p) => point.at(p) || p.final, {
          intervalMs: 50,
          timeoutMs: 120_000,
        });
        expect(atKill.final, `${label}: the run ended before the kill point`).toBe(false);

        // Clients through the VIP from the kill until the task is final: the recovery itself.
        const load = startLoad({ url: `${lab.vipUrl}/`, intervalMs: 20, timeoutMs: 1000 });
        const writer = startClientWrites();
        const killedAt = Date.now();
        const recovered = (async () => {
          await orchestrator.kill();
          // The same data dir: upgrade_config and the task history are there already.
          orchestrator = await startOrchestrator({
            lab,
            keys,
            dataDir: orchestrator.dataDir,
            removeDataDir: true,
            listenTimeoutMs: 180_000,
          });
          const restartMs = Date.now() - killedAt;
          return { restartMs, final: await orchestrator.waitFinal(taskId, 180_000) };
        })();
        // The clients stop whatever happened, before a failure is reported.
        await recovered.catch(() => undefined);
        const loadReport = await load.stop();
        const writes = await writer.stop();
        const { restartMs, final } = await recovered;
        const recoveryMs = Date.now() - killedAt;
        const version = point.ends === 'COMPLETE' ? NEW : OLD;
        const pair = await readPair(lab);
        console.log(
          `${label} (killed in ${atKill.state} at ${atKill.current_step ?? '-'}): ${final.state}` +
            `${final.error === null ? '' : ` ${final.error.code}`}, listening again ${restartMs} ms and final ` +
            `${recoveryMs} ms after the kill; versions node-a ${pair.apps['node-a'].version}, node-b ` +
            `${pair.apps['node-b'].version}; VIP ${pair.vipHolders.join('+')}, db primary ${pair.databasePrimary}; ` +
            `during the recovery: ${formatLoadReport(loadReport)}; slowest recovery steps: ` +
            final.finished_steps
              .filter((s) => Date.parse(s.at) >= killedAt && (s.duration_ms ?? 0) >= 1000)
              .map((s) => `${stepName(s)} ${s.duration_ms} ms`)
              .join(', '),
        );
        await checkWrites(writes, label);

        expect(final.state, final.last_message ?? '').toBe(point.ends);
        if (point.ends === 'FAILED') expect(final.error).toMatchObject({ code: 'INTERRUPTED' });
        // One version on both nodes, both healthy, the VIP with the database primary.
        expect(pair.apps['node-a']).toMatchObject({ status: 200, version });
        expect(pair.apps['node-b']).toMatchObject({ status: 200, version });
        expect(pair.vipHolders).toEqual([pair.databasePrimary]);
        expect(pair.vipHolders).toEqual([final.primary_after]);
        // Config sync running again on both, replication streaming and caught up.
        expect(pair.rsyncUnitActive).toEqual({ 'node-a': true, 'node-b': true });
        expect(pair.rsync['node-a']).toMatchObject({ paused: false });
        expect(pair.rsync['node-b']).toMatchObject({ paused: false });
        const standby = pair.databasePrimary === 'node-a' ? 'node-b' : 'node-a';
        expect(pair.replication).toBe(`${standby} streaming async`);
        expect(pair.replicationCaughtUp).toBe(true);
        expect(await lab.psql(pair.databasePrimary ?? 'node-a', SCHEMA_CHANGE_OBJECTS)).toBe(
          point.ends === 'COMPLETE' ? '2' : '0',
        );
        // The history tells what happened, the recovery's own steps included.
        const logs = await orchestrator.logs(taskId);
        const text = logs.map((l) => l.message).join('\n');
        expect(text).toContain(`the orchestrator stopped while this task was in state ${atKill.state}`);
        if (point.ends === 'COMPLETE') {
          expect(text).toContain('finishing the upgrade forward');
          expect(final.finished_steps.map(stepName)).toContain('recovery.inspect');
        } else {
          expect(final.finished_steps.map(stepName)).toContain('rollback.rsync_resume node-a');
        }
        // The recovery itself touched nothing clients use: no failed request, no failed write.
        expect(loadReport.failed, `${label}: HTTP requests failed during the recovery`).toBe(0);
        expect(writes.failed, `${label}: writes failed during the recovery`).toBe(0);
      }, 300_000);

    it(
      `9. ${ROUNDS} upgrades back and forth: priorities only swap (never a limit), the database primary always on the VIP holder`,
      async () => {
        const writer = startClientWrites();
        const lines: string[] = [];
        const started = Date.now();
        try {
          for (let i = 1; i <= ROUNDS; i++) {
            const version = `3.${i}.0`;
            const trigger = await orchestrator.trigger(
              buildSignedPackage({ version, jar: standInJar(version) }, keys),
            );
            expect(trigger.status, JSON.stringify(trigger.body)).toBe(201);
            const final = await orchestrator.waitFinal(trigger.body.task_id, 120_000);
            expect(final.state, `${version}: ${final.last_message ?? ''}`).toBe('COMPLETE');
            const priorities = await lab.priorities();
            const holders = await lab.vipHolders();
            const primary = await databasePrimaryOf(lab);
            lines.push(
              `${version} ${holders.join('+')} db ${primary ?? '?'} prio ${priorities['node-a']}/${priorities['node-b']}`,
            );
            expect(holders).toEqual([final.primary_after]);
            expect(primary).toBe(final.primary_after);
            expect(new Set(Object.values(priorities))).toEqual(new Set([150, 100]));
          }
        } finally {
          const writes = await writer.stop();
          console.log(`scenario 9 (${Date.now() - started} ms): ${lines.join('; ')}`);
          await checkWrites(writes, 'scenario 9');
        }
        const status = await agentCall<{ role: string; connected: boolean }>(
          lab,
          'node-a',
          'replication.status',
        );
        expect(status).toMatchObject({ connected: true });
      },
      ROUNDS * 90_000,
    );
  },
);
