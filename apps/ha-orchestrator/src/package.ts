// The upgrade package: what an operator uploads to POST /api/v1/upgrade/trigger.
//
// A ZIP archive holding `manifest.json` at its root and the files it names:
//
//   {
//     "version": "2.4.0",                       // the version the pair runs afterwards
//     "jar": "app.jar",                         // the application jar installed on both nodes
//     "jarSha256": "<64 hex>",                  // its SHA-256
//     "schemaScripts": [                        // SQL run on the primary database, in this order
//       { "path": "sql/001_add_column.sql", "sha256": "<64 hex>",
//         "rollback": { "path": "sql/001_add_column.rollback.sql", "sha256": "<64 hex>" } }
//     ],
//     "minFromVersion": "2.3.0"                 // optional: the oldest version this upgrade starts from
//   }
//
// Uploaded with a detached ed25519 signature over the exact bytes of the ZIP (base64), checked
// against the configured public keys before the archive is opened. Nothing in the archive is
// trusted: entry names, types and sizes are checked from the central directory before anything is
// written, inflated bytes are counted while streaming (a zip bomb declares small sizes), and every
// file the manifest names must match its SHA-256. Every schema script carries the script that undoes
// it (docs/ha-orchestrator/safety.md): a failed upgrade runs the rollbacks, newest first,
// instead of restoring the live database from a dump, so no write made meanwhile is lost. A package
// with a schema script and no rollback is refused (ROLLBACK_SCRIPT_MISSING).
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, open, readFile, readdir } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UpgradeError, isUpgradeError, unsafePackagePathReason, type ErrorCode } from '@upgrade/core';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import type { SchemaScript, UpgradePackage } from './ports.js';

export const MANIFEST_FILE = 'manifest.json';
const MAX_MANIFEST_BYTES = 64 * 1024;
/** Rollback scripts up to this size are kept in the task's journal as well as in WORK_DIR. */
export const MAX_JOURNALLED_SCRIPT_BYTES = 1024 * 1024;
const SHA256 = /^[0-9a-f]{64}$/;
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;

/**
 * Why a package was refused: stable strings in the error's `details.reason`, for clients and
 * runbooks (the envelope's `code` is VALIDATION_FAILED, CHECKSUM_MISMATCH or SIGNATURE_INVALID).
 */
export const PACKAGE_REJECTIONS = [
  'NOT_MULTIPART',
  'PACKAGE_MISSING',
  'SIGNATURE_MISSING',
  'UNEXPECTED_FIELD',
  'SIGNATURE_MALFORMED',
  'SIGNATURE_MISMATCH',
  'NOT_A_ZIP',
  'UNSAFE_ENTRY',
  'TOO_LARGE',
  'MANIFEST_MISSING',
  'MANIFEST_INVALID',
  'FILE_MISSING',
  'CHECKSUM_MISMATCH',
  'ROLLBACK_SCRIPT_MISSING',
  'VERSION_TOO_OLD',
] as const;
export type PackageRejection = (typeof PACKAGE_REJECTIONS)[number];

/** The manifest as validated. */
export interface PackageManifest {
  version: string;
  jar: string;
  jarSha256: string;
  schemaScripts: { path: string; sha256: string; rollback: { path: string; sha256: string } }[];
  minFromVersion: string | null;
}

/** Bounds on what a package may unpack to; checked on declared sizes and on inflated bytes. */
export interface UnpackLimits {
  maxEntries: number;
  maxEntryBytes: number;
  maxTotalBytes: number;
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = {
  maxEntries: 1_000,
  maxEntryBytes: 1024 * 1024 * 1024,
  maxTotalBytes: 2 * 1024 * 1024 * 1024,
};

/** A refused package: 400 (or 403 for signatures) with a stable `details.reason`. */
export function packageError(
  reason: PackageRejection,
  message: string,
  options: { code?: ErrorCode; cause?: unknown; details?: Record<string, unknown> } = {},
): UpgradeError {
  return new UpgradeError(options.code ?? 'VALIDATION_FAILED', message, {
    details: { reason, ...options.details },
    ...(options.cause === undefined ? {} : { cause: options.cause }),
  });
}

// ---------------------------------------------------------------------------------------------
// Signatures

/**
 * Loads ed25519 public keys: every `*.pem` file of `dir`, plus PEM blocks in `pems` (concatenated
 * `-----BEGIN PUBLIC KEY-----` blocks). Throws CONFIG_INVALID naming a file that is not an ed25519 key.
 */
export async function loadPublicKeys(options: { dir?: string; pems?: string }): Promise<KeyObject[]> {
  const keys: KeyObject[] = [];
  if (options.dir !== undefined) {
    let names: string[];
    try {
      names = (await readdir(options.dir)).filter((n) => n.endsWith('.pem')).sort();
    } catch (error) {
      throw new UpgradeError('CONFIG_INVALID', `cannot read the signing key directory ${options.dir}`, {
        cause: error,
      });
    }
    for (const name of names)
      keys.push(...parsePublicKeys(await readFile(join(options.dir, name), 'utf8'), join(options.dir, name)));
  }
  if (options.pems !== undefined) keys.push(...parsePublicKeys(options.pems, 'SIGNING_PUBLIC_KEYS'));
  return keys;
}

/** Parses every PEM public key block of `text`; `source` names it in errors. */
export function parsePublicKeys(text: string, source: string): KeyObject[] {
  const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
  if (blocks.length === 0)
    throw new UpgradeError('CONFIG_INVALID', `${source} holds no "BEGIN PUBLIC KEY" PEM block`);
  return blocks.map((pem) => {
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch (error) {
      throw new UpgradeError('CONFIG_INVALID', `${source} holds a PEM block that is not a public key`, {
        cause: error,
      });
    }
    if (key.asymmetricKeyType !== 'ed25519')
      throw new UpgradeError(
        'CONFIG_INVALID',
        `${source} holds a ${key.asymmetricKeyType ?? 'unknown'} key; packages are signed with ed25519`,
      );
    return key;
  });
}

/** Decodes the `signature` field: base64 of the 64 signature bytes. */
export function decodeSignature(value: string): Buffer {
  const text = value.trim();
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : Buffer.alloc(0);
  if (bytes.length !== 64)
    throw packageError(
      'SIGNATURE_MALFORMED',
      'the signature field must hold the base64 of a 64-byte ed25519 signature',
    );
  return bytes;
}

/** Throws SIGNATURE_INVALID (403) unless one of `keys` verifies `signature` over the file's bytes. */
export async function verifyPackageSignature(
  packagePath: string,
  signature: Buffer,
  keys: readonly KeyObject[],
): Promise<void> {
  // ed25519 signs the message itself (no pre-hash), so the whole package is read once here;
  // MAX_PACKAGE_BYTES bounds it.
  const bytes = await readFile(packagePath);
  if (!keys.some((key) => verify(null, bytes, key, signature)))
    throw packageError(
      'SIGNATURE_MISMATCH',
      'the package signature does not verify against any configured signing key; sign the exact ZIP you upload',
      { code: 'SIGNATURE_INVALID' },
    );
}

// ---------------------------------------------------------------------------------------------
// Manifest

/** Validates manifest.json's text strictly: unknown fields are refused, paths must be safe. */
export function parsePackageManifest(text: string): PackageManifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalidManifest('is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalidManifest('must be a JSON object');
  const m = value as Record<string, unknown>;
  const allowed = new Set(['version', 'jar', 'jarSha256', 'schemaScripts', 'minFromVersion']);
  for (const key of Object.keys(m))
    if (!allowed.has(key)) throw invalidManifest(`has an unknown field "${key}"`);
  const version = versionField(m.version, 'version');
  const jar = pathField(m.jar, 'jar');
  if (!jar.endsWith('.jar')) throw invalidManifest(`jar "${jar}" must name a .jar file`);
  const jarSha256 = shaField(m.jarSha256, 'jarSha256');
  if (!Array.isArray(m.schemaScripts)) throw invalidManifest('schemaScripts must be an array (may be empty)');
  const schemaScripts = m.schemaScripts.map((s: unknown, i) => {
    const at = `schemaScripts[${i}]`;
    if (typeof s !== 'object' || s === null || Array.isArray(s))
      throw invalidManifest(`${at} must be an object {path, sha256}`);
    const script = s as Record<string, unknown>;
    for (const key of Object.keys(script))
      if (key !== 'path' && key !== 'sha256' && key !== 'rollback')
        throw invalidManifest(`${at} has an unknown field "${key}"`);
    const path = pathField(script.path, `${at}.path`);
    if (!path.endsWith('.sql')) throw invalidManifest(`${at}.path "${path}" must name a .sql file`);
    const sha256 = shaField(script.sha256, `${at}.sha256`);
    if (script.rollback === undefined || script.rollback === null)
      throw packageError(
        'ROLLBACK_SCRIPT_MISSING',
        `${MANIFEST_FILE} ${at} (${path}) has no rollback script; every schema change needs the script that undoes it ({"rollback": {"path", "sha256"}}), see the schema-change rule for package authors`,
      );
    const r = script.rollback;
    if (typeof r !== 'object' || Array.isArray(r))
      throw invalidManifest(`${at}.rollback must be an object {path, sha256}`);
    const rb = r as Record<string, unknown>;
    for (const key of Object.keys(rb))
      if (key !== 'path' && key !== 'sha256')
        throw invalidManifest(`${at}.rollback has an unknown field "${key}"`);
    const rollbackPath = pathField(rb.path, `${at}.rollback.path`);
    if (!rollbackPath.endsWith('.sql'))
      throw invalidManifest(`${at}.rollback.path "${rollbackPath}" must name a .sql file`);
    return {
      path,
      sha256,
      rollback: { path: rollbackPath, sha256: shaField(rb.sha256, `${at}.rollback.sha256`) },
    };
  });
  const paths = [jar, ...schemaScripts.flatMap((s) => [s.path, s.rollback.path])];
  if (new Set(paths).size !== paths.length) throw invalidManifest('names the same file twice');
  const minFromVersion =
    m.minFromVersion === undefined || m.minFromVersion === null
      ? null
      : versionField(m.minFromVersion, 'minFromVersion');
  return { version, jar, jarSha256, schemaScripts, minFromVersion };
}

function versionField(value: unknown, at: string): string {
  if (typeof value !== 'string' || !VERSION.test(value))
    throw invalidManifest(`${at} must be a version string such as "2.4.0"`);
  return value;
}

function shaField(value: unknown, at: string): string {
  if (typeof value !== 'string' || !SHA256.test(value))
    throw invalidManifest(`${at} must be a SHA-256 as 64 lowercase hex characters`);
  return value;
}

function pathField(value: unknown, at: string): string {
  if (typeof value !== 'string') throw invalidManifest(`${at} must be a relative file path in the package`);
  const reason = unsafePackagePathReason(value);
  if (reason !== null) throw invalidManifest(`${at} "${value}" is refused: ${reason}`);
  if (value.endsWith('/')) throw invalidManifest(`${at} "${value}" names a directory`);
  return value;
}

function invalidManifest(problem: string): UpgradeError {
  return packageError('MANIFEST_INVALID', `${MANIFEST_FILE} ${problem}`);
}

/**
 * Compares dotted versions numerically segment by segment (`2.10.0` > `2.9.1`); a non-numeric
 * segment compares as text.
 */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/);
  const pb = b.split(/[.+-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '0';
    const y = pb[i] ?? '0';
    const nx = Number(x);
    const ny = Number(y);
    const diff = Number.isInteger(nx) && Number.isInteger(ny) ? nx - ny : x < y ? -1 : x > y ? 1 : 0;
    if (diff !== 0) return diff < 0 ? -1 : 1;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Unpacking

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

interface PackageEntry {
  name: string;
  isDir: boolean;
  entry: Entry;
}

/** What `unpackUpgradePackage` wrote. */
export interface UnpackedPackage {
  manifest: PackageManifest;
  /** Where the files are. */
  dir: string;
  /** SHA-256 of every unpacked file, by entry name. */
  sha256: Map<string, string>;
}

/**
 * Unpacks the ZIP at `zipPath` into `destDir` (which must not exist) and checks the manifest and
 * every file it names. A bad package throws VALIDATION_FAILED or CHECKSUM_MISMATCH with a stable
 * `details.reason`; the caller removes `destDir` on failure.
 */
export async function unpackUpgradePackage(
  zipPath: string,
  destDir: string,
  limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
): Promise<UnpackedPackage> {
  const zip = await openZip(zipPath);
  try {
    if (zip.entryCount > limits.maxEntries)
      throw packageError(
        'TOO_LARGE',
        `package has ${zip.entryCount} entries, more than ${limits.maxEntries}`,
      );
    const entries = await listEntries(zip, limits);
    const manifestEntry = entries.find((e) => e.name === MANIFEST_FILE && !e.isDir);
    if (manifestEntry === undefined)
      throw packageError('MANIFEST_MISSING', `package has no ${MANIFEST_FILE} at its root`);
    if (manifestEntry.entry.uncompressedSize > MAX_MANIFEST_BYTES)
      throw invalidManifest(`is larger than ${MAX_MANIFEST_BYTES} bytes`);
    const manifest = parsePackageManifest(await readEntryText(zip, manifestEntry));
    const names = new Map(entries.filter((e) => !e.isDir).map((e) => [e.name, e]));
    for (const path of [manifest.jar, ...manifest.schemaScripts.flatMap((s) => [s.path, s.rollback.path])]) {
      if (!names.has(path))
        throw packageError('FILE_MISSING', `${MANIFEST_FILE} names "${path}", which is not in the package`);
    }
    await mkdir(destDir, { recursive: false, mode: 0o700 });
    const sha256 = await extractAll(zip, entries, destDir, limits);
    checkSha(manifest.jar, manifest.jarSha256, sha256);
    for (const script of manifest.schemaScripts) {
      checkSha(script.path, script.sha256, sha256);
      checkSha(script.rollback.path, script.rollback.sha256, sha256);
    }
    return { manifest, dir: destDir, sha256 };
  } finally {
    zip.close();
  }
}

/** The UpgradePackage the flow gets from an unpacked upload. */
export function toUpgradePackage(
  unpacked: UnpackedPackage,
  packageSha256: string,
  workDir: string,
): UpgradePackage {
  const { manifest, dir } = unpacked;
  return {
    version: manifest.version,
    jarPath: join(dir, manifest.jar),
    jarSha256: manifest.jarSha256,
    schemaScripts: manifest.schemaScripts.map((s) => ({
      path: join(dir, s.path),
      sha256: s.sha256,
      rollback: rollbackScript(join(dir, s.rollback.path), s.rollback.sha256),
    })),
    packageSha256,
    workDir,
  };
}

/** A rollback script with its text when small enough to keep in the task's journal. */
function rollbackScript(path: string, sha256: string): SchemaScript['rollback'] {
  if (statSync(path).size > MAX_JOURNALLED_SCRIPT_BYTES) return { path, sha256 };
  return { path, sha256, content: readFileSync(path, 'utf8') };
}

function checkSha(path: string, expected: string, actual: ReadonlyMap<string, string>): void {
  const got = actual.get(path);
  if (got !== expected)
    throw packageError(
      'CHECKSUM_MISMATCH',
      `"${path}" has SHA-256 ${got ?? 'unknown'}, but ${MANIFEST_FILE} says ${expected}; rebuild the package`,
      { code: 'CHECKSUM_MISMATCH', details: { path } },
    );
}

async function openZip(zipPath: string): Promise<ZipFile> {
  try {
    return await new Promise<ZipFile>((resolvePromise, reject) =>
      yauzl.open(
        zipPath,
        { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true },
        (error, zip) =>
          error == null && zip !== undefined ? resolvePromise(zip) : reject(error ?? new Error('no zip')),
      ),
    );
  } catch (error) {
    throw packageError('NOT_A_ZIP', `package cannot be read as a ZIP archive (${message(error)})`, {
      cause: error,
    });
  }
}

async function listEntries(zip: ZipFile, limits: UnpackLimits): Promise<PackageEntry[]> {
  const entries: PackageEntry[] = [];
  const seen = new Set<string>();
  let declaredTotal = 0;
  await new Promise<void>((resolvePromise, reject) => {
    const fail = (error: unknown): void => {
      zip.removeAllListeners('entry');
      reject(
        isUpgradeError(error)
          ? error
          : packageError('NOT_A_ZIP', `package has a damaged central directory (${message(error)})`),
      );
    };
    zip.on('error', fail);
    zip.on('end', () => resolvePromise());
    zip.on('entry', (entry: Entry) => {
      try {
        const name = yauzl.getFileNameLowLevel(
          entry.generalPurposeBitFlag,
          entry.fileNameRaw,
          entry.extraFields,
          true,
        );
        const at = `package entry "${name}"`;
        const reason = unsafePackagePathReason(name);
        if (reason !== null) throw packageError('UNSAFE_ENTRY', `${at} is refused: ${reason}`);
        const type = unixType(entry);
        if (type === S_IFLNK)
          throw packageError('UNSAFE_ENTRY', `${at} is a symbolic link; links are not allowed`);
        const isDir = name.endsWith('/') || type === S_IFDIR;
        if (type !== 0 && type !== S_IFREG && type !== S_IFDIR)
          throw packageError('UNSAFE_ENTRY', `${at} is a special file; only files and directories`);
        if (entry.isEncrypted()) throw packageError('UNSAFE_ENTRY', `${at} is encrypted`);
        if (!isDir && !entry.canDecodeFileData())
          throw packageError(
            'NOT_A_ZIP',
            `${at} uses unsupported compression method ${entry.compressionMethod}`,
          );
        const key = name.replace(/\/$/, '');
        if (seen.has(key)) throw packageError('UNSAFE_ENTRY', `${at} appears more than once`);
        seen.add(key);
        if (entry.uncompressedSize > limits.maxEntryBytes)
          throw packageError(
            'TOO_LARGE',
            `${at} is ${entry.uncompressedSize} bytes, more than ${limits.maxEntryBytes}`,
          );
        declaredTotal += entry.uncompressedSize;
        if (declaredTotal > limits.maxTotalBytes)
          throw packageError('TOO_LARGE', `package unpacks to more than ${limits.maxTotalBytes} bytes`);
        entries.push({ name: key, isDir, entry });
        zip.readEntry();
      } catch (error) {
        fail(error);
      }
    });
    zip.readEntry();
  });
  return entries;
}

function openEntry(zip: ZipFile, entry: Entry): Promise<NodeJS.ReadableStream> {
  return new Promise((resolvePromise, reject) =>
    zip.openReadStream(entry, (error, stream) =>
      error == null && stream !== undefined
        ? resolvePromise(stream)
        : reject(error ?? new Error('no stream')),
    ),
  );
}

async function readEntryText(zip: ZipFile, item: PackageEntry): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of await openEntry(zip, item.entry)) {
      size += (chunk as Buffer).length;
      if (size > MAX_MANIFEST_BYTES) throw invalidManifest(`is larger than ${MAX_MANIFEST_BYTES} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if (isUpgradeError(error)) throw error;
    throw packageError('NOT_A_ZIP', `package entry "${item.name}" cannot be read (${message(error)})`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function extractAll(
  zip: ZipFile,
  entries: readonly PackageEntry[],
  destDir: string,
  limits: UnpackLimits,
): Promise<Map<string, string>> {
  const budget = { total: 0 };
  const sums = new Map<string, string>();
  const root = resolve(destDir);
  for (const item of entries) {
    const target = resolve(root, item.name);
    // Names were checked already; this is the belt to those braces.
    if (!target.startsWith(root + sep))
      throw packageError(
        'UNSAFE_ENTRY',
        `package entry "${item.name}" resolves outside the unpack directory`,
      );
    if (item.isDir) {
      await mkdir(target, { recursive: true, mode: 0o700 });
      continue;
    }
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    const hash = createHash('sha256');
    let entryBytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        entryBytes += chunk.length;
        budget.total += chunk.length;
        if (entryBytes > limits.maxEntryBytes)
          callback(
            packageError(
              'TOO_LARGE',
              `package entry "${item.name}" inflates past ${limits.maxEntryBytes} bytes`,
            ),
          );
        else if (budget.total > limits.maxTotalBytes)
          callback(packageError('TOO_LARGE', `package unpacks to more than ${limits.maxTotalBytes} bytes`));
        else {
          hash.update(chunk);
          callback(null, chunk);
        }
      },
    });
    const file = await open(target, 'wx', 0o600);
    try {
      await pipeline(await openEntry(zip, item.entry), counter, fileSink(file));
    } catch (error) {
      if (isUpgradeError(error)) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR')
        throw packageError('UNSAFE_ENTRY', `package entry "${item.name}" collides with another entry`);
      if ((error as NodeJS.ErrnoException).syscall !== undefined)
        throw new UpgradeError('INTERNAL', `could not write the unpacked package (${code ?? 'error'})`, {
          cause: error,
        });
      throw packageError('NOT_A_ZIP', `package entry "${item.name}" is damaged (${message(error)})`);
    } finally {
      await file.close();
    }
    sums.set(item.name, hash.digest('hex'));
  }
  return sums;
}

function fileSink(file: Awaited<ReturnType<typeof open>>): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback: (error?: Error | null) => void) {
      writeAll(file, chunk).then(
        () => callback(),
        (error: Error) => callback(error),
      );
    },
  });
}

async function writeAll(file: Awaited<ReturnType<typeof open>>, chunk: Buffer): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

function unixType(entry: Entry): number {
  const madeByUnix = entry.versionMadeBy >> 8 === 3;
  return madeByUnix ? (entry.externalFileAttributes >>> 16) & S_IFMT : 0;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
