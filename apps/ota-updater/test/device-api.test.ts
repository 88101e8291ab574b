// The device API progress sink against the device API simulator over real loopback HTTP.
import { afterEach, describe, expect, it } from 'vitest';
import { UpgradeError, createProgressReporter } from '@upgrade/core';
import {
  createDeviceApiReporter,
  type DeviceApiReporter,
  type DeviceApiReporterOptions,
} from '../src/adapters/device-api.js';
import type { OtaStage } from '../src/ports.js';
import { startDeviceApiSimulator, type DeviceApiSimulator } from './simulators/device-api.js';

let sim: DeviceApiSimulator | undefined;
const reporters: DeviceApiReporter[] = [];

afterEach(async () => {
  await Promise.all(reporters.splice(0).map((r) => r.close()));
  await sim?.close();
  sim = undefined;
});

function reporterFor(options: DeviceApiReporterOptions): DeviceApiReporter {
  const reporter = createDeviceApiReporter(options);
  reporters.push(reporter);
  return reporter;
}

async function errorOf(promise: Promise<unknown>): Promise<UpgradeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof UpgradeError)) throw new Error(`expected an UpgradeError, got ${String(error)}`);
  return error;
}

const update = { stage: 'downloading' as OtaStage, progress: 42.5, message: 'downloading 1.2.0' };

describe('device API reporter', () => {
  it('posts the progress record of seed 004, {stage, progress, message, error, error_code}, as JSON', async () => {
    sim = await startDeviceApiSimulator();
    const report = reporterFor({ url: sim.url });

    await report(update);
    await report({
      stage: 'failed',
      progress: 42.5,
      message: 'download failed',
      error: { code: 'MD5_MISMATCH', message: 'md5 differs' },
    });

    // progress an integer percent, error the message for people, error_code its stable name.
    expect(sim.accepted).toEqual([
      { stage: 'downloading', progress: 42, message: 'downloading 1.2.0', error: null, error_code: null },
      {
        stage: 'failed',
        progress: 42,
        message: 'download failed',
        error: 'md5 differs',
        error_code: 'MD5_MISMATCH',
      },
    ]);
    expect(sim.requests[0]?.headers['content-type']).toBe('application/json');
  });

  it('rejects a non-2xx answer with UNAVAILABLE', async () => {
    sim = await startDeviceApiSimulator({ mode: 'error' });
    const error = await errorOf(reporterFor({ url: sim.url })(update));
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.message).toContain('HTTP 500');
  });

  it('rejects within its timeout when the device API never answers', async () => {
    sim = await startDeviceApiSimulator({ mode: 'hang' });
    const started = Date.now();

    const error = await errorOf(reporterFor({ url: sim.url, timeoutMs: 200 })(update));

    expect(error.code).toBe('TIMEOUT');
    expect(error.message).toContain('200 ms');
    // Bounded by its own deadline, not undici's 5-minute defaults.
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('rejects with UNREACHABLE when the device API is down or resets', async () => {
    sim = await startDeviceApiSimulator({ mode: 'reset' });
    const reset = await errorOf(reporterFor({ url: sim.url })(update));
    expect(reset.code).toBe('UNREACHABLE');

    await sim.close();
    const down = await errorOf(reporterFor({ url: sim.url })(update));
    expect(down.code).toBe('UNREACHABLE');
    expect(down.message).toContain('ECONNREFUSED');
  });

  it("lets core's reporter count failures without blocking, and logs only the change of state", async () => {
    sim = await startDeviceApiSimulator({ mode: 'hang' });
    const logged: string[] = [];
    const logger = {
      warn: (_: unknown, msg: string) => logged.push(`warn ${msg}`),
      info: (_: unknown, msg: string) => logged.push(`info ${msg}`),
    };
    const reporter = createProgressReporter(reporterFor({ url: sim.url, timeoutMs: 100, logger }));

    // report() returns at once even though the device API hangs.
    reporter.report({ ...update, progress: 0 });
    reporter.report({ ...update, progress: 10 });
    await reporter.flush();
    sim.setMode('ok');
    reporter.report({ ...update, stage: 'verifying', progress: 100 });
    await reporter.flush();

    expect(reporter.stats).toEqual({ offered: 3, sent: 1, failed: 2 });
    expect(sim.accepted.map((p) => p.stage)).toEqual(['verifying']);
    expect(logged).toEqual([
      'warn device API progress report failed; further failures are counted, not logged',
      'info device API accepts progress reports again',
    ]);
  });

  it('refuses a URL that is not http(s)', () => {
    expect(() => createDeviceApiReporter({ url: 'ftp://printer/progress' })).toThrow(/http\(s\)/);
  });
});
