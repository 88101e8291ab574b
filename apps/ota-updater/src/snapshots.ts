// Version snapshots under one root (default /opt/tope), all inside `versions/`:
//   versions/<version>/          one complete, unpacked version each
//   versions/current -> <v> | factory   what the services run (through their own links, e.g.
//                                        /usr/local/bin/device-api -> <root>/versions/current/bin/device-api)
//   versions/previous -> <v> | factory  what `current` pointed at before the last switch
//   versions/factory -> <v>             the read-only version the device shipped with (made by a script)
// `current -> factory` runs the factory version through its own link, so a rollback to the factory
// reads as such and the factory's directory is never mistaken for a deployed copy of its version.
// Links are relative so the root can be mounted elsewhere, and every change to them is a rename of
// a fresh temp link over the old one: a power cut leaves either the old or the new link, never none.
import { randomBytes } from 'node:crypto';
import { lstat, readFile, readdir, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { UpgradeError } from '@upgrade/core';
import { FACTORY, MANIFEST_FILE, isSnapshotName, parseManifest, versionOfSnapshot } from './manifest.js';
import type { Manifest } from './ports.js';
import { syncDir } from './state-file.js';
import { TRASH_PREFIX, UNPACK_TEMP_PREFIX } from './unpack.js';

/** Where the device keeps its versions unless configured otherwise. */
export const DEFAULT_ROOT = '/opt/tope';
/** Directory of unpacked versions and of the links to them, under the root. */
export const VERSIONS_DIR = 'versions';
/** The link the services run from. */
export const CURRENT_LINK = 'current';
/** The link to the version before the last switch. */
export const PREVIOUS_LINK = 'previous';

/** Temp links are dot-files: a version name never starts with a dot, so they cannot clash. */
const LINK_TEMP = '.tmp-';

/**
 * Where the links point: a version name, or `factory` (FACTORY) for `current`/`previous`. null when
 * the link is missing, dangling, or points somewhere that is neither a version nor the factory.
 */
export interface SnapshotLinks {
  current: string | null;
  previous: string | null;
  /** True when `versions/factory` points at a version directory. */
  factory: boolean;
  /** Versions no link points at (current, previous, the factory's), oldest (by mtime) first. */
  others: string[];
}

/** `<root>/versions`: the versions and the links to them. */
export function versionsDir(root: string): string {
  return join(root, VERSIONS_DIR);
}

/** `<root>/versions/<version>`. */
export function versionDir(root: string, version: string): string {
  return join(root, VERSIONS_DIR, version);
}

/** The directory of a snapshot: a version, or the factory through its link. */
export function snapshotDir(root: string, target: string): string {
  return versionDir(root, target);
}

/** `<root>/versions/<link>`, e.g. the path the services' links go through for `current`. */
export function linkPath(root: string, name: string): string {
  return join(root, VERSIONS_DIR, name);
}

/** Reads `current`, `previous`, the factory and the other versions. */
export async function readLinks(root: string): Promise<SnapshotLinks> {
  const [current, previous, factory, versions] = await Promise.all([
    readTarget(root, CURRENT_LINK),
    readTarget(root, PREVIOUS_LINK),
    readFactoryVersion(root),
    listVersions(root),
  ]);
  const linked = new Set([current, previous, factory]);
  const others = versions.filter((v) => !linked.has(v.name)).map((v) => v.name);
  return { current, previous, factory: factory !== null, others };
}

/** The version directory `versions/factory` points at, or null when there is none. */
export async function readFactoryVersion(root: string): Promise<string | null> {
  const target = await readTarget(root, FACTORY);
  return target === FACTORY ? null : target;
}

/**
 * Points `current` at `target` (a version or FACTORY) atomically, after pointing `previous` at what
 * `current` pointed at (or at `options.previous` when given; null removes `previous`). The
 * versions directory is fsync'd so the switch survives a power cut.
 */
export async function switchCurrent(
  root: string,
  target: string,
  options: { previous?: string | null } = {},
): Promise<{ current: string; previous: string | null }> {
  if (target !== FACTORY && !isSnapshotName(target))
    throw new UpgradeError('DEPLOYMENT_FAILED', `cannot switch to "${target}": not a version name`);
  if (!(await isDirectory(snapshotDir(root, target))))
    throw new UpgradeError(
      'DEPLOYMENT_FAILED',
      `cannot switch to ${target}: ${snapshotDir(root, target)} does not exist`,
    );
  const old = await readTarget(root, CURRENT_LINK);
  // undefined: leave `previous` alone (a re-switch to the same target must not lose it).
  const previous =
    options.previous !== undefined ? options.previous : old !== null && old !== target ? old : undefined;
  if (previous === null) await unlink(linkPath(root, PREVIOUS_LINK)).catch(ignoreMissing);
  else if (previous !== undefined) await replaceLink(root, PREVIOUS_LINK, previous);
  await replaceLink(root, CURRENT_LINK, target);
  await syncDir(versionsDir(root));
  return { current: target, previous: previous ?? (await readTarget(root, PREVIOUS_LINK)) };
}

/**
 * Removes the oldest versions beyond `keep` others (current, previous and the factory's version
 * are never counted nor removed). Returns the removed versions.
 */
export async function pruneVersions(root: string, keep: number): Promise<string[]> {
  const { others } = await readLinks(root);
  const doomed = others.slice(0, Math.max(0, others.length - Math.max(0, keep)));
  for (const version of doomed) await removeVersion(root, version);
  return doomed;
}

/**
 * Deletes `versions/<version>` unless a link points at it. It is renamed aside first, so a crash
 * mid-delete never leaves a half-deleted directory under a version's name. Returns whether it went.
 */
export async function removeVersion(root: string, version: string): Promise<boolean> {
  if (!isSnapshotName(version)) return false;
  const links = await readLinks(root);
  if (links.current === version || links.previous === version) return false;
  if ((await readFactoryVersion(root)) === version) return false;
  const dir = versionDir(root, version);
  if ((await lstat(dir).catch(() => null))?.isDirectory() !== true) return false;
  const trash = join(root, VERSIONS_DIR, `${TRASH_PREFIX}${version}-${randomBytes(4).toString('hex')}`);
  await rename(dir, trash);
  await syncDir(versionsDir(root));
  await rm(trash, { recursive: true, force: true });
  return true;
}

/**
 * Removes what a crash can leave behind: unpack temp dirs, half-deleted versions, temp links.
 * Run at start-up, before anything else touches the root. Returns the removed names.
 */
export async function cleanupStaleFiles(root: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(versionsDir(root)).catch(() => [] as string[])) {
    const path = join(root, VERSIONS_DIR, name);
    if (name.startsWith(UNPACK_TEMP_PREFIX) || name.startsWith(TRASH_PREFIX))
      await rm(path, { recursive: true, force: true });
    else if (isTempLink(name)) await unlink(path).catch(ignoreMissing);
    else continue;
    removed.push(join(VERSIONS_DIR, name));
  }
  return removed;
}

/** The manifest of a snapshot, or null when it has none or it is unreadable. */
export async function readSnapshotManifest(root: string, target: string): Promise<Manifest | null> {
  try {
    const text = await readFile(join(snapshotDir(root, target), MANIFEST_FILE), 'utf8');
    const declared = (JSON.parse(text) as { version?: unknown }).version;
    // The factory holds whichever version it was made from; a version dir must hold its own.
    const expected =
      target === FACTORY && typeof declared === 'string' ? declared : versionOfSnapshot(target);
    return parseManifest(text, expected);
  } catch {
    return null;
  }
}

function isTempLink(name: string): boolean {
  return [CURRENT_LINK, PREVIOUS_LINK, FACTORY].some((link) => name.startsWith(`.${link}${LINK_TEMP}`));
}

async function replaceLink(root: string, name: string, target: string): Promise<void> {
  const temp = linkPath(root, `.${name}${LINK_TEMP}${randomBytes(4).toString('hex')}`);
  await symlink(target, temp);
  try {
    await rename(temp, linkPath(root, name));
  } catch (error) {
    await unlink(temp).catch(ignoreMissing);
    throw new UpgradeError('DEPLOYMENT_FAILED', `cannot update ${linkPath(root, name)}: ${String(error)}`, {
      cause: error,
    });
  }
}

/**
 * The snapshot `versions/<name>` points at, when it is a version directory (or, for `current` and
 * `previous`, the factory link) and exists.
 */
async function readTarget(root: string, name: string): Promise<string | null> {
  let text: string;
  try {
    text = await readlink(linkPath(root, name));
  } catch {
    return null;
  }
  // Links written by hand may be absolute; judge them by where they resolve.
  const rel = relative(resolve(versionsDir(root)), resolve(versionsDir(root), text))
    .split('\\')
    .join('/');
  let target: string | null = null;
  if (rel === FACTORY) target = name === FACTORY ? null : FACTORY;
  else if (isSnapshotName(rel)) target = rel;
  if (target === null) return null;
  // The factory's own target must be a real directory, not another link.
  const info =
    target === FACTORY
      ? await stat(linkPath(root, FACTORY)).catch(() => null)
      : await lstat(versionDir(root, target)).catch(() => null);
  return info?.isDirectory() === true ? target : null;
}

async function listVersions(root: string): Promise<{ name: string; mtimeMs: number }[]> {
  const names = await readdir(versionsDir(root)).catch(() => [] as string[]);
  const found: { name: string; mtimeMs: number }[] = [];
  for (const name of names) {
    if (!isSnapshotName(name)) continue;
    const info = await lstat(versionDir(root, name)).catch(() => null);
    if (info?.isDirectory() === true) found.push({ name, mtimeMs: info.mtimeMs });
  }
  return found.sort((a, b) => a.mtimeMs - b.mtimeMs || a.name.localeCompare(b.name));
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() === true;
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}
