import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUpgradeError } from '@upgrade/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseManifest, parseMode } from '../src/manifest.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage, type UnpackLimits } from '../src/unpack.js';
import {
  appEntries,
  appManifest,
  patchBytes,
  patchDeclaredSize,
  writeZip,
  type ZipEntrySpec,
} from './package-fixtures.js';

const VERSION = '2.0.0';
const MiB = 1024 * 1024;
let work: string;
let versions: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'ota-unpack-'));
  versions = join(work, 'root', 'versions');
  await mkdir(versions, { recursive: true });
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const base = (): ZipEntrySpec[] => appEntries({ version: VERSION, unit: 'app.service', port: 8080 });

async function zipOf(entries: ZipEntrySpec[], patch?: [string, string]): Promise<string> {
  const path = join(work, `pkg-${Math.random().toString(36).slice(2)}.zip`);
  await writeZip(path, entries);
  if (patch !== undefined) await patchBytes(path, patch[0], patch[1]);
  return path;
}

function unpack(zip: string, limits: UnpackLimits = DEFAULT_UNPACK_LIMITS) {
  return unpackPackage(zip, join(versions, VERSION), limits, { version: VERSION });
}

/** The package is refused as VALIDATION_FAILED with `message`, and nothing is left in versions/. */
async function expectRefused(zip: string, message: RegExp, limits?: UnpackLimits): Promise<void> {
  const error: unknown = await unpack(zip, limits).then(
    () => null,
    (e: unknown) => e,
  );
  expect(isUpgradeError(error, 'VALIDATION_FAILED'), String(error)).toBe(true);
  expect((error as Error).message).toMatch(message);
  expect(await readdir(versions)).toEqual([]);
}

describe('unpackPackage', () => {
  it('unpacks a good package with the manifest modes, behind a rename', async () => {
    const zip = await zipOf([...base(), { name: 'docs/README', data: 'not in the manifest' }]);
    const result = await unpack(zip);

    expect(result.manifest.version).toBe(VERSION);
    expect(result.files).toBe(4);
    const dir = join(versions, VERSION);
    expect(await readFile(join(dir, 'app/VERSION'), 'utf8')).toBe(`${VERSION}\n`);
    expect((await stat(join(dir, 'app/bin/run.sh'))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(dir, 'app/VERSION'))).mode & 0o7777).toBe(0o644);
    expect((await stat(join(dir, 'docs/README'))).mode & 0o7777).toBe(0o644);
    expect((await stat(join(dir, 'app/bin'))).mode & 0o7777).toBe(0o755);
    expect(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'))).toMatchObject({
      version: VERSION,
    });
    expect(await readdir(versions)).toEqual([VERSION]); // no temp dir left beside it
  });

  it('unpacks many entries at once byte for byte: small ones whole, large ones streamed, stored or deflated', async () => {
    const large = Buffer.from(Array.from({ length: 700 * 1024 }, (_, i) => (i * 7919) % 251));
    const small = Array.from({ length: 60 }, (_, i) => ({
      name: `data/d${i % 6}/sub/f${i}.txt`,
      data: `file ${i}\n`.repeat(1 + i * 13),
      compress: i % 2 === 0,
    }));
    const entries: ZipEntrySpec[] = [
      ...base(),
      { name: 'empty/', dir: true },
      { name: 'data/zero.bin', data: '' },
      { name: 'data/large.bin', data: large },
      { name: 'data/large-stored.bin', data: large, compress: false },
      ...small,
    ];
    const zip = await zipOf(entries);
    const progress: [number, number][] = [];

    const result = await unpackPackage(zip, join(versions, VERSION), DEFAULT_UNPACK_LIMITS, {
      version: VERSION,
      onProgress: (written, total) => progress.push([written, total]),
    });

    const dir = join(versions, VERSION);
    expect(result.files).toBe(entries.filter((e) => e.dir !== true).length);
    expect((await readFile(join(dir, 'data/large.bin'))).equals(large)).toBe(true);
    expect((await readFile(join(dir, 'data/large-stored.bin'))).equals(large)).toBe(true);
    expect(await readFile(join(dir, 'data/zero.bin'), 'utf8')).toBe('');
    for (const e of small) expect(await readFile(join(dir, e.name), 'utf8')).toBe(e.data);
    expect((await stat(join(dir, 'empty'))).isDirectory()).toBe(true);
    expect(progress.at(-1)).toEqual([result.bytes, result.bytes]);
    expect(progress.map(([written]) => written)).toEqual(progress.map(([w]) => w).sort((a, b) => a - b));
    expect(await readdir(versions)).toEqual([VERSION]);
  });

  it('refuses to overwrite an existing version unless told to replace it', async () => {
    const zip = await zipOf(base());
    await unpack(zip);
    await expect(unpack(zip)).rejects.toMatchObject({ code: 'CONFLICT' });
    await unpackPackage(zip, join(versions, VERSION), DEFAULT_UNPACK_LIMITS, {
      version: VERSION,
      replace: true,
    });
    expect(await readdir(versions)).toEqual([VERSION]);
  });

  it.each([
    ['path traversal', 'xx/evil.txt', '../evil.txt', /"\.\.\/evil\.txt".*path traversal/],
    ['nested traversal', 'app/xx/xx/evil', 'app/../../evil', /path traversal/],
    ['an absolute path', 'xxxx/evil', '/etc/evil', /"\/etc\/evil".*absolute path/],
    ['a drive letter', 'xx/evil', 'C:/evil', /drive letter/],
    ['a backslash', 'appXevil', 'app\\evil', /backslash/],
  ])('refuses %s', async (_what, placeholder, name, message) => {
    const zip = await zipOf([...base(), { name: placeholder, data: 'owned' }], [placeholder, name]);
    await expectRefused(zip, message);
  });

  it('refuses a symbolic link entry', async () => {
    const zip = await zipOf([...base(), { name: 'app/link', data: '/etc/shadow', mode: 0o120777 }]);
    await expectRefused(zip, /"app\/link" is a symbolic link/);
  });

  it('refuses an entry declared larger than maxEntryBytes', async () => {
    const zip = await zipOf([...base(), { name: 'big.bin', data: Buffer.alloc(2 * MiB) }]);
    await expectRefused(zip, /"big\.bin" is 2097152 bytes, more than the limit of 1048576/, {
      ...DEFAULT_UNPACK_LIMITS,
      maxEntryBytes: MiB,
    });
  });

  it('refuses a zip bomb: small compressed, large in total', async () => {
    const bombs = [1, 2, 3].map((i) => ({ name: `bomb${i}.bin`, data: Buffer.alloc(8 * MiB) }));
    const zip = await zipOf([...base(), ...bombs]);
    expect((await stat(zip)).size).toBeLessThan(200 * 1024);
    await expectRefused(zip, /unpacks to more than the limit of 16777216 bytes/, {
      ...DEFAULT_UNPACK_LIMITS,
      maxTotalBytes: 16 * MiB,
    });
  });

  it('refuses a zip bomb that lies about its size, by counting inflated bytes', async () => {
    const zip = await zipOf([...base(), { name: 'liar.bin', data: Buffer.alloc(32 * MiB) }]);
    await patchDeclaredSize(zip, 'liar.bin', 1000);
    await expectRefused(zip, /liar\.bin/, {
      ...DEFAULT_UNPACK_LIMITS,
      maxEntryBytes: MiB,
      maxTotalBytes: MiB,
    });
  });

  it('refuses more entries than maxEntries before reading any', async () => {
    const many = Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, data: 'x' }));
    const zip = await zipOf([...base(), ...many]);
    await expectRefused(zip, /has 13 entries, more than the limit of 5/, {
      ...DEFAULT_UNPACK_LIMITS,
      maxEntries: 5,
    });
  });

  it('refuses duplicate entries', async () => {
    const zip = await zipOf([...base(), { name: 'app/x', data: '1' }, { name: 'app/x', data: '2' }]);
    await expectRefused(zip, /"app\/x" appears more than once/);
  });

  it('refuses a package without manifest.json', async () => {
    const zip = await zipOf(base().filter((e) => e.name !== 'manifest.json'));
    await expectRefused(zip, /has no manifest\.json/);
  });

  it.each([
    ['not JSON', '{"version": ', /manifest\.json: is not valid JSON/],
    [
      'another version',
      appManifest('9.9.9', 'app.service', 8080),
      /version is "9\.9\.9" but version "2\.0\.0"/,
    ],
    ['an unknown field', { ...appManifest(VERSION, 'a.service', 1), extra: 1 }, /unknown field\(s\) extra/],
    [
      'a file not in the package',
      {
        version: VERSION,
        modules: [{ name: 'm', files: [{ path: 'app/missing', mode: '0644' }], services: [] }],
      },
      /lists "app\/missing", which is not in the package/,
    ],
    [
      'a decimal mode',
      {
        version: VERSION,
        modules: [{ name: 'm', files: [{ path: 'app/VERSION', mode: 755 }], services: [] }],
      },
      /modules\[0\]\.files\[0\]\.mode 755 is not a file mode: write an octal string/,
    ],
    [
      'a bad unit',
      { version: VERSION, modules: [{ name: 'm', files: [], services: [{ unit: '--now' }] }] },
      /modules\[0\]\.services\[0\]\.unit "--now" is not a systemd unit name/,
    ],
  ])('refuses a manifest with %s', async (_what, manifest, message) => {
    const zip = await zipOf(appEntries({ version: VERSION, unit: 'app.service', port: 8080, manifest }));
    await expectRefused(zip, message);
  });

  it('refuses a file that is not a ZIP', async () => {
    const path = join(work, 'not.zip');
    await writeZip(path, base());
    await patchBytes(path, 'PK\u0005\u0006', 'XXXX'); // no end of central directory
    await expectRefused(path, /cannot be read as a ZIP archive/);
  });
});

describe('parseManifest', () => {
  it('reads modes as octal strings or numeric values', () => {
    expect(parseMode('0755')).toBe(0o755);
    expect(parseMode('644')).toBe(0o644);
    expect(parseMode('0o600')).toBe(0o600);
    expect(parseMode(0o755)).toBe(0o755);
    expect(parseMode('4755')).toBeNull(); // setuid
    expect(parseMode('abc')).toBeNull();
  });

  it('returns the validated manifest', () => {
    const manifest = parseManifest(JSON.stringify(appManifest('1.0.0', 'a.service', 80)), '1.0.0');
    expect(manifest.modules[0]?.files).toEqual([
      { path: 'app/VERSION', mode: 0o644 },
      { path: 'app/bin/run.sh', mode: 0o755 },
    ]);
    expect(manifest.modules[0]?.services).toEqual([
      { unit: 'a.service', healthUrl: 'http://127.0.0.1:80/health' },
    ]);
  });

  it('refuses the reserved version name and unsafe paths', () => {
    expect(() => parseManifest(JSON.stringify({ version: 'factory', modules: [] }), 'factory')).toThrow(
      /not a valid version/,
    );
    const traversal = {
      version: '1',
      modules: [{ name: 'm', files: [{ path: 'a/../b', mode: '0644' }], services: [] }],
    };
    expect(() => parseManifest(JSON.stringify(traversal), '1')).toThrow(/path traversal/);
  });
});
