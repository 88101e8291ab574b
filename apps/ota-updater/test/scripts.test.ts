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
  it('copies a version into a read-only factory', async () => {
    const result = await script('create_factory_version.sh', [root, source]);
    expect(result).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(`created ${root}/factory`) as unknown,
    });

    const factory = join(root, 'factory');
    expect(await readFile(join(factory, 'app', 'VERSION'), 'utf8')).toBe('0.9.0\n');
    expect(await modeOf(factory)).toBe(0o555);
    expect(await modeOf(join(factory, 'app'))).toBe(0o555);
    expect(await modeOf(join(factory, 'app', 'bin'))).toBe(0o555);
    expect(await modeOf(join(factory, 'app', 'VERSION'))).toBe(0o444);
    expect(await modeOf(join(factory, 'manifest.json'))).toBe(0o444);
    expect(await modeOf(join(factory, 'app', 'bin', 'run.sh'))).toBe(0o555); // still runnable
    expect((await readdir(root)).sort()).toEqual(['factory']); // no temp copy left
    expect((await readSnapshotManifest(root, 'factory'))?.version).toBe('0.9.0');
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
    expect(await readFile(join(root, 'factory', 'app', 'VERSION'), 'utf8')).toBe('0.9.0\n');
  });

  it('takes the root from OTA_ROOT and refuses a source without manifest or with links', async () => {
    expect((await script('create_factory_version.sh', [source], { OTA_ROOT: root })).code).toBe(0);
    expect((await stat(join(root, 'factory'))).isDirectory()).toBe(true);

    const other = join(work, 'other');
    await mkdir(join(other, 'app'), { recursive: true });
    expect(await script('create_factory_version.sh', [join(work, 'r2'), other])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('has no manifest.json') as unknown,
    });
    await writeFile(join(other, 'manifest.json'), '{}');
    await symlink('/etc/passwd', join(other, 'app', 'link'));
    expect(await script('create_factory_version.sh', [join(work, 'r2'), other])).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('symbolic links') as unknown,
    });
    expect(await script('create_factory_version.sh', [])).toMatchObject({ code: 2 });
  });
});

describe('setup_symlinks.sh', () => {
  it('creates versions/ and current -> factory, and leaves an existing current alone', async () => {
    await script('create_factory_version.sh', [root, source]);
    expect(await script('setup_symlinks.sh', [root])).toMatchObject({ code: 0 });
    expect(await readlink(join(root, 'current'))).toBe('factory');
    expect(await readLinks(root)).toEqual({ current: 'factory', previous: null, factory: true, others: [] });

    await mkdir(join(root, 'versions', '1.0.0'));
    await writeFile(join(root, 'versions', '1.0.0', 'manifest.json'), '{}');
    await switchCurrent(root, '1.0.0');
    expect(await script('setup_symlinks.sh', [root])).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('exists -> versions/1.0.0') as unknown,
    });
    expect(await readlink(join(root, 'current'))).toBe('versions/1.0.0');
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
    expect(result.stdout).toContain('OK   factory/ is read-only');
    expect(result.stdout).toContain('OK   current -> factory');
    expect(result.stdout).toContain('verify_setup: OK');
    expect(result.stdout).not.toContain('FAIL');
  });

  it('names what is wrong and exits 1', async () => {
    await setUp();
    await chmod(join(root, 'factory', 'app', 'VERSION'), 0o644);
    await chmod(join(root, 'factory', 'app'), 0o755);
    await rm(join(root, 'current'));
    await symlink('versions/9.9.9', join(root, 'current'));
    await symlink('/etc', join(root, 'previous'));

    const result = await script('verify_setup.sh', [], { OTA_ROOT: root });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`FAIL factory/ has files not 0444/0555: ${root}/factory/app/VERSION`);
    expect(result.stdout).toContain(`FAIL factory/ has directories not 0555: ${root}/factory/app`);
    expect(result.stdout).toContain('FAIL current -> versions/9.9.9 does not resolve');
    expect(result.stdout).toContain('FAIL previous -> /etc points outside');
    expect(result.stdout).toContain('verify_setup: 4 problem(s)');
  });

  it('fails on a missing root', async () => {
    expect(await script('verify_setup.sh', [join(work, 'nowhere')])).toMatchObject({
      code: 1,
      stdout: expect.stringContaining('does not exist') as unknown,
    });
  });
});
