// The node agent as a real process: one JSON request on stdin, one answer line on stdout, against
// temp dirs, the fake systemctl, a SIGHUP-counting stand-in for keepalived and the local PostgreSQL.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { getHealth, useTestDatabase, waitFor } from '@upgrade/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AgentResponse, BackupFile } from '../src/agent/protocol.js';
import { createTestNode, runAgent, type AgentRun, type TestNode } from './support/agent-node.js';

const run = promisify(execFile);
// Every request starts a process; on two busy cores a dozen of them can take a while.
vi.setConfig({ testTimeout: 90_000 });
const testDb = useTestDatabase();
let node: TestNode;

beforeAll(async () => {
  node = await createTestNode(testDb.url);
  await psql(
    'create table items (id int primary key, name text); insert into items values (1, $$one$$), (2, $$two$$);',
  );
});

afterAll(async () => {
  await node?.cleanup();
});

async function psql(sql: string): Promise<string> {
  const { stdout } = await run('psql', [
    testDb.url,
    '-X',
    '-q',
    '-A',
    '-t',
    '-v',
    'ON_ERROR_STOP=1',
    '-c',
    sql,
  ]);
  return stdout.trim();
}

function ok<T = Record<string, unknown>>(runResult: AgentRun): T {
  if (!runResult.response.ok) throw new Error(`expected ok, got ${JSON.stringify(runResult.response)}`);
  expect(runResult.code).toBe(0);
  return runResult.response.result as T;
}

function failed(runResult: AgentRun): Extract<AgentResponse, { ok: false }>['error'] {
  if (runResult.response.ok) throw new Error(`expected an error, got ${JSON.stringify(runResult.response)}`);
  expect(runResult.code).toBe(1);
  return runResult.response.error;
}

const sha256 = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');

describe('config and requests', () => {
  it('answers CONFIG_INVALID with exit code 2 for a missing or invalid config, naming the field', async () => {
    const missing = await runAgent(join(node.root, 'nope.json'), {
      op: 'health',
      args: {},
      timeoutMs: 1000,
      requestId: 'x',
    });
    expect(missing.code).toBe(2);
    expect(missing.response).toMatchObject({ ok: false, error: { code: 'CONFIG_INVALID' } });

    const bad = join(node.root, 'bad.json');
    await writeFile(bad, JSON.stringify({ ...node.config, stagingDir: 'relative/dir', extra: 1 }));
    const invalid = await runAgent(bad, { op: 'health', args: {}, timeoutMs: 1000, requestId: 'x' });
    expect(invalid.code).toBe(2);
    expect(invalid.response.ok ? '' : invalid.response.error.message).toMatch(
      /agent config: (extra: unknown field|stagingDir: must be an absolute path)/,
    );
  });

  it('refuses bad input with VALIDATION_FAILED', async () => {
    expect(failed(await runAgent(node.configPath, 'not json\n'))).toMatchObject({
      code: 'VALIDATION_FAILED',
      message: 'request is not valid JSON',
    });
    const unknownOp = failed(await node.request('shell.exec', { cmd: 'rm -rf /' }));
    expect(unknownOp).toMatchObject({ code: 'VALIDATION_FAILED', message: 'unknown operation "shell.exec"' });
    expect(failed(await node.request('keepalived.set_priority', { priority: 999 })).message).toMatch(
      /priority: must be between 1 and 254/,
    );
    expect(
      failed(await node.request('keepalived.set_priority', { priority: 10, extra: true })).message,
    ).toMatch(/extra: unknown field/);
    expect(failed(await node.request('backup.create', { backupId: 'b1' })).message).toMatch(
      /retention: is required/,
    );
    for (const stagedName of ['../etc/passwd', 'a/b.jar', '.hidden', '-rf', '/abs.jar', ''])
      expect(
        failed(await node.request('jar.install', { stagedName, sha256: 'a'.repeat(64), version: '2.0.0' }))
          .code,
      ).toBe('VALIDATION_FAILED');
    const service = failed(await node.request('service.stop', { service: 'sshd' }));
    expect(service).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(service.message).toMatch(/service "sshd" is not configured on node-a; known: app/);
  });

  it('serves only callers in the allow-list (SSH_CONNECTION) and local calls only when allowed', async () => {
    const from = (ip: string): NodeJS.ProcessEnv => ({ SSH_CONNECTION: `${ip} 50000 127.0.0.1 22` });
    expect(failed(await node.request('rsync.status', {}, { env: from('192.168.7.7') }))).toMatchObject({
      code: 'FORBIDDEN',
      message: 'caller 192.168.7.7 is not in the allow-list of node-a',
    });
    ok(await node.request('rsync.status', {}, { env: from('127.0.0.1') }));
    ok(await node.request('rsync.status', {}, { env: from('10.99.0.10') }));
    ok(await node.request('rsync.status', {}, { env: from('::ffff:10.99.0.10') }));
    const strict = await node.writeConfig({ allowLocal: false });
    expect(failed(await node.request('rsync.status', {}, { config: strict })).code).toBe('FORBIDDEN');
    await node.writeConfig();
  });

  it('kills a hanging command at the deadline and answers TIMEOUT', async () => {
    const pidFile = join(node.root, 'hang.pid');
    const hang = join(node.root, 'hang.sh');
    await writeFile(hang, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 600\n`);
    await chmod(hang, 0o755);
    const hanging = join(node.root, 'hanging.json');
    await node.writeConfig({ systemctl: { command: hang } }).then(() => undefined);
    await writeFile(hanging, await readFile(node.configPath, 'utf8'));
    await node.writeConfig();
    const started = Date.now();
    const error = failed(
      await node.request('service.status', { service: 'app' }, { config: hanging, timeoutMs: 800 }),
    );
    expect(error).toMatchObject({ code: 'TIMEOUT', retryable: true });
    expect(Date.now() - started).toBeLessThan(5_000);
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    await waitFor(async () => !(await alive(pid)), { timeoutMs: 3_000, what: 'hung command killed' });
  });
});

async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

describe('services and rsync on the fake systemctl', () => {
  it('starts, reports and stops a configured service', async () => {
    expect(ok(await node.request('service.start', { service: 'app' }))).toEqual({
      service: 'app',
      active: true,
    });
    expect(ok(await node.request('service.status', { service: 'app' }))).toEqual({
      service: 'app',
      active: true,
      version: '1.0.0',
    });
    expect((await getHealth(node.appPort))?.status).toBe(200);
    expect(ok(await node.request('service.stop', { service: 'app' }))).toEqual({
      service: 'app',
      active: false,
    });
    expect(await getHealth(node.appPort)).toBeNull();
  });

  it('pauses and resumes the config sync and reports its status file', async () => {
    ok(await node.request('rsync.resume'));
    expect(ok(await node.request('rsync.status'))).toEqual({
      paused: false,
      lastSyncAt: null,
      lastResult: null,
    });
    await writeFile(
      node.config.rsync.statusFile,
      JSON.stringify({ lastSyncAt: '2026-11-20T10:00:00Z', lastResult: 'ok' }),
    );
    expect(ok(await node.request('rsync.pause'))).toEqual({ paused: true });
    expect(ok(await node.request('rsync.status'))).toEqual({
      paused: true,
      lastSyncAt: '2026-11-20T10:00:00.000Z',
      lastResult: 'ok',
    });
  });
});

describe('keepalived', () => {
  it('rewrites the priority line atomically and reloads keepalived with SIGHUP', async () => {
    const result = ok(await node.request('keepalived.set_priority', { priority: 150 }));
    expect(result).toEqual({ previous: 100, current: 150 });
    const text = await readFile(node.config.keepalived.configFile, 'utf8');
    expect(text).toContain('    priority 150\n');
    expect(text).toContain('virtual_router_id 51');
    await waitFor(async () => (await readFile(join(node.root, 'reloads'), 'utf8')) === '1', {
      what: 'SIGHUP received',
    });
    expect(ok(await node.request('keepalived.status'))).toEqual({
      state: 'MASTER',
      priority: 150,
      holdsVip: true,
      vip: '127.0.0.1',
    });
  });

  it('is BACKUP when the VIP is not on the interface, STOPPED when keepalived is not running', async () => {
    const backup = await node.writeConfig({ keepalived: { ...node.config.keepalived, vip: '127.0.0.99' } });
    expect(ok(await node.request('keepalived.status', {}, { config: backup }))).toMatchObject({
      state: 'BACKUP',
      holdsVip: false,
    });
    const stopped = await node.writeConfig({
      keepalived: { ...node.config.keepalived, pidFile: join(node.root, 'none.pid') },
    });
    expect(ok(await node.request('keepalived.status', {}, { config: stopped }))).toMatchObject({
      state: 'STOPPED',
    });
    expect(
      failed(await node.request('keepalived.set_priority', { priority: 90 }, { config: stopped })),
    ).toMatchObject({
      code: 'UNAVAILABLE',
    });
    await node.writeConfig();
  });
});

describe('files: config checksums, staging, jar install', () => {
  it('gives per-file SHA-256 and one digest that changes with any file', async () => {
    const first = ok<{ digest: string; files: Record<string, string> }>(
      await node.request('config.checksums'),
    );
    expect(first.files).toEqual({
      'app.properties': sha256('mode=ha\n'),
      'sub/peers.json': sha256('["node-a","node-b"]\n'),
    });
    expect(ok(await node.request('config.checksums'))).toEqual(first);
    await writeFile(join(node.config.configDir, 'sub', 'peers.json'), '["node-a"]\n');
    expect(ok<{ digest: string }>(await node.request('config.checksums')).digest).not.toBe(first.digest);
    await writeFile(join(node.config.configDir, 'sub', 'peers.json'), '["node-a","node-b"]\n');
  });

  it('installs a staged jar only with the right SHA-256, keeping the previous one', async () => {
    const jar = 'jar version 2.0.0';
    await writeFile(join(node.config.stagingDir, 't1-app-2.0.0.jar'), jar);
    const wrong = failed(
      await node.request('jar.install', {
        stagedName: 't1-app-2.0.0.jar',
        sha256: sha256('other'),
        version: '2.0.0',
      }),
    );
    expect(wrong.code).toBe('CHECKSUM_MISMATCH');
    expect(
      failed(
        await node.request('jar.install', {
          stagedName: 'missing.jar',
          sha256: sha256(jar),
          version: '2.0.0',
        }),
      ).code,
    ).toBe('NOT_FOUND');
    expect(await readFile(node.config.jar.path, 'utf8')).toBe('jar version 1.0.0');

    const result = ok(
      await node.request('jar.install', {
        stagedName: 't1-app-2.0.0.jar',
        sha256: sha256(jar).toUpperCase(),
        version: '2.0.0',
      }),
    );
    expect(result).toEqual({ version: '2.0.0', path: node.config.jar.path, previousVersion: '1.0.0' });
    expect(await readFile(node.config.jar.path, 'utf8')).toBe(jar);
    expect(await readFile(`${node.config.jar.path}.previous`, 'utf8')).toBe('jar version 1.0.0');
    expect(await readFile(node.config.jar.versionFile, 'utf8')).toBe('2.0.0\n');
    expect((await readdir(join(node.root, 'opt'))).sort()).toEqual([
      'VERSION',
      'VERSION.previous',
      'app.jar',
      'app.jar.previous',
    ]);
  });

  it('cleans a task’s staged files by prefix', async () => {
    await writeFile(join(node.config.stagingDir, 't9-other.jar'), 'x');
    expect(ok(await node.request('staging.clean', { prefix: 't1-' }))).toEqual({
      removed: ['t1-app-2.0.0.jar'],
    });
    expect(await readdir(node.config.stagingDir)).toEqual(['t9-other.jar']);
  });
});

describe('database: schema, replication, health', () => {
  it('applies a staged SQL script as one transaction: the first error stops it and leaves nothing of it', async () => {
    const good = 'create table audit (id int);\ninsert into audit values (1);\n';
    await writeFile(join(node.config.stagingDir, 's1-001.sql'), good);
    const applied = ok(
      await node.request('schema.apply', { stagedName: 's1-001.sql', sha256: sha256(good) }),
    );
    expect(applied).toMatchObject({ applied: true });
    expect(await psql('select count(*) from audit')).toBe('1');

    const bad =
      'insert into audit values (2);\nselect * from no_such_table;\ninsert into audit values (3);\n';
    await writeFile(join(node.config.stagingDir, 's1-002.sql'), bad);
    const error = failed(
      await node.request('schema.apply', { stagedName: 's1-002.sql', sha256: sha256(bad) }),
    );
    expect(error.code).toBe('DEPLOYMENT_FAILED');
    expect(error.message).toMatch(/no_such_table/);
    expect(await psql("select string_agg(id::text, ',' order by id) from audit")).toBe('1');
    expect(
      failed(await node.request('schema.apply', { stagedName: 'note.txt', sha256: sha256('') })).code,
    ).toBe('VALIDATION_FAILED');
  });

  it('says a primary without standbys is not in sync', async () => {
    expect(ok(await node.request('replication.status'))).toEqual({
      role: 'primary',
      connected: false,
      standbys: 0,
      inSync: false,
      lagBytes: null,
      lagMs: null,
      lsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/) as unknown,
      endpoint: { host: '127.0.0.1', port: expect.any(Number) as unknown },
      detail: 'no standby connected',
    });
  });

  it('reports health of database, ports, keepalived and HTTP', async () => {
    ok(await node.request('service.start', { service: 'app' }));
    const health = ok<Record<string, unknown>>(await node.request('health'));
    expect(health).toMatchObject({
      ok: true,
      version: '1.0.0',
      database: { ok: true, role: 'primary' },
      ports: [{ service: 'app', port: node.appPort, ok: true }],
      keepalived: { ok: true, state: 'MASTER', holdsVip: true },
      http: { ok: true, status: 200 },
    });
    ok(await node.request('service.stop', { service: 'app' }));
    const down = ok<Record<string, unknown>>(await node.request('health'));
    expect(down).toMatchObject({
      ok: false,
      ports: [{ ok: false, detail: 'connection refused' }],
      http: { ok: false, status: null },
    });
  });
});

describe('backups', () => {
  it('backs up jar, config, root key and database, verifies, and restores them', async () => {
    const created = ok<{ backupId: string; dir: string; files: BackupFile[]; removed: string[] }>(
      await node.request('backup.create', { backupId: 'task1-node-a', retention: 1 }),
    );
    expect(created.files.map((f) => f.kind)).toEqual(['jar', 'config', 'root_key', 'database']);
    for (const file of created.files) {
      const content = await readFile(file.path);
      expect(file.sha256).toBe(sha256(content));
      expect(file.md5).toBe(createHash('md5').update(content).digest('hex'));
      expect(file.sizeBytes).toBe(content.length);
    }
    expect(
      ok(await node.request('backup.verify', { backupId: 'task1-node-a', files: created.files.map(strip) })),
    ).toEqual({
      ok: true,
      mismatches: [],
    });

    // Everything changes after the backup...
    const jarBefore = await readFile(node.config.jar.path, 'utf8');
    await writeFile(node.config.jar.path, 'broken jar');
    await writeFile(node.config.jar.versionFile, '9.9.9\n');
    await writeFile(join(node.config.configDir, 'app.properties'), 'mode=broken\n');
    await writeFile(join(node.config.configDir, 'added.conf'), 'new\n');
    await writeFile(node.config.rootKeyPath, 'OTHER KEY\n');
    await psql(
      'delete from items where id = 2; insert into items values (3, $$three$$); create table later (x int);',
    );

    // ...and comes back.
    const restored = ok(
      await node.request('backup.restore', {
        backupId: 'task1-node-a',
        kinds: ['jar', 'config', 'root_key', 'database'],
      }),
    );
    expect(restored).toEqual({ restored: ['jar', 'config', 'root_key', 'database'] });
    expect(await readFile(node.config.jar.path, 'utf8')).toBe(jarBefore);
    expect(await readFile(node.config.jar.versionFile, 'utf8')).toBe('2.0.0\n');
    expect((await readdir(node.config.configDir)).sort()).toEqual(['app.properties', 'sub']);
    expect(await readFile(join(node.config.configDir, 'app.properties'), 'utf8')).toBe('mode=ha\n');
    expect(await readFile(node.config.rootKeyPath, 'utf8')).toBe('PRIVATE KEY 1\n');
    expect(await psql("select string_agg(name, ',' order by id) from items")).toBe('one,two');
    // Objects created after the backup (a schema change's new table) are gone too.
    expect(await psql("select count(*) from pg_tables where tablename = 'later'")).toBe('0');

    // A damaged backup file is reported by verify and refused by restore.
    const jarFile = created.files.find((f) => f.kind === 'jar');
    await writeFile(jarFile?.path ?? '', 'tampered');
    const verify = ok<{ ok: boolean; mismatches: { kind: string; reason: string }[] }>(
      await node.request('backup.verify', { backupId: 'task1-node-a', files: created.files.map(strip) }),
    );
    expect(verify.ok).toBe(false);
    expect(verify.mismatches).toEqual([
      expect.objectContaining({ kind: 'jar', reason: expect.stringMatching(/^md5 is /) as unknown }),
    ]);
    expect(
      failed(await node.request('backup.restore', { backupId: 'task1-node-a', kinds: ['jar'] })).code,
    ).toBe('CHECKSUM_MISMATCH');
    const outside = failed(
      await node.request('backup.verify', {
        backupId: 'task1-node-a',
        files: [{ ...strip(jarFile as BackupFile), path: '/etc/passwd' }],
      }),
    );
    expect(outside.code).toBe('VALIDATION_FAILED');
  });

  it('keeps only the newest N backups and refuses a duplicate id', async () => {
    const second = ok<{ removed: string[] }>(
      await node.request('backup.create', { backupId: 'task2-node-a', retention: 1 }),
    );
    expect(second.removed).toEqual(['task1-node-a']);
    expect(await readdir(node.config.backupDir)).toEqual(['task2-node-a']);
    const third = ok<{ removed: string[] }>(
      await node.request('backup.create', { backupId: 'task3-node-a', retention: 2 }),
    );
    expect(third.removed).toEqual([]);
    expect((await readdir(node.config.backupDir)).sort()).toEqual(['task2-node-a', 'task3-node-a']);
    expect(failed(await node.request('backup.create', { backupId: 'task3-node-a', retention: 2 })).code).toBe(
      'CONFLICT',
    );
    expect(
      failed(await node.request('backup.restore', { backupId: 'task1-node-a', kinds: ['jar'] })).code,
    ).toBe('NOT_FOUND');
  });

  it('restores the database beside the live one and swaps it in: grants and settings kept, a failed restore leaves the live one as it was', async () => {
    const dbname = node.config.database.dbname;
    const suffix = randomBytes(4).toString('hex');
    const reader = `reader_${suffix}`;
    const owner = `owner_${suffix}`;
    const outsider = `outsider_${suffix}`;
    const items = () => psql("select string_agg(name, ',' order by id) from items");
    const sideDatabases = () =>
      psql("select count(*) from pg_database where datname like '%\\_\\_restoring'");
    await psql(
      `create role ${reader} nologin; create role ${owner} nologin; create role ${outsider} nologin`,
    );
    try {
      await psql(
        `revoke connect on database "${dbname}" from public; grant connect on database "${dbname}" to ${reader}; ` +
          `alter database "${dbname}" set statement_timeout = '7s'; ` +
          `alter database "${dbname}" set search_path = "$user", public, "odd, name"; ` +
          `create table owned (x int); alter table owned owner to ${owner}; insert into items values (4, $$four$$);`,
      );
      ok(await node.request('backup.create', { backupId: 'task4-node-a', retention: 5 }));
      await psql('insert into items values (5, $$five$$)');
      expect(
        ok(await node.request('backup.restore', { backupId: 'task4-node-a', kinds: ['database'] })),
      ).toEqual({ restored: ['database'] });
      expect(await items()).toBe('one,two,four');
      expect(await psql(`select tableowner from pg_tables where tablename = 'owned'`)).toBe(owner);
      // What the operator set on the database itself survives its replacement.
      expect(await psql(`select has_database_privilege('${reader}', '${dbname}', 'CONNECT')`)).toBe('t');
      expect(await psql(`select has_database_privilege('${outsider}', '${dbname}', 'CONNECT')`)).toBe('f');
      const settings = await psql(
        `select array_to_string(setconfig, ' | ') from pg_db_role_setting ` +
          `where setdatabase = (select oid from pg_database where datname = '${dbname}') and setrole = 0`,
      );
      expect(settings.split(' | ').sort()).toEqual([
        'search_path="$user", public, "odd, name"',
        'statement_timeout=7s',
      ]);
      expect(await sideDatabases()).toBe('0');

      // A dump that can no longer be restored (its table's owner is gone): the live database stays.
      await psql('insert into items values (6, $$six$$)');
      ok(await node.request('backup.create', { backupId: 'task5-node-a', retention: 5 }));
      await psql(
        `reassign owned by ${owner} to postgres; drop role ${owner}; insert into items values (7, $$seven$$)`,
      );
      const error = failed(
        await node.request('backup.restore', { backupId: 'task5-node-a', kinds: ['database'] }),
      );
      expect(error.code).toBe('ROLLBACK_FAILED');
      expect(error.message).toContain('the live database is unchanged');
      expect(await items()).toBe('one,two,four,six,seven');
      expect(await sideDatabases()).toBe('0');
    } finally {
      await psql(
        `alter database "${dbname}" reset all; grant connect on database "${dbname}" to public; ` +
          `revoke connect on database "${dbname}" from ${reader}; drop table if exists owned; ` +
          `drop role if exists ${reader}; drop role if exists ${owner}; drop role if exists ${outsider}`,
      );
    }
  });
});

function strip(file: BackupFile): Pick<BackupFile, 'kind' | 'path' | 'md5' | 'sha256'> {
  return { kind: file.kind, path: file.path, md5: file.md5, sha256: file.sha256 };
}
