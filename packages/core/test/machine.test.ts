import { describe, expect, it } from 'vitest';
import { FakeClock, defineMachine, isUpgradeError, type Transition } from '../src/index.js';

const ota = defineMachine({
  states: ['idle', 'downloading', 'downloaded', 'deploying', 'success', 'failed'],
  transitions: {
    idle: ['downloading'],
    downloading: ['downloaded', 'failed', 'idle'],
    downloaded: ['deploying', 'idle'],
    deploying: ['success', 'failed'],
    failed: ['idle'],
  },
});

describe('defineMachine', () => {
  it('records each legal move with time and reason, and tells listeners', () => {
    const clock = new FakeClock(1_000);
    const m = ota.create('idle', { clock });
    const seen: Transition<string>[] = [];
    m.onTransition((t) => seen.push(t));

    m.transition('downloading', 'download requested');
    expect(m.state).toBe('downloading');
    expect(m.history).toEqual([{ from: 'idle', to: 'downloading', at: 1_000, reason: 'download requested' }]);
    expect(seen).toEqual(m.history);
  });

  it('refuses an illegal move with ILLEGAL_TRANSITION and changes nothing', () => {
    const m = ota.create('idle');
    const listened: unknown[] = [];
    m.onTransition((t) => listened.push(t));

    let caught: unknown;
    try {
      m.transition('success', 'skipping ahead');
    } catch (error) {
      caught = error;
    }
    expect(isUpgradeError(caught, 'ILLEGAL_TRANSITION')).toBe(true);
    expect((caught as Error).message).toBe(
      'cannot move from idle to success; allowed from idle: downloading',
    );
    expect(m.state).toBe('idle');
    expect(m.history).toHaveLength(0);
    expect(listened).toHaveLength(0);
  });

  it('names a final state as having no way out', () => {
    const m = ota.create('success');
    expect(m.isFinal()).toBe(true);
    expect(() => m.transition('idle', 'again')).toThrow('allowed from success: none (final state)');
  });

  it('keeps the state change when a listener throws', () => {
    const m = ota.create('idle');
    const after: string[] = [];
    m.onTransition(() => {
      throw new Error('observer broke');
    });
    m.onTransition((t) => after.push(t.to));
    m.transition('downloading', 'go');
    expect(m.state).toBe('downloading');
    expect(after).toEqual(['downloading']);
  });

  it('resumes from a persisted state and history', () => {
    const history = [{ from: 'idle' as const, to: 'downloading' as const, at: 5, reason: 'before restart' }];
    const m = ota.create('downloading', { history });
    m.transition('downloaded', 'verified');
    expect(m.history.map((t) => t.to)).toEqual(['downloading', 'downloaded']);
  });

  it('rejects a table naming unknown states at definition time', () => {
    expect(() => defineMachine({ states: ['a', 'b'], transitions: { a: ['c' as 'b'] } })).toThrow(
      'unknown state c',
    );
  });

  it('unsubscribes listeners', () => {
    const m = ota.create('idle');
    const seen: string[] = [];
    const off = m.onTransition((t) => seen.push(t.to));
    off();
    m.transition('downloading', 'go');
    expect(seen).toEqual([]);
  });
});
