import { describe, expect, it } from 'vitest';
import { FakeClock, isUpgradeError, poll, pollUntil, withTimeout } from '../src/index.js';

/** A probe whose answers are scripted by time: value(t) for the fake time of the call. */
function timedProbe<T>(clock: FakeClock, value: (t: number) => T) {
  const calls: number[] = [];
  return {
    calls,
    probe: () => {
      calls.push(clock.now());
      return Promise.resolve(value(clock.now()));
    },
  };
}

describe('poll', () => {
  it('waits the initial delay, then probes every interval until done', async () => {
    const clock = new FakeClock(0);
    const p = timedProbe(clock, (t) => t >= 105_000);
    const result = poll({
      ...p,
      done: Boolean,
      initialDelay: 45_000,
      interval: 30_000,
      timeout: 300_000,
      clock,
    });
    await clock.runAll();
    expect(await result).toMatchObject({
      status: 'done',
      observation: true,
      attempts: 3,
      elapsedMs: 105_000,
    });
    expect(p.calls).toEqual([45_000, 75_000, 105_000]);
  });

  it('still makes the probe due exactly at the deadline and accepts its answer', async () => {
    const clock = new FakeClock(0);
    const p = timedProbe(clock, (t) => t >= 90);
    const result = poll({ ...p, done: Boolean, interval: 30, timeout: 90, clock });
    await clock.runAll();
    expect(await result).toMatchObject({ status: 'done', attempts: 4, elapsedMs: 90 });
    expect(p.calls).toEqual([0, 30, 60, 90]);
  });

  it('times out after the probe at the deadline when it is not done, keeping the last observation', async () => {
    const clock = new FakeClock(0);
    const p = timedProbe(clock, (t) => ({ at: t, finished: t > 90 }));
    const result = poll({ ...p, done: (o) => o.finished, interval: 30, timeout: 90, clock });
    await clock.runAll();
    expect(await result).toEqual({
      status: 'timeout',
      observation: { at: 90, finished: false },
      attempts: 4,
      elapsedMs: 90,
    });
  });

  it('shortens the last wait so a timeout that is not a multiple of the interval is honoured', async () => {
    const clock = new FakeClock(0);
    const p = timedProbe(clock, () => false);
    const result = poll({ ...p, done: Boolean, interval: 30, timeout: 70, clock });
    await clock.runAll();
    expect((await result).elapsedMs).toBe(70);
    expect(p.calls).toEqual([0, 30, 60, 70]);
  });

  it('rejects with ABORTED when aborted during a sleep between probes', async () => {
    const clock = new FakeClock(0);
    const controller = new AbortController();
    const p = timedProbe(clock, () => false);
    const result = poll({
      ...p,
      done: Boolean,
      interval: 30,
      timeout: 300,
      clock,
      signal: controller.signal,
    });
    await clock.advance(45);
    controller.abort(new Error('cancelled by operator'));
    await expect(result).rejects.toSatisfy((e: unknown) => isUpgradeError(e, 'ABORTED'));
    expect(p.calls).toEqual([0, 30]);
  });

  it('ends on a probe error unless told to retry it', async () => {
    const clock = new FakeClock(0);
    let n = 0;
    const flaky = () => {
      n++;
      return n === 1 ? Promise.reject(new Error('503 from vendor')) : Promise.resolve('done');
    };
    await expect(poll({ probe: flaky, done: () => true, interval: 10, timeout: 100, clock })).rejects.toThrow(
      '503 from vendor',
    );

    n = 0;
    const retried = poll({
      probe: flaky,
      done: () => true,
      interval: 10,
      timeout: 100,
      clock,
      retryProbeErrors: () => true,
    });
    await clock.runAll();
    expect(await retried).toMatchObject({ status: 'done', observation: 'done', attempts: 2 });
  });

  it('pollUntil turns a timeout into a TIMEOUT error naming the goal', async () => {
    const clock = new FakeClock(0);
    const result = pollUntil('VIP on node-b', {
      probe: () => Promise.resolve(false),
      done: Boolean,
      interval: 10,
      timeout: 30,
      clock,
    });
    const settled = expect(result).rejects.toThrow('VIP on node-b not reached within 30 ms (4 checks)');
    await clock.runAll();
    await settled;
  });
});

describe('withTimeout', () => {
  it('rejects with TIMEOUT and aborts the work even when the work ignores its signal', async () => {
    const clock = new FakeClock(0);
    let signalled: AbortSignal | undefined;
    const hang = withTimeout(
      'node backup',
      1_000,
      (signal) => {
        signalled = signal;
        return new Promise<never>(() => undefined);
      },
      { clock },
    );
    const settled = expect(hang).rejects.toSatisfy(
      (e: unknown) =>
        isUpgradeError(e, 'TIMEOUT') && e.message === 'node backup did not finish within 1000 ms',
    );
    await clock.advance(1_000);
    await settled;
    expect(signalled?.aborted).toBe(true);
  });

  it('returns the result when the work finishes in time and leaves no timer behind', async () => {
    const clock = new FakeClock(0);
    expect(await withTimeout('quick', 1_000, () => Promise.resolve(42), { clock })).toBe(42);
    expect(clock.pending).toBe(0);
  });
});
