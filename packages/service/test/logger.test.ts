import { UpgradeError } from '@upgrade/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createService, type ServiceApp } from '../src/index.js';
import { collectLogs } from './helpers.js';

/** What drizzle throws for a failed query: the SQL and every parameter in the message and fields. */
class DrizzleQueryError extends Error {
  constructor(
    readonly query: string,
    readonly params: unknown[],
    cause: Error,
  ) {
    super(`Failed query: ${query}\nparams: ${params.join(',')}`, { cause });
  }
}

describe('service logs', () => {
  let app: ServiceApp | undefined;
  afterEach(async () => {
    await app?.close();
  });

  it('log an error chain without a failed query’s text, parameters or row values, keeping codes and types', async () => {
    const logs = collectLogs();
    app = await createService({ name: 'svc', version: '1', logger: { level: 'info', stream: logs.stream } });
    const driver = Object.assign(new Error('duplicate key value violates unique constraint "users_email"'), {
      code: '23505',
      detail: 'Key (email)=(ada@example.com) already exists.',
    });
    const failed = new DrizzleQueryError(
      'insert into "users" ("email", "password_hash") values ($1, $2)',
      ['ada@example.com', 'scrypt$32768$8$1$salt$key'],
      driver,
    );
    const error = new UpgradeError('CONFLICT', 'unique constraint "users_email" violated', { cause: failed });

    app.log.error(
      { err: error, user: { password: 'hunter2', passwordHash: 'scrypt$x', pairing_code: 'ABCD' } },
      'failed',
    );

    const line = JSON.stringify(logs.lines);
    for (const secret of ['ada@example.com', 'scrypt$', 'hunter2', 'ABCD', 'insert into', 'params']) {
      expect(line).not.toContain(secret);
    }
    const err = logs.lines[0]?.err as Record<string, unknown> & {
      cause: Record<string, unknown> & { cause: Record<string, unknown> };
    };
    expect(err).toMatchObject({
      type: 'UpgradeError',
      code: 'CONFLICT',
      message: 'unique constraint "users_email" violated',
    });
    expect(err.cause).toMatchObject({
      type: 'DrizzleQueryError',
      message: 'query failed (its text and parameters are not logged)',
    });
    expect(err.cause.cause).toMatchObject({ type: 'Error', code: '23505' });
    expect(err.cause.cause).not.toHaveProperty('detail');
  });

  it('write time as epoch milliseconds by default and as an ISO 8601 UTC string when asked', async () => {
    const epoch = collectLogs();
    app = await createService({ name: 'svc', version: '1', logger: { level: 'info', stream: epoch.stream } });
    app.log.info('hello');
    await app.close();
    const iso = collectLogs();
    app = await createService({
      name: 'svc',
      version: '1',
      logger: { level: 'info', stream: iso.stream, time: 'iso' },
    });
    const before = Date.now();
    app.log.info('hello');

    expect(typeof epoch.lines.at(-1)?.time).toBe('number');
    const time = iso.lines.at(-1)?.time;
    expect(time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(String(time))).toBeGreaterThanOrEqual(before - 1);
    expect(iso.lines.at(-1)).toMatchObject({ msg: 'hello', service: 'svc', level: 30 });
  });
});
