// Unpacks an update ZIP into `versions/<version>/` without ever trusting it: names, types, sizes and
// the manifest are checked before anything is written, inflated bytes are counted while streaming
// (a zip bomb declares small sizes), and the result only appears under its final name by a rename
// after every byte and directory is fsync'd, so a crash leaves a temp dir, never half a version.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { inflateRawSync } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { UpgradeError, abortError, isUpgradeError, unsafePackagePathReason } from '@upgrade/core';
import type * as Yauzl from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';
import { diskFullError, ensureFreeSpace } from './disk-space.js';
import { MANIFEST_FILE, MAX_MANIFEST_BYTES, manifestModes, parseManifest } from './manifest.js';
import type { Manifest } from './ports.js';
import { syncDir } from './state-file.js';

/**
 * yauzl, loaded on the first unpack and through require: an ESM import of this CommonJS package
 * makes Node scan its source for exports at start (cjs-module-lexer, hot enough to be optimised),
 * which cost the idle service ~7 MiB of compiler code and memory it never needed until a deploy.
 */
let yauzlModule: typeof Yauzl | undefined;
function loadYauzl(): typeof Yauzl {
  yauzlModule ??= createRequire(import.meta.url)('yauzl') as typeof Yauzl;
  return yauzlModule;
}

/** Bounds on what a package may unpack to; checked on declared sizes and on inflated bytes. */
export interface UnpackLimits {
  maxEntries: number;
  maxEntryBytes: number;
  maxTotalBytes: number;
}

/** Generous for a printer's software, small enough that a hostile package cannot fill the disk. */
export const DEFAULT_UNPACK_LIMITS: UnpackLimits = {
  maxEntries: 20_000,
  maxEntryBytes: 512 * 1024 * 1024,
  maxTotalBytes: 2 * 1024 * 1024 * 1024,
};

/** Prefix of the temp dir an unpack writes into, beside the destination; stale ones are crash leftovers. */
export const UNPACK_TEMP_PREFIX = '.unpack-';
/** Prefix of a directory being deleted; stale ones are crash leftovers. */
export const TRASH_PREFIX = '.trash-';

/** Options of `unpackPackage`. */
export interface UnpackOptions {
  /** The requested version: the manifest must declare exactly this. */
  version: string;
  /** Replace `destDir` when it exists (it must not be in use). Default false: CONFLICT. */
  replace?: boolean;
  signal?: AbortSignal;
  /** Bytes written so far and the declared total, after every chunk. */
  onProgress?(written: number, total: number): void;
}

/** What `unpackPackage` installed. */
export interface UnpackResult {
  dir: string;
  manifest: Manifest;
  files: number;
  bytes: number;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const DEFAULT_FILE_MODE = 0o644;
const DIR_MODE = 0o755;

interface PackageEntry {
  name: string;
  isDir: boolean;
  entry: Entry;
}

/**
 * Unpacks the ZIP at `zipPath` into `destDir` (normally `<root>/versions/<version>`), applying the
 * manifest's file modes. A bad package throws VALIDATION_FAILED naming the entry and leaves nothing
 * behind; a local failure (disk full) throws DEPLOYMENT_FAILED.
 *
 * @example await unpackPackage(pkg.path, versionDir(root, '1.4.2'), DEFAULT_UNPACK_LIMITS, { version: '1.4.2' })
 */
export async function unpackPackage(
  zipPath: string,
  destDir: string,
  limits: UnpackLimits,
  options: UnpackOptions,
): Promise<UnpackResult> {
  if (options.signal?.aborted) throw abortError(options.signal);
  const zip = await openZip(zipPath);
  try {
    if (zip.entryCount > limits.maxEntries)
      throw bad(`has ${zip.entryCount} entries, more than the limit of ${limits.maxEntries}`);
    const entries = await listEntries(zip, limits);
    const manifest = await readManifest(zip, entries, options.version);
    const parent = dirname(destDir);
    await mkdir(parent, { recursive: true });
    // The declared inflated size (bounded by the limits, enforced while inflating) plus a block per
    // entry for rounding and a little for the directories: checked before a byte is written.
    const declared = entries.reduce((sum, e) => sum + e.entry.uncompressedSize, 0);
    await ensureFreeSpace(
      parent,
      declared + entries.length * 4096 + UNPACK_SPACE_MARGIN,
      `unpacking ${options.version} (${declared} bytes inflated)`,
    );
    const temp = join(parent, `${UNPACK_TEMP_PREFIX}${basename(destDir)}-${randomBytes(4).toString('hex')}`);
    try {
      await mkdir(temp, { mode: DIR_MODE });
      const bytes = await extractAll(zipPath, zip, entries, temp, manifestModes(manifest), limits, options);
      await moveIntoPlace(temp, destDir, options.replace ?? false);
      return { dir: destDir, manifest, files: entries.filter((e) => !e.isDir).length, bytes };
    } catch (error) {
      await rm(temp, { recursive: true, force: true });
      throw error;
    }
  } finally {
    zip.close();
  }
}

/** Free space required beyond the inflated bytes of a package. */
const UNPACK_SPACE_MARGIN = 1024 * 1024;

async function openZip(zipPath: string): Promise<ZipFile> {
  try {
    // decodeStrings off: names are decoded and checked below, with our own messages, instead of
    // yauzl failing the whole archive on the first odd name.
    const zip = await loadYauzl().openPromise(zipPath, {
      lazyEntries: true,
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: true,
    });
    // Reads report their failures through their own promises and iterators; an 'error' the
    // archive emits outside of them (its file reader failing between reads or at close) has no
    // reader left to tell and must not end the process: the next read fails on its own.
    zip.on('error', () => undefined);
    return zip;
  } catch (error) {
    throw bad(`cannot be read as a ZIP archive (${message(error)})`, error);
  }
}

/** Reads the central directory only (no file data) and refuses anything unsafe before writing. */
async function listEntries(zip: ZipFile, limits: UnpackLimits): Promise<PackageEntry[]> {
  const entries: PackageEntry[] = [];
  const seen = new Set<string>();
  let declaredTotal = 0;
  try {
    for await (const entry of zip.eachEntry()) {
      const name = entryName(entry);
      const at = `entry "${name}"`;
      const reason = unsafePackagePathReason(name);
      if (reason !== null) throw bad(`${at} is refused: ${reason}`);
      const type = unixType(entry);
      if (type === S_IFLNK) throw bad(`${at} is a symbolic link; links are not allowed in a package`);
      const isDir = name.endsWith('/') || type === S_IFDIR;
      if (type !== 0 && type !== S_IFREG && type !== S_IFDIR)
        throw bad(`${at} is a special file (type 0o${type.toString(8)}); only files and directories`);
      if (entry.isEncrypted()) throw bad(`${at} is encrypted`);
      if (!isDir && !entry.canDecodeFileData())
        throw bad(`${at} uses unsupported compression method ${entry.compressionMethod}`);
      const key = name.replace(/\/$/, '');
      if (seen.has(key)) throw bad(`${at} appears more than once`);
      seen.add(key);
      if (entry.uncompressedSize > limits.maxEntryBytes)
        throw bad(`${at} is ${entry.uncompressedSize} bytes, more than the limit of ${limits.maxEntryBytes}`);
      declaredTotal += entry.uncompressedSize;
      if (declaredTotal > limits.maxTotalBytes)
        throw bad(`unpacks to more than the limit of ${limits.maxTotalBytes} bytes (at ${at})`);
      if (entries.length >= limits.maxEntries)
        throw bad(`has more than the limit of ${limits.maxEntries} entries`);
      entries.push({ name: key, isDir, entry });
    }
  } catch (error) {
    throw isUpgradeError(error) ? error : bad(`has a damaged central directory (${message(error)})`, error);
  }
  return entries;
}

async function readManifest(zip: ZipFile, entries: PackageEntry[], version: string): Promise<Manifest> {
  const found = entries.find((e) => e.name === MANIFEST_FILE && !e.isDir);
  if (found === undefined) throw bad(`has no ${MANIFEST_FILE} at its root`);
  if (found.entry.uncompressedSize > MAX_MANIFEST_BYTES)
    throw bad(`${MANIFEST_FILE} is larger than ${MAX_MANIFEST_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    // yauzl checks the inflated size against the declared one, which was bounded above.
    for await (const chunk of await zip.openReadStreamPromise(found.entry)) {
      size += (chunk as Buffer).length;
      if (size > MAX_MANIFEST_BYTES) throw bad(`${MANIFEST_FILE} is larger than ${MAX_MANIFEST_BYTES} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    throw isUpgradeError(error) ? error : bad(`entry "${MANIFEST_FILE}" cannot be read (${message(error)})`);
  }
  const manifest = parseManifest(Buffer.concat(chunks).toString('utf8'), version);
  const files = new Map(entries.map((e) => [e.name, e]));
  for (const file of manifest.modules.flatMap((m) => m.files)) {
    const entry = files.get(file.path);
    if (entry === undefined) throw bad(`${MANIFEST_FILE} lists "${file.path}", which is not in the package`);
    if (entry.isDir) throw bad(`${MANIFEST_FILE} lists "${file.path}", which is a directory in the package`);
  }
  return manifest;
}

/** Entries up to this size are read whole and inflated in one call; larger ones are streamed. */
const WHOLE_ENTRY_BYTES = 256 * 1024;
/** Entries written at the same time: enough to overlap the file system's round trips, few enough for memory. */
const ENTRY_CONCURRENCY = 8;

async function extractAll(
  zipPath: string,
  zip: ZipFile,
  entries: readonly PackageEntry[],
  temp: string,
  modes: ReadonlyMap<string, number>,
  limits: UnpackLimits,
  options: UnpackOptions,
): Promise<number> {
  const declared = entries.reduce((sum, e) => sum + e.entry.uncompressedSize, 0);
  const budget = { total: 0, max: limits.maxTotalBytes };
  const files: PackageEntry[] = [];
  const dirs = new Set<string>([temp]);
  // Every directory first, once, parents before children: no entry waits on a mkdir of its own.
  const wanted = new Set<string>();
  for (const item of entries) {
    // Names were checked already; this is the belt to those braces.
    if (!resolve(temp, item.name).startsWith(temp + sep))
      throw bad(`entry "${item.name}" resolves outside the version`);
    if (item.isDir) wanted.add(item.name);
    else {
      files.push(item);
      if (dirname(item.name) !== '.') wanted.add(dirname(item.name));
    }
  }
  for (const name of [...wanted].sort()) {
    try {
      await makeDirs(temp, name, dirs);
    } catch (error) {
      throw entryError(name, error, options.signal);
    }
  }
  const progress = (): void => options.onProgress?.(budget.total, declared);
  const source = await open(zipPath, 'r');
  try {
    await forEachLimited(files, ENTRY_CONCURRENCY, options.signal, async (item) => {
      try {
        await extractFile(zip, source, item, join(temp, item.name), modes, limits, budget, options, progress);
      } catch (error) {
        throw entryError(item.name, error, options.signal);
      }
      progress();
    });
  } finally {
    await source.close();
  }
  // Each file was fsync'd before it was closed; the directories make the names durable. All of it
  // is on disk before the rename that makes the version appear.
  await forEachLimited([...dirs], ENTRY_CONCURRENCY, options.signal, (dir) => syncDir(dir, DIR_MODE));
  return budget.total;
}

/** One file entry to `target`, durable (fsync'd) with its mode before this resolves. */
async function extractFile(
  zip: ZipFile,
  source: FileHandle,
  item: PackageEntry,
  target: string,
  modes: ReadonlyMap<string, number>,
  limits: UnpackLimits,
  budget: { total: number; max: number },
  options: UnpackOptions,
  progress: () => void,
): Promise<void> {
  const small =
    item.entry.uncompressedSize <= WHOLE_ENTRY_BYTES && item.entry.compressedSize <= WHOLE_ENTRY_BYTES;
  // Read before the file is created, so a damaged entry leaves no file behind it.
  const data = small ? await readWholeEntry(zip, source, item) : null;
  const file = await open(target, 'wx', 0o600);
  try {
    // fchmod before the data: the fsync below then makes content and mode durable together.
    await file.chmod(modes.get(item.name) ?? DEFAULT_FILE_MODE);
    if (data !== null) {
      countBytes(item.name, data.length, data.length, limits.maxEntryBytes, budget);
      await writeAll(file, data);
    } else {
      await pipeline(
        await zip.openReadStreamPromise(item.entry),
        byteCounter(item.name, limits.maxEntryBytes, budget, progress),
        fileSink(file),
        options.signal === undefined ? {} : { signal: options.signal },
      );
    }
    await file.sync();
  } finally {
    await file.close();
  }
}

/**
 * A small entry's bytes, inflated in one call. The output is bounded by the declared size (checked
 * against the limits before anything was written) and must match it exactly: a zip bomb that lies
 * about its size is caught here as it is by the streaming path.
 */
async function readWholeEntry(zip: ZipFile, source: FileHandle, item: PackageEntry): Promise<Buffer> {
  const { entry } = item;
  const { fileDataStart } = await zip.readLocalFileHeaderPromise(entry, { minimal: true });
  const raw = Buffer.allocUnsafe(entry.compressedSize);
  for (let done = 0; done < raw.length;) {
    const { bytesRead } = await source.read(raw, done, raw.length - done, fileDataStart + done);
    if (bytesRead === 0) throw bad(`entry "${item.name}" is cut short: the archive ends inside its data`);
    done += bytesRead;
  }
  let data: Buffer;
  if (entry.compressionMethod === 0) data = raw;
  else {
    try {
      data = inflateRawSync(raw, { maxOutputLength: entry.uncompressedSize + 1 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
        throw bad(`entry "${item.name}" inflates to more than its declared ${entry.uncompressedSize} bytes`);
      throw error;
    }
  }
  if (data.length !== entry.uncompressedSize)
    throw bad(
      `entry "${item.name}" holds ${data.length} bytes, its header declares ${entry.uncompressedSize}`,
    );
  return data;
}

/**
 * Runs `fn` over `items`, at most `limit` at a time, in order of start. The first failure stops new
 * starts; it is thrown once the running ones have settled, so nothing writes after this returns.
 */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const lane = async (): Promise<void> => {
    while (failure === null && next < items.length) {
      if (signal?.aborted) {
        failure = { error: abortError(signal) };
        return;
      }
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure !== null) throw (failure as { error: unknown }).error;
}

async function makeDirs(temp: string, relative: string, dirs: Set<string>): Promise<void> {
  if (relative === '.' || relative === '') return;
  let current = temp;
  for (const segment of relative.split('/')) {
    current = join(current, segment);
    if (dirs.has(current)) continue;
    await mkdir(current, { mode: DIR_MODE });
    dirs.add(current);
  }
}

/** Renames the finished temp dir to its final name; an old copy is moved aside first, then deleted. */
async function moveIntoPlace(temp: string, destDir: string, replace: boolean): Promise<void> {
  const parent = dirname(destDir);
  let trash: string | null = null;
  if (await exists(destDir)) {
    if (!replace)
      throw new UpgradeError('CONFLICT', `${destDir} already exists; remove it or deploy another version`);
    trash = join(parent, `${TRASH_PREFIX}${basename(destDir)}-${randomBytes(4).toString('hex')}`);
    await rename(destDir, trash);
  }
  await rename(temp, destDir);
  await syncDir(parent);
  if (trash !== null) await rm(trash, { recursive: true, force: true });
}

/**
 * Writes to an open FileHandle. (FileHandle.createWriteStream with autoClose off keeps a reference
 * that makes a later close() hang, and with it on we could not fsync before closing.)
 */
function fileSink(file: FileHandle): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback: (error?: Error | null) => void) {
      writeAll(file, chunk).then(() => callback(), callback);
    },
  });
}

async function writeAll(file: FileHandle, chunk: Buffer): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

/** Adds an entry's inflated bytes to its count and the shared total; fails past either limit. */
function countBytes(
  name: string,
  entryBytes: number,
  added: number,
  maxEntry: number,
  budget: { total: number; max: number },
): void {
  budget.total += added;
  if (entryBytes > maxEntry)
    throw bad(`entry "${name}" inflates to more than the limit of ${maxEntry} bytes`);
  if (budget.total > budget.max)
    throw bad(`unpacks to more than the limit of ${budget.max} bytes (at entry "${name}")`);
}

/** Counts a streamed entry's inflated bytes (see countBytes); fails the stream past either limit. */
function byteCounter(
  name: string,
  maxEntry: number,
  budget: { total: number; max: number },
  onChunk: () => void,
): Transform {
  let entryBytes = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      entryBytes += chunk.length;
      try {
        countBytes(name, entryBytes, chunk.length, maxEntry, budget);
      } catch (error) {
        callback(error as Error);
        return;
      }
      onChunk();
      callback(null, chunk);
    },
  });
}

function entryName(entry: Entry): string {
  // With decodeStrings off, yauzl leaves the raw bytes; this applies the UTF-8 flag and the
  // Info-ZIP Unicode path field exactly as yauzl would, with backslashes kept so they are refused.
  const raw = entry.fileNameRaw;
  return loadYauzl().getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, true);
}

/** The Unix file type from the external attributes, or 0 when the archiver did not record one. */
function unixType(entry: Entry): number {
  const madeByUnix = entry.versionMadeBy >> 8 === 3;
  return madeByUnix ? (entry.externalFileAttributes >>> 16) & S_IFMT : 0;
}

/** A bad package is VALIDATION_FAILED; the disk failing under us is DEPLOYMENT_FAILED. */
function entryError(name: string, error: unknown, signal: AbortSignal | undefined): UpgradeError {
  if (signal?.aborted) return abortError(signal);
  if (isUpgradeError(error)) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR')
    return bad(`entry "${name}" conflicts with another entry of the same path`, error);
  const full = diskFullError(error, `entry "${name}"`);
  if (full !== null) return full;
  if ((error as NodeJS.ErrnoException).syscall !== undefined)
    // Node's message starts with the code already: "EROFS: read-only file system, open '...'".
    return new UpgradeError(
      'DEPLOYMENT_FAILED',
      `could not write entry "${name}" (${message(error)}); check the file system`,
      { cause: error },
    );
  return bad(`entry "${name}" is damaged (${message(error)})`, error);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function bad(problem: string, cause?: unknown): UpgradeError {
  return new UpgradeError('VALIDATION_FAILED', `package ${problem}`, cause === undefined ? {} : { cause });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
