// The API on PostgreSQL with a scripted flow: authentication, the trigger's package checks, cancel,
// rollback, history and logs paging, the request log. The real flow runs in api-flow.test.ts.
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { UpgradeError, systemClock } from '@upgrade/core';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { useTestDatabase, waitFor } from '@upgrade/testkit';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createPgApiRequestLog,
  createPgAuditTrail,
  createPgTaskStore,
  createPgUpgradeConfigStore,
} from '../src/adapters/pg-store.js';
import * as schema from '../src/db/schema.js';
import { MAX_LOGGED_BODY_BYTES, REDACTED, loggableBody } from '../src/http/request-log.js';
import { migrationsFolder } from '../src/paths.js';
import type { UpgradeTask } from '../src/ports.js';
import {
  AUTH,
  buildPackage,
  buildTestApp,
  healthOnlyNode,
  multipart,
  patchBytes,
  scriptedRun,
  sha256,
  signPackage,
  signingKeys,
  triggerBody,
  type NodeAnswer,
  type TestApp,
  type TestAppOptions,
} from './helpers.js';

const testDb = useTestDatabase();
let handle: DatabaseHandle<typeof schema>;
const keys = signingKeys();

beforeAll(async () => {
  handle = await openDatabase({ url: testDb.url, schema });
  await migrate(handle, migrationsFolder);
});
afterAll(async () => {
  await handle?.close();
});

let release: () => void = () => undefined;
let gate: Promise<void>;
let t: TestApp;

async function start(over: Partial<TestAppOptions> = {}): Promise<TestApp> {
  t = await buildTestApp({
    tasks: createPgTaskStore(handle.db),
    audit: createPgAuditTrail(handle.db),
    configStore: createPgUpgradeConfigStore(handle.db),
    requestLog: createPgApiRequestLog(handle.db),
    database: handle.healthCheck('database'),
    run: scriptedRun(() => gate),
    keys: [keys.publicKey],
    ...over,
  });
  return t;
}

beforeEach(async () => {
  await handle.execute(
    'TRUNCATE upgrade_history, upgrade_progress, backup_record, api_request_log, upgrade_task CASCADE',
  );
  gate = new Promise((resolve) => (release = resolve));
});
afterEach(async () => {
  release();
  await t?.close();
});

async function trigger(zip: Buffer, signature = signPackage(zip, keys.privateKey)) {
  const body = triggerBody(zip, signature);
  return t.app.inject({
    method: 'POST',
    url: '/api/v1/upgrade/trigger',
    payload: body.payload,
    headers: { ...body.headers, ...AUTH },
  });
}

const get = (url: string, headers: Record<string, string> = AUTH) =>
  t.app.inject({ method: 'GET', url, headers });

async function waitForState(id: string, state: UpgradeTask['state']): Promise<void> {
  await waitFor(
    async () => (await get(`/api/v1/upgrade/progress/${id}`)).json<{ state: string }>().state === state,
    {
      timeoutMs: 10_000,
      what: `task ${id} in ${state}`,
    },
  );
}

describe('authentication and allow-list', () => {
  it('answers 401 without a token and with a wrong one, in the error envelope', async () => {
    await start();
    const none = await get('/api/v1/upgrade/history', {});
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({
      error: { code: 'UNAUTHORIZED', requestId: expect.any(String) as unknown },
    });
    const wrong = await get('/api/v1/upgrade/history', { authorization: 'Bearer not-the-token-at-all' });
    expect(wrong.statusCode).toBe(401);
    const basic = await get('/api/v1/upgrade/history', { authorization: 'Basic b3BzOnB3' });
    expect(basic.statusCode).toBe(401);
    expect((await get('/api/v1/upgrade/history')).statusCode).toBe(200);
  });

  it('answers 403 to an address outside the allow-list, even with a valid token', async () => {
    await start({ allowedIps: ['10.20.0.0/16'] });
    const res = await get('/api/v1/upgrade/history');
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ error: { code: 'FORBIDDEN' } });
    const fromLan = await t.app.inject({
      method: 'GET',
      url: '/api/v1/upgrade/history',
      headers: AUTH,
      remoteAddress: '10.20.3.4',
    });
    expect(fromLan.statusCode).toBe(200);
    const metrics = await t.app.inject({ method: 'GET', url: '/metrics', headers: AUTH });
    expect(metrics.statusCode).toBe(403);
  });

  it('serves /docs to allowed addresses without a token, and to no one else', async () => {
    await start({ allowedIps: ['10.20.0.0/16'] });
    const inside = await t.app.inject({ method: 'GET', url: '/docs/json', remoteAddress: '10.20.0.5' });
    expect(inside.statusCode).toBe(200);
    expect(inside.json()).toMatchObject({ openapi: '3.1.0' });
    expect((await t.app.inject({ method: 'GET', url: '/docs/json' })).statusCode).toBe(403);
  });

  it('keeps /health open to everyone', async () => {
    await start({ allowedIps: ['10.20.0.0/16'] });
    const res = await get('/health', {});
    expect(res.statusCode).toBe(200);
    const body = res.json<{
      status: string;
      timestamp: string;
      checks: { name: string; status: string; durationMs: number; detail: string }[];
    }>();
    expect(body.status).toBe('ok');
    expect(body.checks.map((c) => c.name)).toEqual([
      'database',
      'node:node-a',
      'node:node-b',
      'versions',
      'rsync',
      'replication',
      'vip',
      'upgrade_task',
    ]);
    for (const c of body.checks) expect(c.durationMs).toBeGreaterThanOrEqual(0);
    expect(body.checks[1]?.detail).toContain('version 2.3.0');
  });

  it('records every API request, rejected ones included, with the caller', async () => {
    await start();
    await get('/api/v1/upgrade/history', {});
    await get('/api/v1/upgrade/history?page=2');
    await get('/health', {});
    await waitFor(async () => (await handle.execute('SELECT 1 FROM api_request_log')).length === 2);
    const rows = await handle.execute(
      'SELECT method, route, path, status, caller, client_ip FROM api_request_log ORDER BY id',
    );
    expect(rows).toEqual([
      {
        method: 'GET',
        route: '/api/v1/upgrade/history',
        path: '/api/v1/upgrade/history',
        status: 401,
        caller: null,
        client_ip: '127.0.0.1',
      },
      {
        method: 'GET',
        route: '/api/v1/upgrade/history',
        path: '/api/v1/upgrade/history',
        status: 200,
        caller: 'ops',
        client_ip: '127.0.0.1',
      },
    ]);
  });
});

describe('api_request_log: bodies', () => {
  it('keeps an upload as its size and SHA-256, the answer as sent, and redacts secrets', async () => {
    await start();
    const zip = await buildPackage({ version: '2.4.0' });
    const res = await trigger(zip);
    expect(res.statusCode).toBe(201);
    const id = res.json<{ task_id: string }>().task_id;
    // A body the route refuses is kept too, never with a secret in it.
    const refused = await t.app.inject({
      method: 'POST',
      url: `/api/v1/upgrade/cancel/${id}`,
      headers: AUTH,
      payload: { api_token: 'tok-0123456789', nested: { privateKey: 'k' } },
    });
    expect(refused.statusCode).toBe(400);
    await waitFor(async () => (await handle.execute('SELECT 1 FROM api_request_log')).length === 2);
    // Each row is written once its answer is sent, in the background: the two may land in either order.
    const rows = await handle.execute<{ route: string; request_body: unknown; response_body: unknown }>(
      "SELECT route, request_body, response_body FROM api_request_log ORDER BY route <> '/api/v1/upgrade/trigger'",
    );
    expect(rows[0]).toEqual({
      route: '/api/v1/upgrade/trigger',
      request_body: {
        package: { size_bytes: zip.length, sha256: sha256(zip) },
        signature: signPackage(zip, keys.privateKey),
      },
      response_body: res.json<unknown>(),
    });
    expect(rows[1]).toMatchObject({
      route: '/api/v1/upgrade/cancel/:id',
      request_body: expect.any(Object) as unknown,
      response_body: { error: { code: 'VALIDATION_FAILED' } },
    });
    expect(JSON.stringify(rows)).not.toContain('tok-0123456789');
  });

  it('redacts every field that names a secret and keeps large bodies as size + hash', () => {
    expect(
      loggableBody({
        reason: 'window closed',
        token: 't',
        api_token: 't',
        accessToken: 't',
        Authorization: 'Bearer t',
        password: 'p',
        nested: [{ privateKey: 'k', rootKey: 'k', keys: ['k'], apiKey: 'k', key: 'k', keyboard: 'ok' }],
        package_sha256: 'ab',
      }),
    ).toEqual({
      reason: 'window closed',
      token: REDACTED,
      api_token: REDACTED,
      accessToken: REDACTED,
      Authorization: REDACTED,
      password: REDACTED,
      nested: [
        {
          privateKey: REDACTED,
          rootKey: REDACTED,
          keys: REDACTED,
          apiKey: REDACTED,
          key: REDACTED,
          keyboard: 'ok',
        },
      ],
      package_sha256: 'ab',
    });
    const big = { text: 'x'.repeat(MAX_LOGGED_BODY_BYTES) };
    const text = JSON.stringify(big);
    expect(loggableBody(big)).toEqual({ size_bytes: Buffer.byteLength(text), sha256: sha256(text) });
    expect(loggableBody(Buffer.from('zip bytes'))).toEqual({ size_bytes: 9, sha256: sha256('zip bytes') });
    expect(loggableBody(null)).toBeNull();
  });
});

describe('GET /health', () => {
  type Health = {
    status: string;
    reasons: string[];
    checks: { name: string; status: string; detail: string | null }[];
    nodes: {
      id: string;
      reachable: boolean;
      error: string | null;
      version: string | null;
      app: { healthy: boolean | null };
      keepalived: { role: string | null; priority: number | null; holds_vip: boolean | null };
      database: { role: string | null; streaming: boolean | null; lag_bytes: number | null };
      rsync: { paused: boolean | null };
    }[];
    upgrade: { task_id: string; state: string; stuck: boolean } | null;
  };
  const pair = (a: () => Promise<NodeAnswer>, b: () => Promise<NodeAnswer>) => ({
    nodes: [healthOnlyNode('node-a', a), healthOnlyNode('node-b', b)] as const,
    vip: '10.0.0.100',
  });
  const healthy =
    (version = '2.3.0', over: Partial<NodeAnswer> = {}) =>
    async (): Promise<NodeAnswer> => ({ ok: true, version, ...over });
  const health = async () => {
    const res = await get('/health', {});
    return { code: res.statusCode, body: res.json<Health>() };
  };

  it('gives per node its version, app health, keepalived role and priority, database role and lag, rsync state', async () => {
    await start({ cluster: pair(healthy(), healthy()) });
    const { code, body } = await health();
    expect(code).toBe(200);
    expect(body).toMatchObject({ status: 'ok', reasons: [], upgrade: null });
    expect(body.nodes).toEqual([
      expect.objectContaining({
        id: 'node-a',
        reachable: true,
        error: null,
        version: '2.3.0',
        app: expect.objectContaining({ healthy: true }) as unknown,
        keepalived: { role: 'MASTER', priority: 150, holds_vip: true },
        database: expect.objectContaining({ role: 'primary', streaming: true, lag_bytes: 0 }) as unknown,
        rsync: expect.objectContaining({ paused: false }) as unknown,
      }),
      expect.objectContaining({
        id: 'node-b',
        keepalived: { role: 'BACKUP', priority: 100, holds_vip: false },
        database: expect.objectContaining({ role: 'standby' }) as unknown,
      }),
    ]);
  });

  it('is degraded (200) when a node does not answer and down (503) when the database fails', async () => {
    await start({
      cluster: pair(healthy(), async () => {
        throw new UpgradeError('UNREACHABLE', 'cannot connect to node-b:22');
      }),
    });
    const degraded = await health();
    expect(degraded.code).toBe(200);
    expect(degraded.body.status).toBe('degraded');
    expect(degraded.body.reasons).toEqual(['node:node-b: UNREACHABLE: cannot connect to node-b:22']);
    expect(degraded.body.nodes[1]).toMatchObject({ reachable: false, version: null });
    await t.close();

    await start({
      database: {
        name: 'database',
        check: async () => {
          throw new UpgradeError('UNAVAILABLE', 'database unavailable');
        },
      },
    });
    const down = await get('/health', {});
    expect(down.statusCode).toBe(503);
    expect(down.json()).toMatchObject({ status: 'down' });
  });

  it('answers within its bound when a node is frozen, and says so', async () => {
    await start({
      healthTimeoutMs: 300,
      cluster: pair(healthy(), () => new Promise<NodeAnswer>(() => undefined)),
    });
    const { code, body } = await health();
    expect(code).toBe(200);
    expect(body.status).toBe('degraded');
    expect(body.nodes[1]).toMatchObject({ id: 'node-b', reachable: false, error: 'timeout after 300 ms' });
    expect(body.reasons).toEqual(['node:node-b: timeout after 300 ms']);
  });

  it('is degraded when the nodes run different versions', async () => {
    await start({ cluster: pair(healthy('1.0.0'), healthy('2.0.0')) });
    const { body } = await health();
    expect(body.status).toBe('degraded');
    expect(body.reasons).toEqual(['versions: nodes run different versions: node-a 1.0.0, node-b 2.0.0']);
  });

  it('is degraded when rsync is paused with no upgrade running, and not while one runs', async () => {
    await start({ cluster: pair(healthy('2.3.0', { rsyncPaused: true }), healthy()) });
    const idle = await health();
    expect(idle.body.status).toBe('degraded');
    expect(idle.body.reasons).toEqual([
      'rsync: config sync (rsync) paused on node-a with no upgrade running',
    ]);
    expect(idle.body.nodes[0]?.rsync.paused).toBe(true);

    const res = await trigger(await buildPackage());
    const id = res.json<{ task_id: string }>().task_id;
    await waitForState(id, 'UPGRADE_BACKUP');
    const during = await health();
    expect(during.body).toMatchObject({
      status: 'ok',
      upgrade: { task_id: id, state: 'UPGRADE_BACKUP', stuck: false },
    });
  });

  it('is degraded when replication is not streaming', async () => {
    await start({
      cluster: pair(healthy('2.3.0', { streaming: false }), healthy('2.3.0', { streaming: false })),
    });
    const { body } = await health();
    expect(body.status).toBe('degraded');
    expect(body.reasons).toEqual([
      'replication: replication not streaming: node-a no standby connected; node-b no standby connected',
    ]);
  });

  it('is degraded when a task has recorded nothing for longer than the upgrade timeout', async () => {
    // The clock of the API runs 16 minutes ahead: the task below looks idle for that long.
    await start({
      clock: { now: () => Date.now() + 16 * 60_000, sleep: (ms, signal) => systemClock.sleep(ms, signal) },
    });
    const tasks = createPgTaskStore(handle.db);
    const task = await tasks.create({
      id: crypto.randomUUID(),
      toVersion: '2.4.0',
      packageSha256: 'a'.repeat(64),
      requestedBy: null,
    });
    await tasks.update(task.id, { state: 'UPGRADE_BACKUP', currentStep: 'standby.install' });
    const { body } = await health();
    expect(body.status).toBe('degraded');
    expect(body.upgrade).toMatchObject({ task_id: task.id, stuck: true });
    expect(body.reasons).toEqual([
      `upgrade_task: upgrade task ${task.id} stuck in UPGRADE_BACKUP (step standby.install): nothing recorded for over 900 s`,
    ]);
  });
});

describe('POST /api/v1/upgrade/trigger: package checks', () => {
  const reasonOf = (res: { json: () => unknown }) =>
    (res.json() as { error: { code: string; details?: { reason?: string } } }).error;

  beforeEach(async () => {
    await start();
  });

  it('refuses a request that is not multipart', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/upgrade/trigger',
      headers: AUTH,
      payload: { package: 'x' },
    });
    expect(res.statusCode).toBe(400);
    expect(reasonOf(res)).toMatchObject({ code: 'VALIDATION_FAILED', details: { reason: 'NOT_MULTIPART' } });
  });

  it('refuses a missing package or signature field', async () => {
    const zip = await buildPackage();
    const noSig = multipart([{ name: 'package', value: zip, filename: 'u.zip' }]);
    const res1 = await t.app.inject({
      method: 'POST',
      url: '/api/v1/upgrade/trigger',
      payload: noSig.payload,
      headers: { ...noSig.headers, ...AUTH },
    });
    expect(res1.statusCode).toBe(400);
    expect(reasonOf(res1).details?.reason).toBe('SIGNATURE_MISSING');
    const noPkg = multipart([{ name: 'signature', value: signPackage(zip, keys.privateKey) }]);
    const res2 = await t.app.inject({
      method: 'POST',
      url: '/api/v1/upgrade/trigger',
      payload: noPkg.payload,
      headers: { ...noPkg.headers, ...AUTH },
    });
    expect(res2.statusCode).toBe(400);
    expect(reasonOf(res2).details?.reason).toBe('PACKAGE_MISSING');
  });

  it('refuses a malformed signature (400) and a signature of other bytes or another key (403)', async () => {
    const zip = await buildPackage();
    expect(reasonOf(await trigger(zip, 'not base64!')).details?.reason).toBe('SIGNATURE_MALFORMED');
    const other = await buildPackage({ version: '9.9.9' });
    const wrongBytes = await trigger(zip, signPackage(other, keys.privateKey));
    expect(wrongBytes.statusCode).toBe(403);
    expect(reasonOf(wrongBytes)).toMatchObject({
      code: 'SIGNATURE_INVALID',
      details: { reason: 'SIGNATURE_MISMATCH' },
    });
    const wrongKey = await trigger(zip, signPackage(zip, signingKeys().privateKey));
    expect(wrongKey.statusCode).toBe(403);
  });

  it('refuses a file that is not a ZIP', async () => {
    const res = await trigger(Buffer.from('this is not a zip archive at all'));
    expect(res.statusCode).toBe(400);
    expect(reasonOf(res).details?.reason).toBe('NOT_A_ZIP');
  });

  it('refuses path traversal, absolute names and symbolic links', async () => {
    const traversal = patchBytes(
      await buildPackage({ extra: [{ name: 'zz/evil.sh', content: 'x' }] }),
      'zz/evil',
      '../evil',
    );
    const r1 = await trigger(traversal);
    expect(r1.statusCode).toBe(400);
    expect(reasonOf(r1).details?.reason).toBe('UNSAFE_ENTRY');
    expect(JSON.stringify(r1.json())).toContain('path traversal');

    const absolute = patchBytes(
      await buildPackage({ extra: [{ name: 'zetc/passwd', content: 'x' }] }),
      'zetc/passwd',
      '/etc/passwd',
    );
    expect(reasonOf(await trigger(absolute)).details?.reason).toBe('UNSAFE_ENTRY');

    const link = await buildPackage({ extra: [{ name: 'link', content: '/etc/shadow', mode: 0o120777 }] });
    const r3 = await trigger(link);
    expect(reasonOf(r3).details?.reason).toBe('UNSAFE_ENTRY');
    expect(JSON.stringify(r3.json())).toContain('symbolic link');
  });

  it('refuses a missing or invalid manifest, a missing file and a wrong checksum', async () => {
    expect(reasonOf(await trigger(await buildPackage({ omitManifest: true }))).details?.reason).toBe(
      'MANIFEST_MISSING',
    );
    expect(reasonOf(await trigger(await buildPackage({ manifestText: '{not json' }))).details?.reason).toBe(
      'MANIFEST_INVALID',
    );
    expect(
      reasonOf(await trigger(await buildPackage({ manifest: { jarSha256: 'nope' } }))).details?.reason,
    ).toBe('MANIFEST_INVALID');
    expect(reasonOf(await trigger(await buildPackage({ manifest: { extra: 1 } }))).details?.reason).toBe(
      'MANIFEST_INVALID',
    );
    expect(
      reasonOf(await trigger(await buildPackage({ manifest: { jar: '../app.jar' } }))).details?.reason,
    ).toBe('MANIFEST_INVALID');
    expect(
      reasonOf(await trigger(await buildPackage({ manifest: { jar: 'other.jar' } }))).details?.reason,
    ).toBe('FILE_MISSING');
    const bad = await trigger(await buildPackage({ manifest: { jarSha256: '0'.repeat(64) } }));
    expect(bad.statusCode).toBe(400);
    expect(reasonOf(bad)).toMatchObject({
      code: 'CHECKSUM_MISMATCH',
      details: { reason: 'CHECKSUM_MISMATCH' },
    });
  });

  it('refuses a package whose minFromVersion is newer than a node', async () => {
    const res = await trigger(await buildPackage({ manifest: { minFromVersion: '2.3.5' } }));
    expect(res.statusCode).toBe(400);
    expect(reasonOf(res).details?.reason).toBe('VERSION_TOO_OLD');
  });

  it('answers 413 to an upload over the size limit', async () => {
    await t.close();
    await start({ maxPackageBytes: 2048 });
    const res = await trigger(await buildPackage({ jar: randomBytes(64 * 1024) }));
    expect(res.statusCode).toBe(413);
  });

  it('leaves nothing in the work directory after a refused package', async () => {
    await trigger(await buildPackage({ manifest: { jarSha256: '0'.repeat(64) } }));
    await trigger(Buffer.from('garbage'));
    expect(readdirSync(t.workDir)).toEqual([]);
    expect(await handle.execute('SELECT id FROM upgrade_task')).toEqual([]);
  });
});

describe('a task through the API (scripted flow)', () => {
  beforeEach(async () => {
    await start();
  });

  it('accepts a signed package (201), refuses a second trigger (409), reports progress and logs', async () => {
    const zip = await buildPackage({ version: '2.4.0' });
    const res = await trigger(zip);
    expect(res.statusCode).toBe(201);
    const created = res.json<{ task_id: string; state: string; to_version: string; progress_url: string }>();
    expect(created).toMatchObject({
      to_version: '2.4.0',
      progress_url: `/api/v1/upgrade/progress/${created.task_id}`,
    });
    await waitForState(created.task_id, 'UPGRADE_BACKUP');

    const second = await trigger(await buildPackage({ version: '2.5.0' }));
    expect(second.statusCode).toBe(409);
    expect(second.json()).toMatchObject({
      error: { code: 'CONFLICT', details: { activeTaskId: created.task_id } },
    });

    const running = (await get(`/api/v1/upgrade/progress/${created.task_id}`)).json<
      Record<string, unknown>
    >();
    expect(running).toMatchObject({
      state: 'UPGRADE_BACKUP',
      percent: 40,
      final: false,
      requested_by: 'ops',
      from_version: '2.3.0',
    });
    expect(running.estimated_completion_at).toEqual(expect.any(String));
    expect(running.finished_steps).toEqual([
      expect.objectContaining({ step: 'prepare.rsync_pause', status: 'succeeded' }),
    ]);

    release();
    await waitForState(created.task_id, 'COMPLETE');
    const done = (await get(`/api/v1/upgrade/progress/${created.task_id}`)).json<Record<string, unknown>>();
    expect(done).toMatchObject({
      final: true,
      percent: 100,
      primary_after: 'node-b',
      estimated_completion_at: null,
    });
    await waitFor(() => readdirSync(t.workDir).length === 0, { what: 'the unpacked package removed' });

    const logs = (await get(`/api/v1/upgrade/logs/${created.task_id}?page=1&page_size=2`)).json<{
      items: { at: string; level: string; source: string; message: string }[];
      total: number;
    }>();
    expect(logs.total).toBe(5);
    // Seed 3.7.3: timestamp, level, source, message.
    expect(logs.items[0]).toMatchObject({
      at: expect.any(String) as unknown,
      level: 'INFO',
      source: 'orchestrator',
      message: 'UPGRADE_BACKUP -> COMPLETE',
    });
    expect(logs.items.map((l) => l.message)).toEqual([
      'UPGRADE_BACKUP -> COMPLETE',
      'one health check failed (retried)',
    ]);
    const page3 = (await get(`/api/v1/upgrade/logs/${created.task_id}?page=3&page_size=2`)).json<{
      items: { message: string }[];
    }>();
    expect(page3.items.map((l) => l.message)).toEqual(['IDLE -> PREPARE']);
    const warnings = (await get(`/api/v1/upgrade/logs/${created.task_id}?level=WARNING`)).json<{
      items: { level: string; message: string }[];
      total: number;
    }>();
    expect(warnings).toMatchObject({
      total: 1,
      items: [{ level: 'WARNING', message: 'replication lag 1 MB' }],
    });
    expect((await get(`/api/v1/upgrade/logs/${created.task_id}?level=DEBUG`)).statusCode).toBe(400);

    const cancelDone = await t.app.inject({
      method: 'POST',
      url: `/api/v1/upgrade/cancel/${created.task_id}`,
      headers: AUTH,
      payload: { reason: 'too late' },
    });
    expect(cancelDone.statusCode).toBe(409);
  });

  it('cancels a running task (200 with the task), which ends CANCELLED', async () => {
    const res = await trigger(await buildPackage());
    const id = res.json<{ task_id: string }>().task_id;
    await waitForState(id, 'UPGRADE_BACKUP');
    const cancel = await t.app.inject({
      method: 'POST',
      url: `/api/v1/upgrade/cancel/${id}`,
      headers: AUTH,
      payload: { reason: 'maintenance window closed' },
    });
    expect(cancel.statusCode).toBe(200);
    expect(cancel.json()).toMatchObject({
      task_id: id,
      final: false,
      cancel_reason: 'maintenance window closed',
      cancel_requested_at: expect.any(String) as unknown,
    });
    await waitForState(id, 'CANCELLED');
    const warning = (await get(`/api/v1/upgrade/logs/${id}?level=WARNING`)).json<{
      items: { source: string; message: string }[];
    }>();
    expect(warning.items).toContainEqual(
      expect.objectContaining({
        source: 'api',
        message: 'cancel requested by ops: maintenance window closed',
      }),
    );

    // The request and the answer are both in api_request_log.
    await waitFor(
      async () =>
        (await handle.execute("SELECT 1 FROM api_request_log WHERE route LIKE '%cancel%'")).length === 1,
    );
    const [row] = await handle.execute<{ status: number; request_body: unknown; response_body: unknown }>(
      "SELECT status, request_body, response_body FROM api_request_log WHERE route LIKE '%cancel%'",
    );
    expect(row).toMatchObject({
      status: 200,
      request_body: { reason: 'maintenance window closed' },
      response_body: { task_id: id, cancel_reason: 'maintenance window closed' },
    });
  });

  it('answers 404 for unknown tasks and 400 for ids that are not uuids', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect((await get(`/api/v1/upgrade/progress/${unknown}`)).statusCode).toBe(404);
    expect((await get(`/api/v1/upgrade/logs/${unknown}`)).statusCode).toBe(404);
    expect((await get('/api/v1/upgrade/progress/123')).statusCode).toBe(400);
    const cancel = await t.app.inject({
      method: 'POST',
      url: `/api/v1/upgrade/cancel/${unknown}`,
      headers: AUTH,
      payload: { reason: 'x' },
    });
    expect(cancel.statusCode).toBe(404);
    const noReason = await t.app.inject({
      method: 'POST',
      url: `/api/v1/upgrade/cancel/${unknown}`,
      headers: AUTH,
      payload: {},
    });
    expect(noReason.statusCode).toBe(400);
  });

  it('pages the history newest first with defaults 1 and 20 and a maximum of 100', async () => {
    const tasks = createPgTaskStore(handle.db);
    const ids: string[] = [];
    for (let i = 0; i < 23; i++) {
      const task = await tasks.create({
        id: crypto.randomUUID(),
        toVersion: `2.${i}.0`,
        packageSha256: 'a'.repeat(64),
        requestedBy: null,
      });
      await tasks.update(task.id, { state: 'COMPLETE' });
      ids.push(task.id);
    }
    const first = (await get('/api/v1/upgrade/history')).json<{
      items: { task_id: string }[];
      page: number;
      page_size: number;
      total: number;
    }>();
    expect(first).toMatchObject({ page: 1, page_size: 20, total: 23 });
    expect(first.items).toHaveLength(20);
    expect(first.items[0]?.task_id).toBe(ids[22]);
    const second = (await get('/api/v1/upgrade/history?page=2&page_size=20')).json<{ items: unknown[] }>();
    expect(second.items).toHaveLength(3);
    expect((await get('/api/v1/upgrade/history?page_size=101')).statusCode).toBe(400);
    expect((await get('/api/v1/upgrade/history?page=0')).statusCode).toBe(400);
  });
});

describe('POST /api/v1/upgrade/rollback/{id}', () => {
  it('maps the restore outcome: 200 with the task, 400, 409, 500', async () => {
    const outcomes: (() => never | UpgradeTask)[] = [];
    const asked: (boolean | undefined)[] = [];
    await start({
      restore: async (deps, id, options) => {
        asked.push(options?.restoreDatabase);
        const next = outcomes.shift();
        if (next !== undefined) return next();
        return deps.tasks.update(id, { lastMessage: 'restored from backups' });
      },
    });
    const tasks = createPgTaskStore(handle.db);
    const task = await tasks.create({
      id: crypto.randomUUID(),
      toVersion: '2.4.0',
      packageSha256: 'a'.repeat(64),
      requestedBy: null,
    });
    await tasks.update(task.id, { state: 'FAILED' });
    const url = `/api/v1/upgrade/rollback/${task.id}`;
    const ok = await t.app.inject({ method: 'POST', url, headers: AUTH });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ task_id: task.id, last_message: 'restored from backups' });
    // The rolling rollback unless the database dump is asked for; a malformed flag is a 400.
    const full = await t.app.inject({ method: 'POST', url: `${url}?restore_database=true`, headers: AUTH });
    expect(full.statusCode).toBe(200);
    expect(asked).toEqual([false, true]);
    const bad = await t.app.inject({ method: 'POST', url: `${url}?restore_database=maybe`, headers: AUTH });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
    expect(JSON.stringify(bad.json())).toContain('restore_database');

    outcomes.push(() => {
      throw new UpgradeError('VALIDATION_FAILED', 'task has no verified backup');
    });
    outcomes.push(() => {
      throw new UpgradeError('CONFLICT', 'another task is running');
    });
    outcomes.push(() => {
      throw new UpgradeError('ROLLBACK_FAILED', 'restore of node-b failed: secret detail');
    });
    outcomes.push(() => {
      throw new UpgradeError('NOT_FOUND', 'no such task');
    });
    expect((await t.app.inject({ method: 'POST', url, headers: AUTH })).statusCode).toBe(400);
    expect((await t.app.inject({ method: 'POST', url, headers: AUTH })).statusCode).toBe(409);
    const failed = await t.app.inject({ method: 'POST', url, headers: AUTH });
    expect(failed.statusCode).toBe(500);
    expect(failed.body).not.toContain('secret detail');
    expect((await t.app.inject({ method: 'POST', url, headers: AUTH })).statusCode).toBe(404);
  });
});
