import { describe, expect, it } from 'vitest';
import { createProgressReporter, type ProgressUpdate } from '../src/index.js';

describe('createProgressReporter', () => {
  it('sends on stage change and every 5 points, not on every tick', async () => {
    const sent: string[] = [];
    const reporter = createProgressReporter((u: ProgressUpdate) => {
      sent.push(`${u.stage}:${u.progress}`);
    });
    // Updates arrive over time (stream chunks), so each one finds the sink idle.
    const offer = async (stage: string, progress: number) => {
      reporter.report({ stage, progress, message: '' });
      await reporter.flush();
    };
    for (let p = 0; p <= 12; p++) await offer('downloading', p);
    await offer('verifying', 12);
    await offer('verifying', 100);
    expect(sent).toEqual([
      'downloading:0',
      'downloading:5',
      'downloading:10',
      'verifying:12',
      'verifying:100',
    ]);
    expect(reporter.stats).toEqual({ offered: 15, sent: 5, failed: 0 });
    expect(reporter.latest).toMatchObject({ stage: 'verifying', progress: 100 });
  });

  it('always sends an error, and 100 %, even within the step', async () => {
    const sent: ProgressUpdate[] = [];
    const reporter = createProgressReporter((u) => {
      sent.push(u);
    });
    reporter.report({ stage: 'downloading', progress: 98, message: '' });
    await reporter.flush();
    reporter.report({
      stage: 'downloading',
      progress: 99,
      message: 'md5',
      error: { code: 'MD5_MISMATCH', message: 'x' },
    });
    await reporter.flush();
    reporter.report({ stage: 'downloading', progress: 100, message: '' });
    await reporter.flush();
    expect(sent.map((u) => u.progress)).toEqual([98, 99, 100]);
  });

  it('swallows and counts a reporter that throws or rejects, and the work goes on', async () => {
    const errors: unknown[] = [];
    let n = 0;
    const reporter = createProgressReporter(
      () => {
        n++;
        if (n === 1) throw new Error('device API down');
        return Promise.reject(new Error('timeout'));
      },
      { onError: (e) => errors.push(e) },
    );
    expect(() => reporter.report({ stage: 'a', progress: 0, message: '' })).not.toThrow();
    expect(() => reporter.report({ stage: 'b', progress: 0, message: '' })).not.toThrow();
    await reporter.flush();
    expect(reporter.stats).toEqual({ offered: 2, sent: 0, failed: 2 });
    expect(errors.map((e) => (e as Error).message)).toEqual(['device API down', 'timeout']);
  });

  it('does not wait for a slow reporter, keeps order, and collapses the backlog of one stage', async () => {
    const sent: string[] = [];
    const releases: (() => void)[] = [];
    const reporter = createProgressReporter(
      (u: ProgressUpdate) =>
        new Promise<void>((resolve) => {
          sent.push(`${u.stage}:${u.progress}`);
          releases.push(resolve);
        }),
    );
    reporter.report({ stage: 'downloading', progress: 0, message: '' });
    for (let p = 5; p <= 50; p += 5) reporter.report({ stage: 'downloading', progress: p, message: '' });
    reporter.report({ stage: 'verifying', progress: 50, message: '' });
    expect(reporter.stats.sent).toBe(0);
    while (releases.length > 0 || sent.length < 3) {
      await new Promise((r) => setImmediate(r));
      releases.shift()?.();
    }
    await reporter.flush();
    expect(sent).toEqual(['downloading:0', 'downloading:50', 'verifying:50']);
    expect(reporter.stats).toMatchObject({ offered: 12, sent: 3, failed: 0 });
  });

  it('clamps progress into 0..100', () => {
    const reporter = createProgressReporter(() => undefined);
    reporter.report({ stage: 'a', progress: 130, message: '' });
    expect(reporter.latest?.progress).toBe(100);
    reporter.report({ stage: 'a', progress: Number.NaN, message: '' });
    expect(reporter.latest?.progress).toBe(0);
  });
});
