import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readlink, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  cleanupStaleFiles,
  pruneVersions,
  readLinks,
  readSnapshotManifest,
  removeVersion,
  switchCurrent,
  versionDir,
} from '../src/snapshots.js';
import { appManifest } from './package-fixtures.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'ota-snapshots-'));
  await mkdir(join(root, 'versions'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A complete version: its VERSION file and manifest, with the given mtime (seconds ago). */
async function addVersion(version: string, ageSeconds = 0): Promise<void> {
  const dir = versionDir(root, version);
  await mkdir(join(dir, 'app'), { recursive: true });
  await writeFile(join(dir, 'app', 'VERSION'), version);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(appManifest(version, 'app.service', 1)));
  const when = new Date(Date.now() - ageSeconds * 1000);
  await utimes(dir, when, when);
}

/** The factory as create_factory_version.sh leaves it: versions/0.9.0 and versions/factory -> 0.9.0. */
async function addFactory(): Promise<void> {
  await addVersion('0.9.0', 3600);
  await symlink('0.9.0', join(root, 'versions', 'factory'));
}

describe('switchCurrent', () => {
  it('points current at the version and previous at the old current, with relative links', async () => {
    await addFactory();
    await addVersion('1.0.0');
    await addVersion('2.0.0');
    await symlink('factory', join(root, 'versions', 'current'));

    await switchCurrent(root, '1.0.0');
    expect(await readLinks(root)).toEqual({
      current: '1.0.0',
      previous: 'factory',
      factory: true,
      others: ['2.0.0'],
    });
    await switchCurrent(root, '2.0.0');
    expect(await readLinks(root)).toEqual({ current: '2.0.0', previous: '1.0.0', factory: true, others: [] });
    expect(await readlink(join(root, 'versions', 'current'))).toBe('2.0.0');
    expect(await readlink(join(root, 'versions', 'previous'))).toBe('1.0.0');
    expect(await readdir(root)).toEqual(['versions']);
    expect((await readdir(join(root, 'versions'))).sort()).toEqual([
      '0.9.0',
      '1.0.0',
      '2.0.0',
      'current',
      'factory',
      'previous',
    ]);

    // Back to the factory: current goes through the factory link, the factory's directory stays.
    await switchCurrent(root, 'factory');
    expect(await readlink(join(root, 'versions', 'current'))).toBe('factory');
    expect(await readLinks(root)).toEqual({
      current: 'factory',
      previous: '2.0.0',
      factory: true,
      others: ['1.0.0'],
    });
  });

  it('sets or removes previous explicitly (as a rollback restores it)', async () => {
    await addFactory();
    await addVersion('1.0.0');
    await addVersion('2.0.0');
    await switchCurrent(root, '1.0.0');
    await switchCurrent(root, '2.0.0');

    expect(await switchCurrent(root, '1.0.0', { previous: 'factory' })).toEqual({
      current: '1.0.0',
      previous: 'factory',
    });
    await switchCurrent(root, '1.0.0', { previous: null });
    expect(await readLinks(root)).toMatchObject({ current: '1.0.0', previous: null });
  });

  it('refuses a target that does not exist and leaves the links alone', async () => {
    await addVersion('1.0.0');
    await switchCurrent(root, '1.0.0');
    await expect(switchCurrent(root, '3.0.0')).rejects.toMatchObject({ code: 'DEPLOYMENT_FAILED' });
    await expect(switchCurrent(root, '../etc')).rejects.toMatchObject({ code: 'DEPLOYMENT_FAILED' });
    expect((await readLinks(root)).current).toBe('1.0.0');
  });

  it('is atomic: another process reading through current never finds it missing', async () => {
    await addVersion('1.0.0');
    await addVersion('2.0.0');
    await switchCurrent(root, '1.0.0');
    const stopFile = join(root, 'stop');
    // A separate process, so reads really interleave with the renames instead of taking turns.
    const reader = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs');
         process.stdout.write('ready\\n');
         let reads = 0, misses = 0;
         while (!fs.existsSync(process.argv[2])) {
           try { const v = fs.readFileSync(process.argv[1] + '/versions/current/app/VERSION', 'utf8'); if (v !== '1.0.0' && v !== '2.0.0') misses++; }
           catch { misses++; }
           reads++;
         }
         console.log(JSON.stringify({ reads, misses }));`,
        root,
        stopFile,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    // The switches start once the reader reads: on a loaded machine node takes long enough to start
    // that all 300 could be over before its first read (reads 0, seen in a run at load 10).
    let ready: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (ready = resolve));
    reader.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.startsWith('ready\n')) ready();
    });
    const exited = new Promise((resolve) => reader.on('exit', resolve));
    await started;

    for (let i = 0; i < 300; i++) await switchCurrent(root, i % 2 === 0 ? '2.0.0' : '1.0.0');
    await writeFile(stopFile, '');
    await exited;

    const { reads, misses } = JSON.parse(out.slice('ready\n'.length)) as { reads: number; misses: number };
    expect(reads).toBeGreaterThan(100);
    expect(misses).toBe(0);
    expect((await readdir(join(root, 'versions'))).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});

describe('retention', () => {
  it('keeps current, previous, factory and the newest N others', async () => {
    await addFactory();
    // current is the oldest on disk: age must never decide over a link.
    await addVersion('1.0.0', 600);
    for (const [i, v] of ['1.1.0', '1.2.0', '1.3.0', '1.4.0', '1.5.0'].entries())
      await addVersion(v, 500 - i * 60);
    await switchCurrent(root, '1.5.0');
    await switchCurrent(root, '1.0.0');

    expect(await pruneVersions(root, 2)).toEqual(['1.1.0', '1.2.0']);
    expect(await readLinks(root)).toEqual({
      current: '1.0.0',
      previous: '1.5.0',
      factory: true,
      others: ['1.3.0', '1.4.0'],
    });
    expect(await pruneVersions(root, 0)).toEqual(['1.3.0', '1.4.0']);
    expect((await readdir(join(root, 'versions'))).sort()).toEqual([
      '0.9.0',
      '1.0.0',
      '1.5.0',
      'current',
      'factory',
      'previous',
    ]);
  });

  it('never removes a linked version', async () => {
    await addVersion('1.0.0');
    await addVersion('2.0.0');
    await switchCurrent(root, '1.0.0');
    await switchCurrent(root, '2.0.0');
    expect(await removeVersion(root, '1.0.0')).toBe(false);
    expect(await removeVersion(root, '2.0.0')).toBe(false);
    await addFactory();
    expect(await removeVersion(root, '0.9.0')).toBe(false);
    expect(await removeVersion(root, 'factory')).toBe(false);
    expect((await readdir(join(root, 'versions'))).sort()).toEqual([
      '0.9.0',
      '1.0.0',
      '2.0.0',
      'current',
      'factory',
      'previous',
    ]);
  });
});

describe('crash leftovers and manifests', () => {
  it('cleanupStaleFiles removes temp dirs, half-deleted versions and temp links only', async () => {
    await addVersion('1.0.0');
    await switchCurrent(root, '1.0.0');
    await mkdir(join(root, 'versions', '.unpack-2.0.0-abcd', 'app'), { recursive: true });
    await mkdir(join(root, 'versions', '.trash-0.5.0-abcd'));
    await symlink('1.0.0', join(root, 'versions', '.current.tmp-abcd'));
    await symlink('1.0.0', join(root, 'versions', '.previous.tmp-abcd'));

    expect((await cleanupStaleFiles(root)).sort()).toEqual([
      'versions/.current.tmp-abcd',
      'versions/.previous.tmp-abcd',
      'versions/.trash-0.5.0-abcd',
      'versions/.unpack-2.0.0-abcd',
    ]);
    expect((await readdir(join(root, 'versions'))).sort()).toEqual(['1.0.0', 'current']);
    expect((await readLinks(root)).current).toBe('1.0.0');
  });

  it('reads the manifest of a version and of the factory', async () => {
    await addFactory();
    await addVersion('1.0.0');
    expect((await readSnapshotManifest(root, 'factory'))?.version).toBe('0.9.0');
    expect((await readSnapshotManifest(root, '1.0.0'))?.version).toBe('1.0.0');
    expect(await readSnapshotManifest(root, '7.0.0')).toBeNull();
  });
});
