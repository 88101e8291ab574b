import { describe, expect, it } from 'vitest';
import { FakeClock, isUpgradeError, systemClock } from '../src/index.js';

describe('FakeClock', () => {
  it('wakes sleepers in due order without real waiting', async () => {
    const clock = new FakeClock(0);
    const woke: string[] = [];
    void clock.sleep(300).then(() => woke.push(`b@${clock.now()}`));
    void clock.sleep(100).then(() => woke.push(`a@${clock.now()}`));
    await clock.advance(250);
    expect(woke).toEqual(['a@100']);
    await clock.advance(50);
    expect(woke).toEqual(['a@100', 'b@300']);
  });

  it('rejects a sleep with ABORTED when its signal aborts mid-sleep', async () => {
    const clock = new FakeClock(0);
    const controller = new AbortController();
    const sleeping = clock.sleep(10_000, controller.signal);
    await clock.advance(5_000);
    controller.abort(new Error('operator cancelled'));
    await expect(sleeping).rejects.toSatisfy(
      (e: unknown) => isUpgradeError(e, 'ABORTED') && /operator cancelled/.test(e.message),
    );
    expect(clock.pending).toBe(0);
  });

  it('lets code that loops on sleep run to completion with runAll', async () => {
    const clock = new FakeClock(0);
    let ticks = 0;
    const loop = (async () => {
      while (ticks < 5) {
        await clock.sleep(1_000);
        ticks++;
      }
    })();
    await clock.runAll();
    await loop;
    expect(ticks).toBe(5);
    expect(clock.now()).toBe(5_000);
  });
});

describe('systemClock', () => {
  it('rejects immediately for an already-aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(systemClock.sleep(60_000, controller.signal)).rejects.toSatisfy((e: unknown) =>
      isUpgradeError(e, 'ABORTED'),
    );
  });

  it('rejects as soon as the signal aborts during the sleep', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const sleeping = systemClock.sleep(60_000, controller.signal);
    setTimeout(() => controller.abort(), 5);
    await expect(sleeping).rejects.toSatisfy((e: unknown) => isUpgradeError(e, 'ABORTED'));
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
