// Builds update packages for the tests with yazl, plus the byte patches needed for hostile ones:
// yazl (rightly) refuses to write `../x` or absolute names, so those are written under a
// placeholder of the same length and patched in place afterwards.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import type { VerifiedPackage } from '../src/ports.js';

export interface ZipEntrySpec {
  name: string;
  data?: string | Buffer;
  dir?: boolean;
  /** Unix mode including the file type bits, e.g. 0o120777 for a symlink. */
  mode?: number;
  compress?: boolean;
}

/** Writes a ZIP with exactly these entries. */
export async function writeZip(path: string, entries: readonly ZipEntrySpec[]): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const e of entries) {
    if (e.dir === true) zip.addEmptyDirectory(e.name, e.mode === undefined ? {} : { mode: e.mode });
    else
      zip.addBuffer(Buffer.from(e.data ?? ''), e.name, {
        ...(e.mode === undefined ? {} : { mode: e.mode }),
        compress: e.compress ?? true,
      });
  }
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(path));
}

/** Replaces every occurrence of `from` by `to` (same byte length) in the file: names in both headers. */
export async function patchBytes(path: string, from: string, to: string): Promise<void> {
  const a = Buffer.from(from);
  const b = Buffer.from(to);
  if (a.length !== b.length) throw new Error('patchBytes needs strings of the same byte length');
  const data = await readFile(path);
  let at = data.indexOf(a);
  if (at < 0) throw new Error(`"${from}" not found in ${path}`);
  while (at >= 0) {
    b.copy(data, at);
    at = data.indexOf(a, at + a.length);
  }
  await writeFile(path, data);
}

/** Makes the central directory declare `size` inflated bytes for entry `name` (a lying zip bomb). */
export async function patchDeclaredSize(path: string, name: string, size: number): Promise<void> {
  const data = await readFile(path);
  const wanted = Buffer.from(name);
  const signature = Buffer.from([0x50, 0x4b, 0x01, 0x02]); // central directory file header
  for (let at = data.indexOf(signature); at >= 0; at = data.indexOf(signature, at + 1)) {
    const nameLength = data.readUInt16LE(at + 28);
    if (data.subarray(at + 46, at + 46 + nameLength).equals(wanted)) {
      data.writeUInt32LE(size, at + 24);
      await writeFile(path, data);
      return;
    }
  }
  throw new Error(`no central directory entry for ${name}`);
}

/** Options of an app package: one module `app` run by one unit with an HTTP health URL. */
export interface AppPackageOptions {
  version: string;
  unit: string;
  port: number;
  /** Ship a FAIL_HEALTH marker: the version's /health answers 503. */
  failHealth?: boolean;
  /** Ship a CRASH marker: the version's process exits at start. */
  crash?: boolean;
  /** Replace the manifest (an object is JSON-encoded, a string used as is). */
  manifest?: unknown;
  extra?: ZipEntrySpec[];
}

/** The manifest of an app package. */
export function appManifest(version: string, unit: string, port: number): Record<string, unknown> {
  return {
    version,
    modules: [
      {
        name: 'app',
        files: [
          { path: 'app/VERSION', mode: '0644' },
          { path: 'app/bin/run.sh', mode: '0755' },
        ],
        services: [{ unit, healthUrl: `http://127.0.0.1:${port}/health` }],
      },
    ],
  };
}

/** The entries of an app package, manifest first or not at all as the options say. */
export function appEntries(options: AppPackageOptions): ZipEntrySpec[] {
  const manifest = options.manifest ?? appManifest(options.version, options.unit, options.port);
  const entries: ZipEntrySpec[] = [
    { name: 'app/VERSION', data: `${options.version}\n` },
    { name: 'app/bin/run.sh', data: '#!/bin/sh\necho run\n' },
    { name: 'manifest.json', data: typeof manifest === 'string' ? manifest : JSON.stringify(manifest) },
  ];
  if (options.failHealth === true) entries.push({ name: 'app/FAIL_HEALTH', data: 'on purpose\n' });
  if (options.crash === true) entries.push({ name: 'app/CRASH', data: 'on purpose\n' });
  return [...entries, ...(options.extra ?? [])];
}

/** Writes `<dir>/<version>.zip` and returns it as the download half would hand it over. */
export async function writeAppPackage(dir: string, options: AppPackageOptions): Promise<VerifiedPackage> {
  const path = join(dir, `${options.version}-${Math.random().toString(36).slice(2, 8)}.zip`);
  await writeZip(path, appEntries(options));
  const data = await readFile(path);
  return {
    version: options.version,
    path,
    size: data.length,
    md5: createHash('md5').update(data).digest('hex'),
    sha256: createHash('sha256').update(data).digest('hex'),
  };
}

/**
 * The directories under `<root>/versions`, sorted: versions, the factory's, crash leftovers; not
 * the links `current`, `previous` and `factory` beside them.
 */
export async function versionDirsOf(root: string): Promise<string[]> {
  const entries = await readdir(join(root, 'versions'), { withFileTypes: true });
  return entries
    .filter((e) => !e.isSymbolicLink())
    .map((e) => e.name)
    .sort();
}
