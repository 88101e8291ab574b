// The setup scripts, run with bash against temp roots exactly as a technician would run them.
import { execFile } from 'node:child_process';
import {
  chmod,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLinks, readSnapshotManifest, switchCurrent } from '../src/snapshots.js';
import { appManifest } from './package-fixtures.js';

const SCRIPTS = fileURLToPath(new URL('../scripts', import.meta.url));

let work: string;
let root: string;
let source: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'ota-scripts-'));
  root = join(work, 'tope');
  source = join(work, 'staging', '0.9.0');
  await mkdir(join(source, 'app', 'bin'), { recursive: true });
  await writeFile(join(source, 'app', 'VERSION'), '0.9.0\n', { mode: 0o644 });
  await writeFile(join(source, 'app', 'bin', 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
  await writeFile(join(source, 'manifest.json'), JSON.stringify(appManifest('0.9.0', 'app.service', 80)));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

interface ScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

function script(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ScriptResult> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      [join(SCRIPTS, name), ...args],
      { env: { PATH: process.env.PATH, ...env } },
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1,
          stdout,
          stderr,
        }),
    );
  });
}

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o7777;
}

async function setUp(): Promise<void> {
  expect((await script('create_factory_version.sh', [root, source])).code).toBe(0);
  expect((await script('setup_symlinks.sh', [root])).code).toBe(0);
}

describe('create_factory_version.sh', () => {
  it('copies a version into a read-only versions/<v> reached through versions/factory', async () => {
    const result = await script('create_factory_version.sh', [root, source]);
    expect(result).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(`created ${root}/versions/0.9.0`) as unknown,
    });

    expect(await readlink(join(root, 'versions', 'factory'))).toBe('0.9.0');
    const factory = join(root, 'versions', '0.9.0');
    expect(await readFile(join(factory, 'app', 'VERSION'), 'utf8')).toBe('0.9.0\n');
    expect(await modeOf(factory)).toBe(0o555);
    expect(await modeOf(join(factory, 'app'))).toBe(0o555);
    expect(await modeOf(join(factory, 'app', 'bin'))).toBe(0o555);
    expect(await modeOf(join(factory, 'app', 'VERSION'))).toBe(0o444);
    expect(await modeOf(join(factory, 'manifest.json'))).toBe(0o444);
    expect(await modeOf(join(factory, 'app', 'bin', 'run.sh'))).toBe(0o555); // still runnable
    expect(await readdir(root)).toEqual(['versions']);
    expect((await readdir(join(root, 'versions'))).sort()).toEqual(['0.9.0', 'factory']); // no temp left
    expect((await readSnapshotManifest(root, 'factory'))?.version).toBe('0.9.0');
    expect(await readLinks(root)).toEqual({ current: null, previous: null, factory: true, others: [] });
  });

  it('never overwrites an existing factory (idempotent)', async () => {
    await script('create_factory_version.sh', [root, source]);
    expect(await script('create_factory_version.sh', [root, source])).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('already exists') as unknown,
    });
    await writeFile(join(source, 'app', 'VERSION'), '1.0.0\n');
    const differing = await script('create_factory_version.sh', [root, source]);
    expect(differing.code).toBe(0);
    expect(differing.stderr).toContain('differs');
    expect(await readFile(join(root, 'versions', 'factory', 'app', 'VERSION'), 'utf8')).toBe('0.9.0\n');
  });

  it('finishes a copy a power cut interrupted, and keeps a deployed copy of its version', async () => {
    // Cut after the link, before the copy landed: the link dangles, a partial copy lies beside it.
    await mkdir(join(root, 'versions', '.factory-copy-abc123', 'app'), { recursive: true });
    await symlink('0.9.0', join(root, 'versions', 'factory'));
    expect((await script('create_factory_version.sh', [root, source])).code).toBe(0);
    expect((await readdir(join(root, 'versions'))).sort()).toEqual(['0.9.0', 'factory']);
    expect(await readFile(join(root, 'versions', 'factory', 'app', 'VERSION'), 'utf8')).toBe('0.9.0\n');

    const other = join(work, 'r2');
    await mkdir(join(other, 'versions', '0.9.0'), { recursive: true });
    expect((await script('create_factory_version.sh', [other, source])).code).toBe(0);
    const name = await readlink(join(other, 'versions', 'factory'));
    expect(name).toMatch(/^0\.9\.0~[0-9a-f]{8}$/);
    expect(await readdir(join(other, 'versions', '0.9.0'))).toEqual([]);
    expect((await readSnapshotManifest(other, 'factory'))?.version).toBe('0.9.0');
  });

  it('takes the root from OTA_ROOT and refuses a source without manifest or with links', async () => {
    expect((await script('create_factory_version.sh', [source], { OTA_ROOT: root })).code).toBe(0);
    expect((await stat(join(root, 'versions', 'factory'))).isDirectory()).toBe(true);

    const other = join(work, 'other');
    await mkdir(join(other, 'app'), { recursive: true });
    expect(await script('create_factory_version.sh', [join(work, 'r2'), other])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('has no manifest.json') as unknown,
    });
    await writeFile(join(other, 'manifest.json'), '{"version": "factory"}');
    expect(await script('create_factory_version.sh', [join(work, 'r2'), other])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('declares no usable version') as unknown,
    });
    await symlink('/etc/passwd', join(other, 'app', 'link'));
    expect(await script('create_factory_version.sh', [join(work, 'r2'), other])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('symbolic links') as unknown,
    });
    expect(await script('create_factory_version.sh', [])).toMatchObject({ code: 2 });
  });
});

describe('setup_symlinks.sh', () => {
  it('creates versions/current -> factory, and leaves an existing current alone', async () => {
    await script('create_factory_version.sh', [root, source]);
    expect(await script('setup_symlinks.sh', [root])).toMatchObject({ code: 0 });
    expect(await readlink(join(root, 'versions', 'current'))).toBe('factory');
    expect(await readLinks(root)).toEqual({ current: 'factory', previous: null, factory: true, others: [] });

    await mkdir(join(root, 'versions', '1.0.0'));
    await writeFile(join(root, 'versions', '1.0.0', 'manifest.json'), '{}');
    await switchCurrent(root, '1.0.0');
    expect(await script('setup_symlinks.sh', [root])).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('exists -> 1.0.0') as unknown,
    });
    expect(await readlink(join(root, 'versions', 'current'))).toBe('1.0.0');
  });

  it('links a service binary and directory through versions/current', async () => {
    await script('create_factory_version.sh', [root, source]);
    const bin = join(work, 'usr', 'local', 'bin');
    const args = ['--bin-dir', bin, '--service', 'device-api', root];
    expect((await script('setup_symlinks.sh', args)).code).toBe(0);
    expect(await readlink(join(bin, 'device-api'))).toBe(`${root}/versions/current/bin/device-api`);
    expect(await readlink(join(root, 'services', 'device-api'))).toBe(
      `${root}/versions/current/services/device-api`,
    );
    expect(await script('setup_symlinks.sh', args)).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(`${bin}/device-api exists`) as unknown,
    });
    expect(await script('setup_symlinks.sh', ['--service', '../x', root])).toMatchObject({ code: 2 });
  });

  it('refuses to run before the factory exists', async () => {
    expect(await script('setup_symlinks.sh', [root])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('run create_factory_version.sh first') as unknown,
    });
  });
});

describe('verify_setup.sh', () => {
  it('says OK for a good layout', async () => {
    await setUp();
    const result = await script('verify_setup.sh', [root]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('OK   versions/factory -> 0.9.0');
    expect(result.stdout).toContain('OK   the factory version is read-only');
    expect(result.stdout).toContain('OK   versions/current -> factory');
    expect(result.stdout).toContain('verify_setup: OK');
    expect(result.stdout).not.toContain('FAIL');
  });

  it('names what is wrong and exits 1', async () => {
    await setUp();
    const factory = join(root, 'versions', '0.9.0');
    await chmod(join(factory, 'app', 'VERSION'), 0o644);
    await chmod(join(factory, 'app'), 0o755);
    await rm(join(root, 'versions', 'current'));
    await symlink('9.9.9', join(root, 'versions', 'current'));
    await symlink('/etc', join(root, 'versions', 'previous'));
    await symlink('versions/0.9.0', join(root, 'previous'));

    const result = await script('verify_setup.sh', [], { OTA_ROOT: root });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      `FAIL the factory version has files not 0444/0555: ${factory}/app/VERSION`,
    );
    expect(result.stdout).toContain(`FAIL the factory version has directories not 0555: ${factory}/app`);
    expect(result.stdout).toContain('FAIL versions/current -> 9.9.9 does not resolve');
    expect(result.stdout).toContain('FAIL versions/previous -> /etc is not a version directory');
    expect(result.stdout).toContain('link of the old layout');
    expect(result.stdout).toContain('verify_setup: 5 problem(s)');
  });

  it('fails on a missing root', async () => {
    expect(await script('verify_setup.sh', [join(work, 'nowhere')])).toMatchObject({
      code: 1,
      stdout: expect.stringContaining('does not exist') as unknown,
    });
  });
});

/** The old layout: `<root>/factory` a read-only copy, `current`/`previous` in the root. */
async function oldLayout(current: string, previous: string | null): Promise<void> {
  await mkdir(join(root, 'factory', 'app'), { recursive: true });
  await writeFile(join(root, 'factory', 'app', 'VERSION'), '0.9.0\n', { mode: 0o444 });
  await writeFile(
    join(root, 'factory', 'manifest.json'),
    JSON.stringify(appManifest('0.9.0', 'app.service', 80)),
    { mode: 0o444 },
  );
  await chmod(join(root, 'factory', 'app'), 0o555);
  await chmod(join(root, 'factory'), 0o555);
  for (const version of ['1.0.0', '1.1.0']) {
    await mkdir(join(root, 'versions', version, 'app'), { recursive: true });
    await writeFile(join(root, 'versions', version, 'app', 'VERSION'), `${version}\n`);
    await writeFile(
      join(root, 'versions', version, 'manifest.json'),
      JSON.stringify(appManifest(version, 'app.service', 80)),
    );
  }
  await symlink(current, join(root, 'current'));
  if (previous !== null) await symlink(previous, join(root, 'previous'));
}

describe('migrate_layout.sh', () => {
  it('moves the factory, current and previous into versions/ and re-points service links', async () => {
    await oldLayout('versions/1.1.0', 'factory');
    const bin = join(work, 'bin');
    await mkdir(bin);
    await symlink(`${root}/current/bin/device-api`, join(bin, 'device-api'));
    await symlink('/usr/bin/env', join(bin, 'env'));

    const first = await script('migrate_layout.sh', ['--bin-dir', bin, root]);
    expect(first).toMatchObject({ code: 0, stdout: expect.stringContaining('done') as unknown });
    expect(await readLinks(root)).toEqual({
      current: '1.1.0',
      previous: 'factory',
      factory: true,
      others: ['1.0.0'],
    });
    expect(await readlink(join(root, 'versions', 'factory'))).toBe('0.9.0');
    expect(await modeOf(join(root, 'versions', '0.9.0'))).toBe(0o555);
    expect(await readlink(join(root, 'current'))).toBe('versions/current');
    expect((await readdir(root)).sort()).toEqual(['current', 'versions']);
    expect(await readlink(join(bin, 'device-api'))).toBe(`${root}/versions/current/bin/device-api`);
    expect(await readlink(join(bin, 'env'))).toBe('/usr/bin/env');
    expect((await script('verify_setup.sh', [root])).stdout).toContain('verify_setup: OK');

    // Again: nothing changes.
    expect(await script('migrate_layout.sh', ['--bin-dir', bin, root])).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('already uses the versions/ layout') as unknown,
    });
    expect(await readLinks(root)).toEqual({
      current: '1.1.0',
      previous: 'factory',
      factory: true,
      others: ['1.0.0'],
    });
  });

  it('finishes a migration cut after any step, and keeps a link the updater switched since', async () => {
    await oldLayout('factory', null);
    // Cut after the factory link was written, before the directory moved.
    await symlink('0.9.0', join(root, 'versions', 'factory'));
    await symlink('x', join(root, '.current.tmp-999'));
    // Leftovers of the old updater and scripts cut mid-way.
    await symlink('versions/1.0.0', join(root, 'current.tmp-abcd'));
    await mkdir(join(root, '.factory.tmp-x1y2z3', 'app'), { recursive: true });
    await chmod(join(root, '.factory.tmp-x1y2z3'), 0o555);
    expect((await script('migrate_layout.sh', ['--bin-dir', join(work, 'none'), root])).code).toBe(0);
    expect(await readLinks(root)).toEqual({
      current: 'factory',
      previous: null,
      factory: true,
      others: ['1.0.0', '1.1.0'],
    });
    expect((await readdir(root)).sort()).toEqual(['current', 'versions']);

    // Cut after versions/current was written, before the old link was replaced; the updater then
    // switched versions/current: the old link must not win.
    await rm(join(root, 'current'));
    await symlink('factory', join(root, 'current'));
    await switchCurrent(root, '1.0.0');
    expect((await script('migrate_layout.sh', [root], { OTA_ROOT: root })).code).toBe(0);
    expect(await readLinks(root)).toMatchObject({ current: '1.0.0', previous: 'factory' });
    expect(await readlink(join(root, 'current'))).toBe('versions/current');
  });

  it('names the factory directory after its MD5 when a deployed copy of its version exists', async () => {
    await oldLayout('versions/0.9.0', 'factory');
    await mkdir(join(root, 'versions', '0.9.0'));
    await writeFile(
      join(root, 'versions', '0.9.0', 'manifest.json'),
      JSON.stringify(appManifest('0.9.0', 'app.service', 80)),
    );
    expect((await script('migrate_layout.sh', [root])).code).toBe(0);
    const links = await readLinks(root);
    expect(links).toMatchObject({ current: '0.9.0', previous: 'factory', factory: true });
    expect(await readlink(join(root, 'versions', 'factory'))).toMatch(/^0\.9\.0~[0-9a-f]{8}$/);
    expect((await readSnapshotManifest(root, 'factory'))?.version).toBe('0.9.0');
  });
});
