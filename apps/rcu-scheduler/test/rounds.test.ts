// The round flow end to end in one process: the real vendor adapter over loopback HTTP against
// the simulator, the memory store (held to the PostgreSQL store by the contract suite), a real
// spool directory, and time compressed by settings.
import { waitFor } from '@upgrade/testkit';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VendorApiClient } from '../src/adapters/vendor-api.js';
import type { RoundRecord, VendorApi } from '../src/ports.js';
import { flushSpool, resumeRound, runRound, type RoundEvent } from '../src/rounds.js';
import { createMemoryRoundStore, type MemoryRoundStore } from './fakes/memory-store.js';
import { FILES, captureLogger, fastSettings, makeGroups, roundDeps, tempDir, vendorFor } from './helpers.js';
import { startVendorSimulator, type VendorSimulator } from './simulator/vendor-simulator.js';

let sim: VendorSimulator;
let vendor: VendorApiClient;
let store: MemoryRoundStore;
let spool: ReturnType<typeof tempDir>;

beforeAll(async () => {
  sim = await startVendorSimulator({ hostDurationMs: 150, startSpreadMs: 20 });
  vendor = vendorFor(sim);
});
afterAll(async () => {
  await vendor.close();
  await sim.close();
});
beforeEach(() => {
  sim.reset();
  store = createMemoryRoundStore();
  spool = tempDir('rcu-spool-');
});
afterEach(() => spool.remove());

const schedule = { trigger: 'schedule' as const, slot: null };

describe('runRound', () => {
  it('logs one row per host with the trigger uuid, then advances the rotation A, A, B, B', async () => {
    const settings = fastSettings();
    const deps = roundDeps(vendor, store, spool.path);
    const outcome = await runRound(deps, settings, schedule);
    expect(outcome?.summary).toEqual({ total: 6, completed: 6, failed: 0, timeout: 0 });
    expect(outcome?.stored).toBe(true);

    const round = await store.getRound(outcome?.roundId ?? '');
    expect(round?.status).toBe('finished');
    const uuids = new Map(round?.groups.map((g) => [g.roomTypeId, g.uuid]));
    for (const row of round?.results ?? []) {
      expect(row.status).toBe('completed');
      expect(row.filename).toBe('RCU_V2.3.1.bin');
      expect(row.uuid).toBe(uuids.get(row.roomTypeId));
      expect(sim.upgrades.get(row.uuid ?? '')?.hosts).toContain(row.host);
      expect(row.firmwareVersion).toBe('2.3.1');
      expect(row.endTime.getTime()).toBeGreaterThanOrEqual(row.startTime.getTime());
    }
    expect(await store.loadRotation()).toEqual({ index: 0, used: 1 });

    const files = [outcome?.filename];
    for (let i = 0; i < 3; i++) files.push((await runRound(deps, settings, schedule))?.filename);
    expect(files).toEqual(['RCU_V2.3.1.bin', 'RCU_V2.3.1.bin', 'RCU_V2.4.0.bin', 'RCU_V2.4.0.bin']);
    expect(readdirSync(spool.path)).toEqual([]);
  });

  it('logs failed hosts with the vendor message and stuck hosts as timeout at the deadline', async () => {
    sim.failHosts(['rt100-h001'], { message: 'flash write error' });
    sim.stickHosts(['rt101-h002']);
    const settings = fastSettings({ pollTimeoutMs: 600 });
    const outcome = await runRound(roundDeps(vendor, store, spool.path), settings, schedule);
    expect(outcome?.summary).toEqual({ total: 6, completed: 4, failed: 1, timeout: 1 });
    const rows = (await store.getRound(outcome?.roundId ?? ''))?.results ?? [];
    const failed = rows.find((r) => r.host === 'rt100-h001');
    expect(failed).toMatchObject({ status: 'failed', detail: 'flash write error' });
    const stuck = rows.find((r) => r.host === 'rt101-h002');
    expect(stuck?.status).toBe('timeout');
    expect(stuck?.detail).toMatch(/^still running at \d+(\.\d+)?% when the poll timeout of 600 ms ended$/);
  });

  it('polls each group on its own cadence: a hanging group delays no other, and the round ends within one interval of its deadline', async () => {
    // Room type 100's queries hang; 101's hosts stay running (polled for the whole window); 102's complete.
    sim.hangGroups([100]);
    sim.stickHosts((host) => host.startsWith('rt101-'));
    // One hung query holds the adapter for 3 attempts of 2 s plus the retry delays (~6.3 s).
    const slow = vendorFor(sim, { responseTimeoutMs: 2_000, retries: 2, retryDelayMs: 100 });
    const polls = new Map<number, number[]>();
    const timed: VendorApi = {
      triggerUpgrade: (request, signal) => slow.triggerUpgrade(request, signal),
      queryProgress: (uuid, signal) => {
        const roomTypeId = sim.upgrades.get(uuid)?.roomTypeId ?? -1;
        polls.set(roomTypeId, [...(polls.get(roomTypeId) ?? []), Date.now()]);
        return slow.queryProgress(uuid, signal);
      },
    };
    const events: RoundEvent[] = [];
    let watchStart = 0;
    const settings = fastSettings({
      groups: makeGroups(3, 2),
      initialDelayMs: 0,
      pollIntervalMs: 250,
      pollTimeoutMs: 3_000,
    });
    const deps = {
      ...roundDeps(vendor, store, spool.path, { events }),
      vendor: timed,
      onEvent: (e: RoundEvent) => {
        if (e.type === 'triggered') watchStart = Date.now();
        events.push(e);
      },
    };
    try {
      const outcome = await runRound(deps, settings, schedule);
      const rows = (await store.getRound(outcome?.roundId ?? ''))?.results ?? [];
      const status = (rt: number) => rows.filter((r) => r.roomTypeId === rt).map((r) => r.status);
      expect(status(100)).toEqual(['timeout', 'timeout']);
      expect(status(101)).toEqual(['timeout', 'timeout']);
      expect(status(102)).toEqual(['completed', 'completed']);

      const deadline = watchStart + settings.pollTimeoutMs;
      const healthy = (polls.get(101) ?? []).map((t) => t - watchStart);
      const gaps = healthy.slice(1).map((t, i) => t - (healthy[i] ?? 0));
      const roundEnd = Math.max(...rows.map((r) => r.endTime.getTime()));
      console.info(
        `hanging-group round: healthy group polled at ${healthy.join(', ')} ms after the triggers ` +
          `(${healthy.length} polls, largest gap ${Math.max(...gaps)} ms, interval ${settings.pollIntervalMs} ms); ` +
          `hanging group asked ${polls.get(100)?.length ?? 0} times; round ended ${roundEnd - deadline} ms after its deadline`,
      );
      // The hanging group's one call lasts ~6.3 s: waiting for it would leave gaps of seconds.
      expect(healthy.length).toBeGreaterThanOrEqual(6);
      expect(Math.max(...gaps)).toBeLessThan(2_000);
      expect(roundEnd - deadline).toBeLessThan(settings.pollIntervalMs + 1_500);
    } finally {
      sim.reset();
      await slow.close();
    }
  });

  it('logs a group whose trigger answer breaks the spec as failed, and the other group goes on', async () => {
    sim.malformed(1, 'schema', 'Upgrade_V2');
    const settings = fastSettings({ concurrency: 1 });
    const outcome = await runRound(roundDeps(vendor, store, spool.path), settings, schedule);
    const round = await store.getRound(outcome?.roundId ?? '');
    const [first, second] = round?.groups ?? [];
    expect(first).toMatchObject({ roomTypeId: 100, uuid: null });
    expect(first?.triggerError).toMatch(/^trigger failed: VENDOR_CONTRACT_VIOLATION: /);
    expect(second?.uuid).not.toBeNull();
    const rows = round?.results ?? [];
    expect(rows.filter((r) => r.roomTypeId === 100).map((r) => [r.status, r.uuid])).toEqual([
      ['failed', null],
      ['failed', null],
      ['failed', null],
    ]);
    expect(rows.filter((r) => r.roomTypeId === 101).every((r) => r.status === 'completed')).toBe(true);
    // The rotation still moves: the round finished and every host has its result.
    expect(await store.loadRotation()).toEqual({ index: 0, used: 1 });
  });

  it('ends a group whose progress answers break the spec, with the reason, without stopping the round', async () => {
    const events: RoundEvent[] = [];
    sim.malformed(1, 'json', 'QueryUpdateHostProgressBar');
    const settings = fastSettings({ concurrency: 1 });
    const outcome = await runRound(roundDeps(vendor, store, spool.path, { events }), settings, schedule);
    const rows = (await store.getRound(outcome?.roundId ?? ''))?.results ?? [];
    const failed = rows.filter((r) => r.status === 'failed');
    expect(failed).toHaveLength(3);
    expect(failed[0]?.detail).toMatch(/^progress query failed: VENDOR_CONTRACT_VIOLATION: /);
    expect(rows.filter((r) => r.status === 'completed')).toHaveLength(3);
    expect(events.at(-1)).toMatchObject({ type: 'finished', stored: true });
  });

  it('logs hosts the vendor lists twice as completed, not as a failed group', async () => {
    sim.misreport('duplicate-hosts');
    sim.misreport('percent-text');
    const outcome = await runRound(roundDeps(vendor, store, spool.path), fastSettings(), schedule);
    expect(outcome?.summary).toEqual({ total: 6, completed: 6, failed: 0, timeout: 0 });
  });

  it('stores the results even when the spool cannot be written (disk full, read-only)', async () => {
    const logger = captureLogger();
    const notADirectory = join(spool.path, 'file');
    writeFileSync(notADirectory, '');
    const outcome = await runRound(
      roundDeps(vendor, store, notADirectory, { logger }),
      fastSettings(),
      schedule,
    );
    expect(outcome?.stored).toBe(true);
    expect((await store.getRound(outcome?.roundId ?? ''))?.results).toHaveLength(6);
    expect(logger.lines.find((l) => l.level === 'error')?.msg).toBe(
      'could not spool round results; storing them without a local copy',
    );
  });

  it('rides out 5xx answers to progress queries: the next poll asks again', async () => {
    const settings = fastSettings();
    const deps = roundDeps(vendor, store, spool.path);
    sim.failNext(4, 503, 'QueryUpdateHostProgressBar');
    const outcome = await runRound(deps, settings, schedule);
    expect(outcome?.summary.completed).toBe(6);
  });

  it('logs the hosts of an upgrade the vendor lost as failed, naming the uuid', async () => {
    const events: RoundEvent[] = [];
    const settings = fastSettings({ initialDelayMs: 100 });
    const deps = roundDeps(vendor, store, spool.path, { events });
    const pending = runRound(deps, settings, schedule);
    await waitFor(() => events.filter((e) => e.type === 'triggered').length === 2);
    const lost = events.find((e) => e.type === 'triggered' && e.roomTypeId === 101);
    sim.loseUuid(lost?.type === 'triggered' ? (lost.uuid ?? '') : '');
    const outcome = await pending;
    const rows = (await store.getRound(outcome?.roundId ?? ''))?.results ?? [];
    const failed = rows.filter((r) => r.roomTypeId === 101);
    expect(failed.every((r) => r.status === 'failed')).toBe(true);
    expect(failed[0]?.detail).toContain(lost?.type === 'triggered' ? (lost.uuid ?? '?') : '?');
  });

  it('keeps results in the spool while the database is down and stores them once it is back', async () => {
    const events: RoundEvent[] = [];
    const settings = fastSettings({ storeRetryMaxMs: 20 });
    const deps = roundDeps(vendor, store, spool.path, { events });
    const pending = runRound(deps, settings, schedule);
    await waitFor(() => events.some((e) => e.type === 'progress'));
    store.setUnavailable(true);
    await waitFor(() => events.filter((e) => e.type === 'store-retry').length >= 3);
    expect(readdirSync(spool.path)).toHaveLength(1);
    store.setUnavailable(false);
    const outcome = await pending;
    expect(outcome?.stored).toBe(true);
    expect((await store.getRound(outcome?.roundId ?? ''))?.results).toHaveLength(6);
    expect(readdirSync(spool.path)).toEqual([]);
    expect(await store.loadRotation()).toEqual({ index: 0, used: 1 });
  });

  it('leaves results spooled when shut down during an outage; a restart stores them exactly once', async () => {
    const events: RoundEvent[] = [];
    const shutdown = new AbortController();
    const settings = fastSettings({ storeRetryMaxMs: 20 });
    const pending = runRound(roundDeps(vendor, store, spool.path, { events }), settings, {
      ...schedule,
      signal: shutdown.signal,
    });
    await waitFor(() => events.some((e) => e.type === 'progress'));
    store.setUnavailable(true);
    await waitFor(() => events.some((e) => e.type === 'store-retry'));
    shutdown.abort();
    const outcome = await pending;
    expect(outcome?.stored).toBe(false);
    store.setUnavailable(false);

    // "Restart": new deps over the same spool directory.
    const restarted = roundDeps(vendor, store, spool.path);
    expect(await flushSpool(restarted)).toBe(1);
    expect(await flushSpool(restarted)).toBe(0);
    expect((await store.getRound(outcome?.roundId ?? ''))?.results).toHaveLength(6);
    expect(await store.loadRotation()).toEqual({ index: 0, used: 1 });
  });

  it('resumes a round a crash left running: polls its uuids again, fails what cannot be known', async () => {
    const settings = fastSettings({ groups: makeGroups(3, 2) });
    // What a crashed instance left: the round recorded, two triggers sent, one confirmed lost.
    const [g0, g1, g2] = settings.groups;
    const t0 = await vendor.triggerUpgrade({ group: g0!, file: FILES[1] });
    const t1 = await vendor.triggerUpgrade({ group: g1!, file: FILES[1] });
    sim.loseUuid(t1.uuid);
    const crashed: RoundRecord = {
      id: randomUUID(),
      slot: null,
      trigger: 'schedule',
      filename: FILES[1].filename,
      fileType: FILES[1].fileType,
      rotationAfter: { index: 1, used: 1 },
      status: 'running',
      startedAt: new Date(),
      finishedAt: null,
      groups: [
        { roomTypeId: g0!.roomTypeId, hosts: g0!.hosts, uuid: t0.uuid, triggerError: null },
        { roomTypeId: g1!.roomTypeId, hosts: g1!.hosts, uuid: t1.uuid, triggerError: null },
        { roomTypeId: g2!.roomTypeId, hosts: g2!.hosts, uuid: null, triggerError: null },
      ],
    };
    await store.startRound(crashed);
    const [unfinished] = await store.unfinishedRounds();

    const outcome = await resumeRound(roundDeps(vendor, store, spool.path), settings, unfinished!);
    expect(outcome.summary).toEqual({ total: 6, completed: 2, failed: 4, timeout: 0 });
    const rows = (await store.getRound(crashed.id))?.results ?? [];
    expect(rows.filter((r) => r.roomTypeId === g0!.roomTypeId).map((r) => [r.status, r.uuid])).toEqual([
      ['completed', t0.uuid],
      ['completed', t0.uuid],
    ]);
    expect(rows.find((r) => r.roomTypeId === g1!.roomTypeId)?.detail).toContain(t1.uuid);
    expect(rows.find((r) => r.roomTypeId === g2!.roomTypeId)?.detail).toMatch(/^interrupted: /);
    expect(await store.unfinishedRounds()).toEqual([]);
    expect(await store.loadRotation()).toEqual({ index: 1, used: 1 });
  });

  it('gives a round resumed past its deadline one whole poll per group, however slow the vendor answers', async () => {
    // A slow restart: the round's deadline passed while the service was down.
    const settings = fastSettings({ groups: makeGroups(1, 2), pollIntervalMs: 50 });
    const [g0] = settings.groups;
    const t0 = await vendor.triggerUpgrade({ group: g0!, file: FILES[0] });
    await waitFor(async () => (await vendor.queryProgress(t0.uuid)).every((h) => h.status === 'completed'));
    sim.setLatency(300); // each answer takes longer than a poll interval
    await store.startRound({
      id: randomUUID(),
      slot: null,
      trigger: 'schedule',
      filename: FILES[0].filename,
      fileType: FILES[0].fileType,
      rotationAfter: { index: 0, used: 1 },
      status: 'running',
      startedAt: new Date(Date.now() - 60 * 60_000),
      finishedAt: null,
      groups: [{ roomTypeId: g0!.roomTypeId, hosts: g0!.hosts, uuid: t0.uuid, triggerError: null }],
    });
    const [unfinished] = await store.unfinishedRounds();
    const outcome = await resumeRound(roundDeps(vendor, store, spool.path), settings, unfinished!);
    expect(outcome.summary).toEqual({ total: 2, completed: 2, failed: 0, timeout: 0 });
  });

  it('skips a schedule slot another instance already ran, without moving the rotation', async () => {
    const slot = Date.UTC(2026, 10, 23, 10, 0);
    const deps = roundDeps(vendor, store, spool.path, { logger: captureLogger() });
    const settings = fastSettings();
    expect(await runRound(deps, settings, { trigger: 'schedule', slot })).not.toBeNull();
    expect(await runRound(deps, settings, { trigger: 'schedule', slot })).toBeNull();
    expect(await store.loadRotation()).toEqual({ index: 0, used: 1 });
    expect(sim.upgrades.size).toBeGreaterThan(0);
  });
});
