// The built service as a real process against the vendor simulator and the real PostgreSQL, with
// time compressed by configuration: what an operator running it under PM2 would see.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { startTcpProxy, useTestDatabase, waitFor, type TcpProxy } from '@upgrade/testkit';
import type { Static } from '@upgrade/service';
import type { RoundDetail, RoundPage, StatsResponse, StatusResponse } from '../src/http/schemas.js';
import type { HealthReport } from '@upgrade/core';
import { FILES, makeGroups, tempDir } from './helpers.js';
import { runCli, startServiceProcess, type ServiceProcess } from './process.js';
import { startVendorSimulator, type VendorSimulator } from './simulator/vendor-simulator.js';

const database = useTestDatabase();
let sim: VendorSimulator;
let proxy: TcpProxy;
let sql: pg.Pool;
const running: ServiceProcess[] = [];
const dirs: ReturnType<typeof tempDir>[] = [];

beforeAll(async () => {
  sim = await startVendorSimulator({ hostDurationMs: 400, startSpreadMs: 50 });
  const server = new URL(database.url);
  proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port || 5432) });
  sql = new pg.Pool({ connectionString: database.url, max: 2 });
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.kill('SIGKILL')));
  proxy.restore();
  sim.reset();
  await sql
    .query('truncate upgrade_log, upgrade_round_group, upgrade_round, upgrade_state cascade')
    .catch(() => undefined);
});
afterAll(async () => {
  await sql.end();
  await proxy.close();
  await sim.close();
  for (const d of dirs) d.remove();
});

function env(overrides: Record<string, string> = {}): Record<string, string> {
  const dir = tempDir('rcu-e2e-');
  dirs.push(dir);
  return {
    DATABASE_URL: database.url,
    DATA_DIR: dir.path,
    VENDOR_BASE_URL: sim.baseUrl,
    VENDOR_USERNAME: sim.credentials.username,
    VENDOR_PASSWORD: sim.credentials.password,
    VENDOR_RESPONSE_TIMEOUT_MS: '1000',
    VENDOR_RETRIES: '1',
    RCU_GROUPS: JSON.stringify(makeGroups(2, 3)),
    FIRMWARE_FILES: JSON.stringify(FILES),
    ROUND_INTERVAL_MS: '3600000',
    INITIAL_WAIT_MS: '100',
    POLL_INTERVAL_MS: '100',
    POLL_TIMEOUT_MS: '5000',
    STORE_RETRY_MAX_MS: '100',
    ...overrides,
  };
}

async function start(e: Record<string, string>): Promise<ServiceProcess> {
  const p = await startServiceProcess(e);
  running.push(p);
  return p;
}

const finished = (l: Record<string, unknown>) => l.msg === 'round finished';
const json = async <T>(res: Response): Promise<T> => (await res.json()) as T;
type ErrorBody = { error: { code: string; message: string } };

async function count(query: string): Promise<number> {
  const { rows } = await sql.query<{ n: string }>(query);
  return Number(rows[0]?.n);
}

describe('rcu-scheduler as a process', () => {
  it('runs a round at start, logs every host, and serves rounds, stats, status, health and metrics', async () => {
    // The vendor sends progress as text ("100%") and lists every host twice: read through, counted.
    sim.misreport('percent-text');
    sim.misreport('duplicate-hosts');
    const e = env();
    const service = await start(e);
    await service.waitForLog(finished);

    const list = await json<Static<typeof RoundPage>>(await fetch(`${service.url}/api/rounds`));
    expect(list.total).toBe(1);
    const round = list.items[0] as { id: string; summary: unknown };
    expect(round).toMatchObject({ status: 'finished', trigger: 'schedule', filename: 'RCU_V2.3.1.bin' });
    expect(round.summary).toEqual({ total: 6, completed: 6, failed: 0, timeout: 0 });

    const detail = await json<
      Static<typeof RoundDetail> & { groups: { uuid: string; roomTypeId: number }[] }
    >(await fetch(`${service.url}/api/rounds/${round.id}`));
    expect(detail.results).toHaveLength(6);
    const group = detail.groups[0];
    const vendorUuid = group?.uuid ?? '';
    expect(sim.upgrades.get(vendorUuid)?.roomTypeId).toBe(group?.roomTypeId);
    const byUuid = await json<{ id: string }>(await fetch(`${service.url}/api/rounds/${vendorUuid}`));
    expect(byUuid.id).toBe(round.id);

    const { rows } = await sql.query<{ n: string }>(
      "select count(*) as n from upgrade_log where round_id = $1 and status = 'completed' and uuid is not null",
      [round.id],
    );
    expect(Number(rows[0]?.n)).toBe(6);

    const missing = await fetch(`${service.url}/api/rounds/not-a-round`);
    expect(missing.status).toBe(404);
    expect((await json<ErrorBody>(missing)).error).toMatchObject({ code: 'NOT_FOUND' });

    const status = await json<Static<typeof StatusResponse>>(await fetch(`${service.url}/api/status`));
    expect(status.rotation).toMatchObject({ index: 0, used: 1 });
    expect(status.rotation.upcoming.slice(0, 3)).toEqual([
      'RCU_V2.3.1.bin',
      'RCU_V2.4.0.bin',
      'RCU_V2.4.0.bin',
    ]);

    const stats = await json<Static<typeof StatsResponse>>(await fetch(`${service.url}/api/stats`));
    expect(stats.byFirmware).toEqual([
      expect.objectContaining({ key: 'RCU_V2.3.1.bin', attempts: 6, completed: 6, successRate: 1 }),
    ]);
    expect(stats.byHost).toHaveLength(6);
    const badSince = await fetch(`${service.url}/api/stats?since=yesterday`);
    expect(badSince.status).toBe(400);

    const health = await fetch(`${service.url}/healthz`);
    expect(health.status).toBe(200);
    expect((await json<HealthReport>(health)).checks.map((c) => c.name)).toEqual(['database', 'vendor-api']);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toContain('rcu_rounds_total{stored="true"} 1');
    expect(metrics).toContain('rcu_host_results_total{status="completed"} 6');
    expect(metrics).toContain('rcu_vendor_answer_deviations_total{kind="conflicting_duplicate"} 0');
    for (const kind of ['percent_text', 'duplicate_host'])
      expect(
        Number(new RegExp(`rcu_vendor_answer_deviations_total{kind="${kind}"} (\\d+)`).exec(metrics)?.[1]),
      ).toBeGreaterThanOrEqual(6);

    const manual = await fetch(`${service.url}/api/rounds`, { method: 'POST' });
    expect(manual.status).toBe(202);
    const again = await fetch(`${service.url}/api/rounds`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect((await json<ErrorBody>(again)).error.code).toBe('CONFLICT');

    const report = await runCli(['report'], {
      DATABASE_URL: e.DATABASE_URL ?? '',
      DATA_DIR: e.DATA_DIR ?? '',
    });
    expect(report.code).toBe(0);
    expect(report.stdout).toMatch(/RCU_V2\.3\.1\.bin\s+\d+\s+\d+\s+0\s+0\s+100\.0%/);

    // SIGTERM during the manual round: the round stops, and is resumed by the next start.
    expect(await service.kill('SIGTERM')).toBe(0);
  });

  it('finishes a round interrupted by a crash: polls the same uuids again, one round, one rotation step', async () => {
    const e = env({ INITIAL_WAIT_MS: '1500' });
    const first = await start(e);
    await first.waitForLog((l) => l.msg === 'round started');
    await waitFor(
      async () => (await count('select count(*) as n from upgrade_round_group where uuid is not null')) === 2,
      { timeoutMs: 10_000 },
    );
    await first.kill('SIGKILL');
    const { rows: groups } = await sql.query<{ uuid: string }>(
      'select uuid from upgrade_round_group order by roomtype_id',
    );

    const second = await start(e);
    await second.waitForLog((l) => l.msg === 'resuming a round left unfinished by a restart');
    await second.waitForLog(finished);
    const rounds = await sql.query<{ status: string }>('select status from upgrade_round');
    expect(rounds.rows).toEqual([{ status: 'finished' }]);
    const log = await sql.query<{ uuid: string; status: string }>(
      'select distinct uuid, status from upgrade_log order by uuid',
    );
    expect(log.rows).toEqual(
      groups.map((g) => ({ uuid: g.uuid, status: 'completed' })).sort((a, b) => a.uuid.localeCompare(b.uuid)),
    );
    const state = await sql.query('select rotation_index, rotation_used from upgrade_state');
    expect(state.rows).toEqual([{ rotation_index: 0, rotation_used: 1 }]);
  });

  it('keeps results through a database outage and a restart, then stores them exactly once', async () => {
    const e = env({ DATABASE_URL: proxy.via(database.url), INITIAL_WAIT_MS: '800' });
    const first = await start(e);
    await first.waitForLog((l) => l.msg === 'round started');
    await waitFor(
      async () => (await count('select count(*) as n from upgrade_round_group where uuid is not null')) === 2,
      { timeoutMs: 10_000 },
    );
    proxy.cut();
    await first.waitForLog((l) => l.msg === 'database unavailable; results kept in the spool, retrying');
    const spoolDir = join(e.DATA_DIR ?? '', 'spool');
    expect(readdirSync(spoolDir).filter((f) => f.endsWith('.json'))).toHaveLength(1);
    expect(await count('select count(*) as n from upgrade_log')).toBe(0);
    await first.kill('SIGKILL');

    proxy.restore();
    const second = await start({ ...e, ROUND_ON_START: 'false' });
    await second.waitForLog((l) => l.msg === 'stored spooled round results');
    expect(await count('select count(*) as n from upgrade_log')).toBe(6);
    expect((await sql.query('select status from upgrade_round')).rows).toEqual([{ status: 'finished' }]);
    expect(readdirSync(spoolDir).filter((f) => f.endsWith('.json'))).toEqual([]);
  });

  it('refuses a bad configuration with exit code 2, naming every problem, and writes nothing', async () => {
    const e = env({
      RCU_GROUPS: '[{"roomTypeId": "twelve", "hosts": []}]',
      POLL_INTERVAL_MS: 'soon',
      VENDOR_PASSWORD: '',
    });
    const result = await runCli(['serve'], e);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Invalid configuration:');
    expect(result.stderr).toContain('RCU_GROUPS');
    expect(result.stderr).toContain('POLL_INTERVAL_MS');
    expect(result.stderr).toContain('VENDOR_PASSWORD: is required but not set');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(e.DATA_DIR ?? '', 'spool'))).toBe(false);
  });
});
