// The console's routes on PostgreSQL over a real loopback port, with the scripted flow: the event
// stream (the whole picture first, then the task's changes and its new log lines as they are
// written, the same to every listener) and the package policy the page checks uploads against.
import { createPublicKey, verify } from 'node:crypto';
import { migrate, openDatabase, type DatabaseHandle } from '@upgrade/db';
import { useTestDatabase, waitFor } from '@upgrade/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgApiRequestLog,
  createPgAuditTrail,
  createPgTaskStore,
  createPgUpgradeConfigStore,
} from '../src/adapters/pg-store.js';
import * as schema from '../src/db/schema.js';
import { migrationsFolder } from '../src/paths.js';
import {
  AUTH,
  buildPackage,
  buildTestApp,
  scriptedRun,
  signPackage,
  signingKeys,
  triggerBody,
  type TestApp,
} from './helpers.js';

const testDb = useTestDatabase();
let handle: DatabaseHandle<typeof schema>;
const keys = signingKeys();
let t: TestApp;
let base: string;
let release: () => void = () => undefined;
const streams: AbortController[] = [];

beforeAll(async () => {
  handle = await openDatabase({ url: testDb.url, schema });
  await migrate(handle, migrationsFolder);
  await handle.execute('TRUNCATE upgrade_task, upgrade_config, api_request_log CASCADE');
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  t = await buildTestApp({
    tasks: createPgTaskStore(handle.db),
    audit: createPgAuditTrail(handle.db),
    configStore: createPgUpgradeConfigStore(handle.db),
    requestLog: createPgApiRequestLog(handle.db),
    database: handle.healthCheck('database'),
    run: scriptedRun(() => gate),
    keys: [keys.publicKey],
  });
  base = await t.app.listen({ port: 0, host: '127.0.0.1' });
});
afterEach(() => {
  for (const s of streams.splice(0)) s.abort();
});
afterAll(async () => {
  release();
  await t?.close();
  await handle?.close();
});

interface Event {
  event: string;
  data: Record<string, unknown>;
}

/** An open event stream; `next(name)` resolves with the next event of that name. */
async function openStream(): Promise<{ next(name: string): Promise<Event>; seen: Event[] }> {
  const controller = new AbortController();
  streams.push(controller);
  const response = await fetch(`${base}/api/v1/upgrade/events`, { headers: AUTH, signal: controller.signal });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const seen: Event[] = [];
  let buffer = '';
  // Where each event name was last read up to: waiting for one name skips no event of another.
  const cursors = new Map<string, number>();
  const fill = async (): Promise<void> => {
    const { value, done } = await reader.read();
    if (done) throw new Error('the stream ended');
    buffer += value;
    for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
      const lines = buffer.slice(0, end).split('\n');
      buffer = buffer.slice(end + 2);
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
      const data = lines.find((l) => l.startsWith('data: '))?.slice(6);
      if (event !== undefined && data !== undefined)
        seen.push({ event, data: JSON.parse(data) as Record<string, unknown> });
    }
  };
  return {
    seen,
    async next(name) {
      for (;;) {
        let at = cursors.get(name) ?? 0;
        while (at < seen.length) {
          const event = seen[at++] as Event;
          cursors.set(name, at);
          if (event.event === name) return event;
        }
        await fill();
      }
    },
  };
}

describe('GET /api/v1/upgrade/events', () => {
  it('needs the token like every API route', async () => {
    const response = await fetch(`${base}/api/v1/upgrade/events`);
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
  });

  it('sends the whole picture, then the task and its log lines as they change, to every listener', async () => {
    const first = await openStream();
    const empty = (await first.next('snapshot')).data;
    expect(empty.task).toBeNull();
    expect(empty.logs).toEqual([]);

    const zip = await buildPackage({ version: '2.4.0' });
    const body = triggerBody(zip, signPackage(zip, keys.privateKey));
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/upgrade/trigger',
      payload: body.payload,
      headers: { ...body.headers, ...AUTH },
    });
    expect(res.statusCode, res.body).toBe(201);
    const id = res.json<{ task_id: string }>().task_id;

    // A new task is followed: a snapshot of it, then changes until the run waits at its gate.
    const followed = (await first.next('snapshot')).data as {
      task: { task_id: string; state: string };
      visited: string[];
      logs: { message: string }[];
    };
    expect(followed.task.task_id).toBe(id);
    let last = followed as { task: { state: string }; visited?: string[] };
    while (last.task.state !== 'UPGRADE_BACKUP') last = (await first.next('task')).data as typeof last;
    expect(last.visited).toEqual(['IDLE', 'PREPARE', 'UPGRADE_BACKUP']);

    // Whoever connects now gets the same picture at once, with the pair and the log so far.
    const second = await openStream();
    const snapshot = (await second.next('snapshot')).data as {
      task: { task_id: string; state: string; percent: number };
      visited: string[];
      logs: { message: string; level: string }[];
      log_total: number;
    };
    expect(snapshot.task).toMatchObject({ task_id: id, state: 'UPGRADE_BACKUP', percent: 40 });
    expect(snapshot.visited).toEqual(['IDLE', 'PREPARE', 'UPGRADE_BACKUP']);
    expect(snapshot.logs.map((l) => l.message)).toEqual([
      'IDLE -> PREPARE',
      'replication lag 1 MB',
      'PREPARE -> UPGRADE_BACKUP',
    ]);
    expect(snapshot.log_total).toBe(3);
    const pair = (await second.next('pair')).data as { nodes: { id: string }[] };
    expect(pair.nodes.map((n) => n.id)).toEqual(['node-a', 'node-b']);

    release();
    // Each listener ends up with every line once, in order: those of its snapshot, then those of
    // the `log` events after it (the first listener's snapshot came before the run wrote any).
    for (const [stream, start] of [
      [first, followed.logs],
      [second, snapshot.logs],
    ] as const) {
      const lines = start.map((l) => l.message);
      while (lines.length < 5) {
        const log = (await stream.next('log')).data as { task_id: string; lines: { message: string }[] };
        expect(log.task_id).toBe(id);
        lines.push(...log.lines.map((l) => l.message));
      }
      expect(lines).toEqual([
        'IDLE -> PREPARE',
        'replication lag 1 MB',
        'PREPARE -> UPGRADE_BACKUP',
        'one health check failed (retried)',
        'UPGRADE_BACKUP -> COMPLETE',
      ]);
      let end = (await stream.next('task')).data as {
        task: { state: string; final: boolean };
        visited: string[];
      };
      while (!end.task.final) end = (await stream.next('task')).data as typeof end;
      expect(end.task.state).toBe('COMPLETE');
      expect(end.visited).toEqual(['IDLE', 'PREPARE', 'UPGRADE_BACKUP', 'COMPLETE']);
    }
  });
});

describe('the request log', () => {
  it('records an event stream once it ends, with who listened and how many events were sent', async () => {
    const stream = await openStream();
    await stream.next('snapshot');
    for (const s of streams.splice(0)) s.abort();
    let rows: {
      caller: string | null;
      status: number;
      response_body: { stream: boolean; events: number };
    }[] = [];
    await waitFor(async () => {
      rows = await handle.execute(
        "SELECT caller, status, response_body FROM api_request_log WHERE route = '/api/v1/upgrade/events' AND status = 200",
      );
      return rows.length > 0;
    });
    expect(rows.at(-1)).toMatchObject({ caller: 'ops', status: 200, response_body: { stream: true } });
    expect(rows.at(-1)?.response_body.events).toBeGreaterThanOrEqual(1);
  });
});

describe('GET /api/v1/upgrade/package-policy', () => {
  it("gives the size limit and the signing keys, which verify a release's signature", async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/upgrade/package-policy', headers: AUTH });
    expect(res.statusCode).toBe(200);
    const policy = res.json<{
      max_package_bytes: number;
      signing_keys: { key_id: string; spki: string }[];
    }>();
    expect(policy.max_package_bytes).toBe(10 * 1024 * 1024);
    expect(policy.signing_keys).toHaveLength(1);
    const key = createPublicKey({
      key: Buffer.from(policy.signing_keys[0]?.spki ?? '', 'base64'),
      format: 'der',
      type: 'spki',
    });
    const zip = await buildPackage();
    expect(verify(null, zip, key, Buffer.from(signPackage(zip, keys.privateKey), 'base64'))).toBe(true);
    expect(policy.signing_keys[0]?.key_id).toMatch(/^[0-9a-f]{16}$/);
  });
});
