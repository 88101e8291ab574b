import { describe, expect, it } from 'vitest';
import { FakeClock, UpgradeError, healthHttpStatus, runChecks, type HealthCheck } from '../src/index.js';

const ok = (name: string, critical?: boolean): HealthCheck => ({
  name,
  critical,
  check: () => Promise.resolve(),
});
const failing = (name: string, error: Error, critical?: boolean): HealthCheck => ({
  name,
  critical,
  check: () => Promise.reject(error),
});

describe('runChecks', () => {
  it('is ok when every check passes, with 200', async () => {
    const report = await runChecks([ok('database'), ok('vendor')]);
    expect(report.status).toBe('ok');
    expect(report.checks.map((c) => [c.name, c.status])).toEqual([
      ['database', 'ok'],
      ['vendor', 'ok'],
    ]);
    expect(healthHttpStatus(report.status)).toBe(200);
  });

  it('bounds a check that hangs past its timeout, even when it ignores its signal', async () => {
    const clock = new FakeClock(0);
    let aborted = false;
    const hang: HealthCheck = {
      name: 'database',
      check: (signal) => {
        signal.addEventListener('abort', () => (aborted = true));
        return new Promise(() => undefined);
      },
    };
    const pending = runChecks([hang, ok('redis')], { timeout: 2_000, clock });
    await clock.advance(2_000);
    const report = await pending;
    expect(report.status).toBe('down');
    expect(report.checks[0]).toMatchObject({
      name: 'database',
      status: 'down',
      detail: 'timeout after 2000 ms',
      durationMs: 2_000,
    });
    expect(report.checks[1]).toMatchObject({ name: 'redis', status: 'ok' });
    expect(aborted).toBe(true);
    expect(healthHttpStatus(report.status)).toBe(503);
  });

  it('never puts a raw error message in the report, but hands it to onError', async () => {
    const logged: string[] = [];
    const report = await runChecks(
      [failing('database', new Error('password authentication failed for user "admin"'))],
      {
        onError: (name, error) => logged.push(`${name}: ${(error as Error).message}`),
      },
    );
    expect(JSON.stringify(report)).not.toContain('password');
    expect(report.checks[0]?.detail).toBe('failed');
    expect(logged).toEqual(['database: password authentication failed for user "admin"']);
  });

  it('shows our own error codes, which are safe by construction', async () => {
    const report = await runChecks([
      failing('vendor', new UpgradeError('UNREACHABLE', 'vendor API did not answer')),
    ]);
    expect(report.checks[0]?.detail).toBe('UNREACHABLE: vendor API did not answer');
  });

  it('retries a failing check and reports it ok when a retry passes', async () => {
    const clock = new FakeClock(0);
    let calls = 0;
    const flaky: HealthCheck = {
      name: 'node-b',
      check: () => (++calls < 3 ? Promise.reject(new Error('refused')) : Promise.resolve('v2.4.1')),
    };
    const pending = runChecks([flaky], { retries: 2, retryDelay: 10_000, clock });
    await clock.runAll();
    const report = await pending;
    expect(report.checks[0]).toMatchObject({
      status: 'ok',
      attempts: 3,
      detail: 'v2.4.1',
      durationMs: 20_000,
    });
  });

  it('is degraded, still 200, when only non-critical checks fail', async () => {
    const report = await runChecks([ok('database'), failing('metrics-push', new Error('x'), false)]);
    expect(report.status).toBe('degraded');
    expect(healthHttpStatus(report.status)).toBe(200);
  });
});
