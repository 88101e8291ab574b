// The file spool on a real temp directory: what is on disk after each call, and what a new
// instance (a restarted service) reads back.
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { rejectionOf } from '@upgrade/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileSpool, type SpoolLogger } from '../src/adapters/file-spool.js';
import type { FinalHostStatus, SpooledResult, UpgradeLogEntry } from '../src/ports.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');

function spooled(finishedAtMs = T0 + 600_000, hosts = 3): SpooledResult {
  const roundId = randomUUID();
  const statuses: FinalHostStatus[] = ['completed', 'failed', 'timeout'];
  const entries: UpgradeLogEntry[] = Array.from({ length: hosts }, (_, i) => ({
    roundId,
    uuid: i === 2 ? null : `vendor-${i}`,
    roomTypeId: 10 + (i % 2),
    host: `10.0.0.${i}`,
    filename: 'RCU_A.bin',
    fileType: 1,
    status: statuses[i % 3] ?? 'completed',
    startTime: new Date(T0 + i),
    endTime: new Date(T0 + 60_000 + i),
    configVersion: i % 3 === 0 ? 'cfg-"7"' : null,
    firmwareVersion: i % 3 === 0 ? '2.3.1' : null,
    detail: i % 3 === 0 ? null : 'vendor said: \\ "no" ホスト',
  }));
  return { roundId, finishedAt: new Date(finishedAtMs), entries };
}

/** A logger that keeps its lines, to assert that a skipped file was reported. */
function recordingLogger(): SpoolLogger & { lines: { obj: Record<string, unknown>; msg: string }[] } {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  return { lines, warn: (obj, msg) => lines.push({ obj, msg }) };
}

describe('file spool', () => {
  let root: string;
  let dir: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'rcu-spool-'));
    // Not created yet: the first put makes it, as on a fresh host.
    dir = join(root, 'data', 'spool');
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('lists nothing before anything was spooled, without creating the directory', async () => {
    expect(await createFileSpool(dir).list()).toEqual([]);
    expect(await readdir(root)).toEqual([]);
  });

  it('gives back what was put, dates and all, and leaves one file per round and no temp file', async () => {
    const spool = createFileSpool(dir);
    const a = spooled(T0 + 1000);
    const b = spooled(T0 + 2000);
    await spool.put(a.roundId, a);
    await spool.put(b.roundId, b);
    expect(await spool.list()).toEqual([a, b]);
    expect((await readdir(dir)).sort()).toEqual([`${a.roundId}.json`, `${b.roundId}.json`].sort());
    const [first] = await spool.list();
    expect(first?.finishedAt).toBeInstanceOf(Date);
    expect(first?.entries[0]?.startTime).toBeInstanceOf(Date);
  });

  it('replaces a round spooled twice with the later batch', async () => {
    const spool = createFileSpool(dir);
    const first = spooled(T0, 2);
    const again = {
      ...first,
      entries: [
        ...first.entries,
        ...spooled(T0, 1).entries.map((e) => ({ ...e, roundId: first.roundId, host: 'late' })),
      ],
    };
    await spool.put(first.roundId, first);
    await spool.put(first.roundId, again);
    expect(await spool.list()).toEqual([again]);
    expect(await readdir(dir)).toEqual([`${first.roundId}.json`]);
  });

  it('survives a restart: a new instance on the same directory lists the same results', async () => {
    const batch = spooled(T0, 50);
    await createFileSpool(dir).put(batch.roundId, batch);
    const restarted = createFileSpool(dir);
    expect(await restarted.list()).toEqual([batch]);
  });

  it('lists oldest first, the order to replay them in', async () => {
    const spool = createFileSpool(dir);
    const batches = [spooled(T0 + 3000), spooled(T0 + 1000), spooled(T0 + 2000)];
    for (const b of batches) await spool.put(b.roundId, b);
    expect((await spool.list()).map((b) => b.finishedAt.getTime())).toEqual([
      T0 + 1000,
      T0 + 2000,
      T0 + 3000,
    ]);
  });

  it('removes a round idempotently', async () => {
    const spool = createFileSpool(dir);
    const keep = spooled(T0 + 1);
    const gone = spooled(T0 + 2);
    await spool.put(keep.roundId, keep);
    await spool.put(gone.roundId, gone);
    await spool.remove(gone.roundId);
    await spool.remove(gone.roundId);
    await spool.remove(randomUUID());
    expect(await spool.list()).toEqual([keep]);
    expect(await readdir(dir)).toEqual([`${keep.roundId}.json`]);
  });

  it('skips and quarantines a corrupt file with a log line, and keeps serving the others', async () => {
    const logger = recordingLogger();
    const spool = createFileSpool(dir, { logger });
    const good = spooled();
    const torn = spooled();
    await spool.put(good.roundId, good);
    await spool.put(torn.roundId, torn);
    const tornPath = join(dir, `${torn.roundId}.json`);
    const text = await readFile(tornPath, 'utf8');
    await writeFile(tornPath, text.slice(0, text.length / 2));

    expect(await spool.list()).toEqual([good]);
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]?.obj).toMatchObject({ file: tornPath, quarantined: `${tornPath}.corrupt` });
    expect((await readdir(dir)).sort()).toEqual(
      [`${good.roundId}.json`, `${torn.roundId}.json.corrupt`].sort(),
    );

    // Moved aside once, not reported on every later list.
    expect(await spool.list()).toEqual([good]);
    expect(logger.lines).toHaveLength(1);
  });

  it('quarantines files that parse but are not what put wrote', async () => {
    const logger = recordingLogger();
    const spool = createFileSpool(dir, { logger });
    const good = spooled();
    await spool.put(good.roundId, good);
    const bad = (over: Record<string, unknown>) => JSON.stringify({ ...spooled(), ...over });
    const cases: [string, string][] = [
      ['bad-date', bad({ finishedAt: 'yesterday' })],
      ['not-array', bad({ entries: {} })],
      ['array', '[]'],
      ['bad-status', JSON.stringify({ ...good, entries: [{ ...good.entries[0], status: 'running' }] })],
      ['missing-host', JSON.stringify({ ...good, entries: [{ ...good.entries[0], host: undefined }] })],
    ];
    for (const [name, text] of cases) await writeFile(join(dir, `${name}.json`), text);
    // Valid content under another round's name would be replayed and never removed.
    await writeFile(join(dir, `${randomUUID()}.json`), JSON.stringify(spooled()));

    expect(await spool.list()).toEqual([good]);
    expect(logger.lines).toHaveLength(cases.length + 1);
    expect((await readdir(dir)).filter((n) => n.endsWith('.corrupt'))).toHaveLength(cases.length + 1);
  });

  it('removes temp files left by a crash mid-write once they are stale, and ignores fresh ones', async () => {
    const logger = recordingLogger();
    const spool = createFileSpool(dir, { logger, staleTempMs: 60_000 });
    const batch = spooled();
    await spool.put(batch.roundId, batch);
    const stale = join(dir, `${randomUUID()}.json.1234-deadbeef.tmp`);
    const fresh = join(dir, `${randomUUID()}.json.1234-cafebabe.tmp`);
    await writeFile(stale, '{"roundId":');
    await writeFile(fresh, '{"roundId":');
    const anHourAgo = new Date(Date.now() - 3_600_000);
    await utimes(stale, anHourAgo, anHourAgo);

    expect(await spool.list()).toEqual([batch]);
    const names = await readdir(dir);
    expect(names).not.toContain(stale.slice(dir.length + 1));
    expect(names).toContain(fresh.slice(dir.length + 1));
    expect(logger.lines.map((l) => l.obj.file)).toEqual([stale]);
  });

  it('keeps a round of 10,000 hosts intact', async () => {
    const spool = createFileSpool(dir);
    const big = spooled(T0, 10_000);
    await spool.put(big.roundId, big);
    expect(await createFileSpool(dir).list()).toEqual([big]);
  });

  it('refuses round ids that could name a path outside the directory, and mismatched batches', async () => {
    const spool = createFileSpool(dir);
    const batch = spooled();
    for (const id of ['../escape', 'a/b', '', '.hidden', 'x'.repeat(200)]) {
      expect((await rejectionOf(spool.put(id, { ...batch, roundId: id }))).code).toBe('VALIDATION_FAILED');
      expect((await rejectionOf(spool.remove(id))).code).toBe('VALIDATION_FAILED');
    }
    expect((await rejectionOf(spool.put(randomUUID(), batch))).code).toBe('VALIDATION_FAILED');
    expect(await readdir(root)).toEqual([]);
  });

  it('answers UNAVAILABLE (retryable) when the disk refuses the write, leaving no temp file', async () => {
    const blocker = join(root, 'not-a-directory');
    await writeFile(blocker, '');
    const spool = createFileSpool(join(blocker, 'spool'));
    const batch = spooled();
    const error = await rejectionOf(spool.put(batch.roundId, batch));
    expect(error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect(error.message).toContain('ENOTDIR');
    expect(await readdir(root)).toEqual(['not-a-directory']);
  });
});
