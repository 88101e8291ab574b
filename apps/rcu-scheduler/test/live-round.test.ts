// The console's live view folded from a real round's events: the real vendor adapter against the
// simulator, the memory store, a real spool, time compressed by settings.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VendorApiClient } from '../src/adapters/vendor-api.js';
import { createLiveRounds, type LiveChange } from '../src/live-round.js';
import { runRound, type RoundEvent } from '../src/rounds.js';
import { createMemoryRoundStore } from './fakes/memory-store.js';
import { fastSettings, roundDeps, tempDir, vendorFor } from './helpers.js';
import { startVendorSimulator, type VendorSimulator } from './simulator/vendor-simulator.js';

let sim: VendorSimulator;
let vendor: VendorApiClient;

beforeAll(async () => {
  sim = await startVendorSimulator({ hostDurationMs: 150, startSpreadMs: 20 });
  vendor = vendorFor(sim);
});
afterAll(async () => {
  await vendor.close();
  await sim.close();
});

describe('the live round', () => {
  it('follows every host of a round to its final state and keeps the finished round', async () => {
    sim.failHosts(['rt100-h001'], { message: 'flash write error' });
    const spool = tempDir('rcu-live-');
    const live = createLiveRounds(() => Date.now());
    const changes: LiveChange[] = [];
    live.subscribe((change) => changes.push(structuredClone(change)));
    try {
      const deps = {
        ...roundDeps(vendor, createMemoryRoundStore(), spool.path),
        onEvent: (e: RoundEvent) => live.record(e),
      };
      expect(live.current()).toBeNull();
      const outcome = await runRound(deps, fastSettings(), { trigger: 'manual', slot: null });

      const first = changes[0];
      expect(first?.type === 'round' && first.round).toMatchObject({
        roundId: outcome?.roundId,
        phase: 'running',
        final: 0,
        total: 6,
        trigger: 'manual',
        resumed: false,
      });
      if (first?.type === 'round')
        expect(first.round.groups.flatMap((g) => g.hosts.map((h) => h.status))).toEqual(
          Array.from({ length: 6 }, () => 'pending'),
        );
      // Each group's polls are seen with its hosts; the counts only grow.
      const groupChanges = changes.filter((c) => c.type === 'group');
      expect(groupChanges.some((c) => c.group.uuid !== null && c.final < 6)).toBe(true);
      const finals = groupChanges.map((c) => c.final);
      expect(finals).toEqual([...finals].sort((a, b) => a - b));

      const last = changes.at(-1);
      expect(last?.type).toBe('round');
      const round = live.current();
      expect(round).toMatchObject({
        roundId: outcome?.roundId,
        phase: 'finished',
        final: 6,
        total: 6,
        summary: { total: 6, completed: 5, failed: 1, timeout: 0 },
        stored: true,
      });
      expect(round?.finishedAt).toBeInstanceOf(Date);
      const hosts = new Map(round?.groups.flatMap((g) => g.hosts.map((h) => [h.host, h])));
      expect(hosts.get('rt100-h001')).toMatchObject({ status: 'failed' });
      expect(hosts.get('rt101-h002')).toMatchObject({ status: 'completed', progress: 100 });
      expect(round?.groups.every((g) => g.uuid !== null && sim.upgrades.has(g.uuid))).toBe(true);
    } finally {
      sim.reset();
      spool.remove();
    }
  });

  it('ignores events of another round than the one it shows, and stops telling a listener that left', () => {
    const live = createLiveRounds(() => 0);
    const seen: LiveChange[] = [];
    const leave = live.subscribe((change) => seen.push(change));
    live.record({
      type: 'started',
      roundId: 'r1',
      filename: 'A.bin',
      trigger: 'schedule',
      hosts: 1,
      startedAt: new Date(0),
      groups: [{ roomTypeId: 1, hosts: ['h1'] }],
      resumed: true,
    });
    live.record({
      type: 'hosts',
      roundId: 'other',
      roomTypeId: 1,
      hosts: [{ host: 'h1', status: 'completed', progress: 100 }],
    });
    expect(live.current()?.groups[0]?.hosts[0]?.status).toBe('pending');
    leave();
    live.record({
      type: 'hosts',
      roundId: 'r1',
      roomTypeId: 1,
      hosts: [{ host: 'h1', status: 'completed', progress: 100 }],
    });
    expect(seen).toHaveLength(1);
    expect(live.current()).toMatchObject({ final: 1, phase: 'storing', resumed: true });
  });
});
