// The vendor adapter against the simulator over real loopback HTTP, and the spec checks.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runChecks, systemClock } from '@upgrade/core';
import { createVendorApi, type VendorApiClient, type VendorApiOptions } from '../src/adapters/vendor-api.js';
import type { FirmwareFile, HostGroup, HostProgress } from '../src/ports.js';
import { validateSpec } from '../scripts/validate-spec.js';
import { startVendorSimulator, type VendorSimulator } from './simulator/vendor-simulator.js';

const FILE: FirmwareFile = { filename: 'RCU_V2.3.1.bin', fileType: 1 };
const GROUP: HostGroup = { roomTypeId: 12, hosts: ['1001', '1002', '1003', '1004'] };

let sim: VendorSimulator;
let clients: VendorApiClient[] = [];

function vendor(sim: VendorSimulator, overrides: Partial<VendorApiOptions> = {}): VendorApiClient {
  const client = createVendorApi({
    baseUrl: sim.baseUrl,
    ...sim.credentials,
    connectTimeoutMs: 100,
    responseTimeoutMs: 200,
    retries: 2,
    retryDelayMs: 5,
    ...overrides,
  });
  clients.push(client);
  return client;
}

/** Polls every 50 ms until every host is final; returns every answer seen. */
async function pollUntilFinal(api: VendorApiClient, uuid: string): Promise<HostProgress[][]> {
  const seen: HostProgress[][] = [];
  for (let i = 0; i < 100; i++) {
    const hosts = await api.queryProgress(uuid);
    seen.push(hosts);
    if (hosts.every((h) => ['completed', 'failed', 'timeout'].includes(h.status))) return seen;
    await systemClock.sleep(50);
  }
  throw new Error('hosts did not finish within 5 s');
}

beforeEach(async () => {
  sim = await startVendorSimulator({ hostDurationMs: 400, seed: 7 });
});

afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  await sim.close();
});

describe('vendor API adapter', () => {
  it('triggers an upgrade and polls it until every host completed', async () => {
    const api = vendor(sim);
    const { uuid } = await api.triggerUpgrade({ group: GROUP, file: FILE });

    expect(sim.upgrades.get(uuid)).toMatchObject({
      roomTypeId: 12,
      hosts: GROUP.hosts,
      filename: 'RCU_V2.3.1.bin',
      fileType: 1,
    });
    const seen = await pollUntilFinal(api, uuid);
    const last = seen.at(-1) ?? [];
    expect(last).toEqual(
      GROUP.hosts.map((host) => ({
        host,
        status: 'completed',
        progress: 100,
        configVersion: 'CFG-1.0.7',
        firmwareVersion: '2.3.1',
        message: null,
      })),
    );
    // Progress moved through the running state: a poll caught a host part-way.
    expect(seen.flat().some((h) => h.status === 'running' && h.progress > 0 && h.progress < 100)).toBe(true);
    expect(api.stats).toEqual({ calls: 1 + seen.length, retries: 0 });
    expect(sim.calls).toEqual({ Upgrade_V2: 1, QueryUpdateHostProgressBar: seen.length });
  });

  it('reports failed, timed-out and offline hosts with the vendor message', async () => {
    sim.failHosts(['1002']);
    sim.failHosts((host) => host === '1003', { as: 'timeout' });
    sim.failHosts(['1004'], { as: 'offline' });
    const api = vendor(sim);
    const { uuid } = await api.triggerUpgrade({ group: GROUP, file: FILE });

    const last = (await pollUntilFinal(api, uuid)).at(-1) ?? [];
    expect(last.map((h) => [h.host, h.status, h.message])).toEqual([
      ['1001', 'completed', null],
      ['1002', 'failed', 'Host did not acknowledge the firmware package'],
      ['1003', 'timeout', 'No answer from the host within the upgrade window'],
      ['1004', 'failed', 'Host offline'],
    ]);
    expect(last[1]).toMatchObject({ firmwareVersion: null, configVersion: null });
  });

  it('reports stuck hosts as running for ever', async () => {
    sim.stickHosts(['1001']);
    const api = vendor(sim);
    const { uuid } = await api.triggerUpgrade({ group: GROUP, file: FILE });
    await systemClock.sleep(700); // past every host's end (400 ms + 20 % jitter + 40 ms spread)

    const hosts = await api.queryProgress(uuid);
    expect(hosts[0]).toMatchObject({ host: '1001', status: 'running' });
    expect(hosts[0]?.progress).toBeGreaterThan(0);
    expect(hosts[0]?.progress).toBeLessThan(100);
    expect(hosts.slice(1).every((h) => h.status === 'completed')).toBe(true);
  });

  it('retries a 503 and succeeds', async () => {
    sim.failNext(2, 503);
    const api = vendor(sim);

    const { uuid } = await api.triggerUpgrade({ group: GROUP, file: FILE });
    expect(sim.upgrades.has(uuid)).toBe(true);
    expect(api.stats).toEqual({ calls: 3, retries: 2 });
    expect(sim.calls.Upgrade_V2).toBe(3);
  });

  it('gives up after the retries with UNAVAILABLE: retries + 1 calls', async () => {
    const api = vendor(sim, { retries: 2 });
    const { uuid } = await api.triggerUpgrade({ group: GROUP, file: FILE });
    sim.failNext(10, 502, 'QueryUpdateHostProgressBar');

    await expect(api.queryProgress(uuid)).rejects.toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect(sim.calls.QueryUpdateHostProgressBar).toBe(3);
    expect(api.stats).toEqual({ calls: 4, retries: 2 });
  });

  it('does not retry Upgrade_V2 after a 500 (it may have started), unless told to', async () => {
    sim.failNext(1, 500);
    const api = vendor(sim);
    const error: unknown = await api.triggerUpgrade({ group: GROUP, file: FILE }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect((error as Error).message).toContain('not retried');
    expect(sim.calls.Upgrade_V2).toBe(1);

    sim.failNext(1, 500);
    const bold = vendor(sim, { retryUnsafeTrigger: true });
    await expect(bold.triggerUpgrade({ group: GROUP, file: FILE })).resolves.toHaveProperty('uuid');
    expect(bold.stats).toEqual({ calls: 2, retries: 1 });
  });

  it('does not retry a 4xx', async () => {
    sim.failNext(5, 400);
    const api = vendor(sim);
    await expect(api.triggerUpgrade({ group: GROUP, file: FILE })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      retryable: false,
    });
    expect(api.stats).toEqual({ calls: 1, retries: 0 });

    const wrongPath = vendor(sim, { baseUrl: `${sim.url}/wrong` });
    await expect(wrongPath.queryProgress('5b0c7c2e-8d1f-4f8e-9a43-2a7d6c1e0b91')).rejects.toThrow(
      /HTTP 404.*check the vendor base URL/,
    );
    expect(wrongPath.stats.calls).toBe(1);
  });

  it('answers UNAUTHORIZED for wrong credentials, without retrying', async () => {
    const api = vendor(sim, { password: 'wrong' });
    await expect(api.triggerUpgrade({ group: GROUP, file: FILE })).rejects.toMatchObject({
      code: 'UNAUTHORIZED',
      message: expect.stringContaining('Invalid user name or password') as unknown,
    });
    expect(api.stats.calls).toBe(1);
    expect(sim.upgrades.size).toBe(0);
  });

  it('times out a hanging call within the response timeout', async () => {
    sim.hang('Upgrade_V2');
    const api = vendor(sim, { responseTimeoutMs: 200 });
    const started = performance.now();
    await expect(api.triggerUpgrade({ group: GROUP, file: FILE })).rejects.toMatchObject({
      code: 'TIMEOUT',
      retryable: true,
    });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(1_000); // generous: a loaded CI machine must not make this flaky
    // Not retried: the vendor may have started the upgrade before it stopped answering.
    expect(sim.calls.Upgrade_V2).toBe(1);
  });

  it('retries a hanging query, then answers TIMEOUT', async () => {
    const api = vendor(sim, { responseTimeoutMs: 150, retries: 1 });
    const { uuid } = await api.triggerUpgrade({ group: GROUP, file: FILE });
    sim.hang(true);
    await expect(api.queryProgress(uuid)).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(sim.calls.QueryUpdateHostProgressBar).toBe(2);
  });

  it('answers VENDOR_CONTRACT_VIOLATION for broken JSON, without retrying', async () => {
    sim.malformed(1, 'json');
    const api = vendor(sim);
    await expect(api.triggerUpgrade({ group: GROUP, file: FILE })).rejects.toMatchObject({
      code: 'VENDOR_CONTRACT_VIOLATION',
      retryable: false,
      message: expect.stringContaining('not JSON') as unknown,
    });
    expect(api.stats.calls).toBe(1);
  });

  it('answers VENDOR_CONTRACT_VIOLATION naming the field for an off-spec answer', async () => {
    const api = vendor(sim);
    sim.malformed(1, 'schema', 'Upgrade_V2');
    await expect(api.triggerUpgrade({ group: GROUP, file: FILE })).rejects.toThrow(
      /Upgrade_V2: answer does not match the spec: Data must have required property 'UUID'/,
    );

    const { uuid } = await api.triggerUpgrade({ group: GROUP, file: FILE });
    sim.malformed(1, 'schema');
    await expect(api.queryProgress(uuid)).rejects.toThrow(/Data\/0\/Status must be integer/);
  });

  it('reads through duplicate hosts and progress as text, counting each deviation', async () => {
    const deviations: string[] = [];
    const api = vendor(sim, { onDeviation: (kind) => deviations.push(kind) });
    const { uuid } = await api.triggerUpgrade({ group: GROUP, file: FILE });
    await systemClock.sleep(600); // every host has completed
    const clean = await api.queryProgress(uuid);
    expect(clean.map((h) => [h.host, h.status, h.progress])).toEqual(
      GROUP.hosts.map((h) => [h, 'completed', 100]),
    );

    sim.misreport('duplicate-hosts', 1);
    expect(await api.queryProgress(uuid)).toEqual(clean);
    expect(deviations).toEqual(['duplicate_host', 'duplicate_host', 'duplicate_host', 'duplicate_host']);

    deviations.length = 0;
    sim.misreport('percent-text', 1);
    expect(await api.queryProgress(uuid)).toEqual(clean);
    expect(deviations).toEqual(['percent_text', 'percent_text', 'percent_text', 'percent_text']);
  });

  it('reads a host listed with conflicting statuses as the least final one, and warns', async () => {
    const deviations: string[] = [];
    const warnings: { details: Record<string, unknown>; message: string }[] = [];
    const api = vendor(sim, {
      onDeviation: (kind) => deviations.push(kind),
      logger: { warn: (details, message) => warnings.push({ details, message }) },
    });
    const { uuid } = await api.triggerUpgrade({ group: GROUP, file: FILE });
    await systemClock.sleep(600);
    sim.misreport('conflicting-duplicate', 1);
    const [first, ...others] = await api.queryProgress(uuid);
    expect(first).toMatchObject({ host: '1001', status: 'running', progress: 99, firmwareVersion: null });
    expect(others.every((h) => h.status === 'completed')).toBe(true);
    expect(deviations).toEqual(['conflicting_duplicate']);
    expect(warnings).toEqual([
      {
        details: { endpoint: 'QueryUpdateHostProgressBar', uuid, host: '1001', statuses: [2, 1] },
        message: 'vendor listed a host with conflicting statuses; reading the least final one',
      },
    ]);
    // Strict where the meaning is unclear: a status outside the spec is still a violation.
    sim.malformed(1, 'schema');
    await expect(api.queryProgress(uuid)).rejects.toMatchObject({ code: 'VENDOR_CONTRACT_VIOLATION' });
  });

  it('answers NOT_FOUND for a uuid the vendor lost', async () => {
    const api = vendor(sim);
    const { uuid } = await api.triggerUpgrade({ group: GROUP, file: FILE });
    sim.loseUuid(uuid);
    await expect(api.queryProgress(uuid)).rejects.toMatchObject({ code: 'NOT_FOUND', details: { uuid } });
    expect(api.stats.calls).toBe(2);
  });

  it('answers VALIDATION_FAILED with the vendor message when it refuses an upgrade', async () => {
    await sim.close();
    sim = await startVendorSimulator({ knownFiles: ['RCU_V2.3.1.bin'] });
    const api = vendor(sim);
    await expect(
      api.triggerUpgrade({ group: GROUP, file: { filename: 'RCU_V9.9.9.bin', fileType: 1 } }),
    ).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: 'vendor Upgrade_V2 refused: File RCU_V9.9.9.bin does not exist on the server',
    });
  });

  it('refuses to send a request that breaks the spec', async () => {
    const api = vendor(sim);
    await expect(
      api.triggerUpgrade({ group: { roomTypeId: 12, hosts: [] }, file: FILE }),
    ).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringContaining('HostList must NOT have fewer than 1 items') as unknown,
    });
    expect(api.stats.calls).toBe(0);
  });

  it('retries a refused connection (nothing was sent), then answers UNREACHABLE', async () => {
    const gone = await startVendorSimulator();
    await gone.close();
    const api = vendor(gone);
    await expect(api.triggerUpgrade({ group: GROUP, file: FILE })).rejects.toMatchObject({
      code: 'UNREACHABLE',
      retryable: true,
    });
    expect(api.stats).toEqual({ calls: 3, retries: 2 });
  });

  it('stops at once when the caller aborts or the client closes', async () => {
    sim.hang(true);
    const api = vendor(sim, { responseTimeoutMs: 10_000 });
    const controller = new AbortController();
    const pending = api.triggerUpgrade({ group: GROUP, file: FILE }, controller.signal);
    setTimeout(() => controller.abort(new Error('shutting down')), 50);
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });

    const closing = api.queryProgress('5b0c7c2e-8d1f-4f8e-9a43-2a7d6c1e0b91').catch((e: unknown) => e);
    await systemClock.sleep(50);
    await api.close();
    expect(await closing).toMatchObject({ code: 'ABORTED' });
  });

  it('reports the vendor healthy only when its API answers a query, without counting a call', async () => {
    const api = vendor(sim);
    const healthy = await runChecks([api.healthCheck()]);
    expect(healthy.checks[0]).toMatchObject({
      name: 'vendor-api',
      status: 'ok',
      detail: 'QueryUpdateHostProgressBar answers',
    });

    // A web server that answers, but not the API: a wrong base path (404), a GET-only page (405).
    const wrongPath = vendor(sim, { baseUrl: `${sim.url}/wrong` });
    const notApi = await runChecks([wrongPath.healthCheck()]);
    expect(notApi.checks[0]).toMatchObject({ status: 'down' });
    expect(notApi.checks[0]?.detail).toMatch(/^VALIDATION_FAILED: .*HTTP 404.*check the vendor base URL/);

    const badCredentials = vendor(sim, { password: 'wrong' });
    const refused = await runChecks([badCredentials.healthCheck()]);
    expect(refused.checks[0]?.detail).toMatch(/^UNAUTHORIZED: /);

    sim.hang('QueryUpdateHostProgressBar');
    const hanging = await runChecks([api.healthCheck()], { timeout: 1_000 });
    expect(hanging.checks[0]).toMatchObject({
      status: 'down',
      detail: 'TIMEOUT: vendor QueryUpdateHostProgressBar: no answer within 200 ms',
    });
    sim.reset();

    await sim.close();
    const gone = await runChecks([api.healthCheck('vendor', { critical: true })]);
    expect(gone).toMatchObject({ status: 'down', checks: [{ name: 'vendor', status: 'down' }] });
    expect(api.stats.calls).toBe(0);
  });

  it('makes one call per group per poll over 10 000 hosts in 100 groups', async () => {
    const api = vendor(sim, { responseTimeoutMs: 5_000 });
    const groups = Array.from({ length: 100 }, (_, g) => ({
      roomTypeId: g + 1,
      hosts: Array.from({ length: 100 }, (_, h) => `${g + 1}-${h + 1}`),
    }));
    const uuids = await Promise.all(groups.map((group) => api.triggerUpgrade({ group, file: FILE })));
    const before = api.stats.calls;
    const answers = await Promise.all(uuids.map(({ uuid }) => api.queryProgress(uuid)));

    expect(api.stats.calls - before).toBe(100);
    expect(answers.flat()).toHaveLength(10_000);
    expect(new Set(uuids.map((u) => u.uuid)).size).toBe(100);
  });
});

describe('vendor simulator', () => {
  it('answers 400 with the failure envelope for a request off the spec', async () => {
    const response = await request(`${sim.baseUrl}/Upgrade_V2`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...sim.credentials, RoomTypeID: 1, HostList: ['1'], FileName: 'a.bin' }),
    });
    expect(response.statusCode).toBe(400);
    expect(await response.body.json()).toEqual({
      IsSuccess: false,
      Message: "Invalid request: (body) must have required property 'UserName'",
      Data: null,
    });
  });

  it('hands out the same upgrades for the same seed', async () => {
    const other = await startVendorSimulator({ hostDurationMs: 400, seed: 7 });
    try {
      const a = await vendor(sim).triggerUpgrade({ group: GROUP, file: FILE });
      const b = await vendor(other).triggerUpgrade({ group: GROUP, file: FILE });
      expect(a.uuid).toBe(b.uuid);
    } finally {
      await other.close();
    }
  });
});

describe('spec:validate', () => {
  const specDir = fileURLToPath(new URL('../spec', import.meta.url));
  let copy: string;

  beforeEach(() => {
    copy = mkdtempSync(join(tmpdir(), 'vendor-spec-'));
    cpSync(specDir, copy, { recursive: true });
  });
  afterEach(() => rmSync(copy, { recursive: true, force: true }));

  const specFile = (): string => join(copy, 'vendor-api.openapi.json');
  const edit = (file: string, change: (json: Record<string, unknown>) => void): void => {
    const json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    change(json);
    writeFileSync(file, JSON.stringify(json));
  };
  const failed = (report: ReturnType<typeof validateSpec>): string[] =>
    report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);

  it('passes on the real spec and fixtures', () => {
    const report = validateSpec();
    expect(failed(report)).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it('fails on a dangling $ref', () => {
    edit(specFile(), (spec) => {
      const schemas = (spec.components as { schemas: Record<string, Record<string, unknown>> }).schemas;
      schemas.UpgradeV2Data = { type: 'object', properties: { UUID: { $ref: '#/components/schemas/Uuid' } } };
    });
    const report = validateSpec({ specPath: specFile() });
    expect(report.ok).toBe(false);
    expect(failed(report)).toContainEqual(
      expect.stringMatching(/\$refs resolve: .*#\/components\/schemas\/Uuid/),
    );
  });

  it('fails on a fixture that does not match its schema', () => {
    edit(join(copy, 'fixtures', 'query-progress.running.json'), (fixture) => {
      (fixture.Data as Record<string, unknown>[])[0] = {
        HostNumber: '1001',
        Status: 'UPGRADING',
        Progress: 45,
      };
    });
    const report = validateSpec({ specPath: specFile() });
    expect(failed(report)).toEqual([
      'fixture query-progress.running.json: does not match QueryUpdateHostProgressBarResponse: Data/0/Status must be integer',
    ]);
  });

  it('fails on a document that is not OpenAPI 3.1', () => {
    edit(specFile(), (spec) => {
      spec.openapi = '3.0.3';
      delete spec.info;
    });
    expect(failed(validateSpec({ specPath: specFile() }))).toEqual([
      'openapi 3.1 top level: openapi must be "3.1.x", is "3.0.3"; info is missing',
    ]);
  });
});
