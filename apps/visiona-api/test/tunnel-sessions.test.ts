import { FakeClock } from '@upgrade/testkit';
import { describe, expect, it } from 'vitest';
import { createTunnelSessionStore } from '../src/stores/tunnel-sessions.memory.js';

describe('tunnel sessions', () => {
  it('registers, replaces, counts and unregisters live connections', async () => {
    const clock = new FakeClock();
    const tunnels = createTunnelSessionStore<{ name: string }>(clock);
    const first = { name: 'first' };
    const second = { name: 'second' };
    expect(tunnels.register('dev-1', first)).toBeUndefined();
    expect(tunnels.get('dev-1')).toBe(first);
    expect(tunnels.lastSeenAt('dev-1')).toEqual(new Date(clock.now()));
    await clock.advance(1000);
    expect(tunnels.register('dev-1', second)).toBe(first);
    tunnels.register('dev-2', first);
    expect(tunnels.count()).toBe(2);
    expect(tunnels.latestSeenAt()).toEqual(new Date(clock.now()));
    // The replaced connection closing late must not drop the new one.
    expect(tunnels.unregister('dev-1', first)).toBe(false);
    expect(tunnels.get('dev-1')).toBe(second);
    await clock.advance(1000);
    tunnels.markSeen('dev-1');
    expect(tunnels.unregister('dev-1', second)).toBe(true);
    expect(tunnels.get('dev-1')).toBeUndefined();
    expect(tunnels.count()).toBe(1);
    expect(tunnels.lastSeenAt('dev-1')).toEqual(new Date(clock.now()));
    expect(tunnels.lastSeenAt('dev-3')).toBeUndefined();
    // dev-1 is gone: the latest among those connected is dev-2's.
    expect(tunnels.latestSeenAt()).toEqual(new Date(clock.now() - 1000));
    tunnels.unregister('dev-2', first);
    expect(tunnels.latestSeenAt()).toBeUndefined();
  });
});
