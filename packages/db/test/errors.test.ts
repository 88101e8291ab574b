import { UpgradeError } from '@upgrade/core';
import { DrizzleQueryError } from 'drizzle-orm';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { mapPgError, translatePgErrors } from '../src/index.js';

// Errors the drivers raise, built with the drivers' own classes and messages. The suites against
// the real servers cover what a server can be made to send; these cover what it cannot on demand.

function serverError(code: string, message = 'server said no'): pg.DatabaseError {
  const error = new pg.DatabaseError(message, message.length, 'error');
  error.code = code;
  error.severity = 'ERROR';
  return error;
}

function systemError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 10.0.0.9:5432`), { code, syscall: 'connect' });
}

describe('mapPgError', () => {
  it.each([
    ['pool connect timeout', new Error('timeout exceeded when trying to connect'), true],
    ['server went away', new Error('Connection terminated unexpectedly'), true],
    ['client connect timeout', new Error('Connection terminated due to connection timeout'), true],
    ['broken client', new Error('Client has encountered a connection error and is not queryable'), true],
    ['reset socket', systemError('ECONNRESET'), true],
    ['unknown host', systemError('ENOTFOUND'), true],
    [
      'every address refused',
      new AggregateError([systemError('ECONNREFUSED'), systemError('ECONNREFUSED')]),
      true,
    ],
    ['admin shutdown', serverError('57P01'), true],
    ['crash shutdown', serverError('57P02'), true],
    ['cannot connect now', serverError('57P03'), true],
    ['connection failure', serverError('08006'), true],
    ['too many connections', serverError('53300'), true],
    ['read-only standby', serverError('25006'), true],
    ['missing database', serverError('3D000'), false],
    ['bad password', serverError('28P01'), false],
    ['closed pool', new Error('Cannot use a pool after calling end on the pool'), false],
  ])('maps %s to UNAVAILABLE', (_name, error, retryable) => {
    const mapped = mapPgError(error);
    expect(mapped).toMatchObject({ code: 'UNAVAILABLE', status: 503, retryable });
    expect(mapped.message).not.toMatch(/10\.0\.0\.9|server said no/);
    expect(mapped.cause).toBe(error);
  });

  it('unwraps drizzle query errors', () => {
    const wrapped = new DrizzleQueryError('update widgets set ...', [], serverError('40001'));
    expect(mapPgError(wrapped)).toMatchObject({
      code: 'CONFLICT',
      retryable: true,
      details: { sqlState: '40001' },
    });
    expect(mapPgError(wrapped).cause).toBe(wrapped);
  });

  it('maps lock_not_available to a retryable CONFLICT and a read timeout to TIMEOUT', () => {
    expect(mapPgError(serverError('55P03'))).toMatchObject({ code: 'CONFLICT', retryable: true });
    expect(mapPgError(new Error('Query read timeout'))).toMatchObject({ code: 'TIMEOUT', status: 504 });
  });

  it('does not take a five-letter system code for a SQLSTATE', () => {
    expect(mapPgError(systemError('EPIPE'))).toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('maps anything else to INTERNAL with a generic message and the cause kept', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'id')");
    const mapped = mapPgError(bug);
    expect(mapped).toMatchObject({ code: 'INTERNAL', status: 500, message: 'database operation failed' });
    expect(mapped.cause).toBe(bug);
    expect(mapPgError(serverError('XX000', 'internal error at /var/lib/x'))).toMatchObject({
      code: 'INTERNAL',
      message: 'database operation failed',
      details: { sqlState: 'XX000' },
    });
    expect(mapPgError('a string')).toMatchObject({ code: 'INTERNAL' });
  });
});

describe('translatePgErrors', () => {
  it('passes results through and maps rejections', async () => {
    await expect(translatePgErrors(() => Promise.resolve(7))).resolves.toBe(7);
    const own = new UpgradeError('NOT_FOUND', 'gone');
    await expect(translatePgErrors(() => Promise.reject(own))).rejects.toBe(own);
    await expect(translatePgErrors(() => Promise.reject(serverError('23505')))).rejects.toMatchObject({
      code: 'CONFLICT',
    });
  });
});
