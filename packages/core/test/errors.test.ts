import { describe, expect, it } from 'vitest';
import { ERROR_CODES, UpgradeError, httpStatusOf, isUpgradeError, networkErrorCode } from '../src/index.js';

describe('UpgradeError', () => {
  it('carries a stable code, an HTTP hint and retryability', () => {
    const e = new UpgradeError('UNAVAILABLE', 'database is not answering');
    expect(e).toMatchObject({ code: 'UNAVAILABLE', status: 503, retryable: true, name: 'UpgradeError' });
    expect(new UpgradeError('MD5_MISMATCH', 'x')).toMatchObject({ status: 400, retryable: false });
    expect(new UpgradeError('TIMEOUT', 'x', { retryable: false, status: 500 })).toMatchObject({
      status: 500,
      retryable: false,
    });
  });

  it('serialises without the cause, which is for logs only', () => {
    const e = new UpgradeError('CONFLICT', 'serial already paired', {
      details: { field: 'serial' },
      cause: new Error('duplicate key value violates unique constraint "devices_serial_live"'),
    });
    expect(JSON.parse(JSON.stringify(e))).toEqual({
      code: 'CONFLICT',
      message: 'serial already paired',
      details: { field: 'serial' },
    });
  });

  it('maps every code to a status', () => {
    for (const code of ERROR_CODES) expect(httpStatusOf(code)).toBeGreaterThanOrEqual(400);
  });

  it('matches by code', () => {
    const e = new UpgradeError('NOT_FOUND', 'no such task');
    expect(isUpgradeError(e)).toBe(true);
    expect(isUpgradeError(e, 'CONFLICT', 'NOT_FOUND')).toBe(true);
    expect(isUpgradeError(e, 'CONFLICT')).toBe(false);
    expect(isUpgradeError(new Error('x'))).toBe(false);
  });
});

describe('networkErrorCode', () => {
  it('reads the code of a network error, also inside an AggregateError of per-address failures', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(networkErrorCode(refused)).toBe('ECONNREFUSED');
    expect(networkErrorCode(new AggregateError([refused, new Error('other')]))).toBe('ECONNREFUSED');
    expect(networkErrorCode(new Error('plain'))).toBeUndefined();
    expect(networkErrorCode(Object.assign(new Error('x'), { code: 42 }))).toBeUndefined();
    expect(networkErrorCode(null)).toBeUndefined();
    expect(networkErrorCode('ECONNRESET')).toBeUndefined();
  });
});
