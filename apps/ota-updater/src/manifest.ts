// The package's manifest.json: what a package installs and which systemd units run it. Checked by
// hand rather than with a schema library so that every message names the field and the fix, and so
// the domain does not pull in the HTTP stack.
import { UpgradeError, unsafePackagePathReason } from '@upgrade/core';
import type { Manifest, ManifestModule, ServiceSpec } from './ports.js';

/** The manifest's name at the root of the ZIP and of every version snapshot. */
export const MANIFEST_FILE = 'manifest.json';

/** A manifest larger than this is not a manifest; refusing it bounds the memory spent on it. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/** Reserved name of the factory link, `<root>/versions/factory`. A package may not claim it as its version. */
export const FACTORY = 'factory';

/** Versions name a directory under `versions/`, so they are restricted to a safe file name. */
const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

/** systemd unit names; a leading `-` could be read by systemctl as an option, so it is excluded. */
const UNIT_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9@._:-]{0,254}$/;

/** Octal strings as written by people: "755", "0755", "0o755". */
const MODE_STRING = /^(?:0o?)?([0-7]{3,4})$/;

/**
 * True when `name` can be a version (and so a directory under `versions/`).
 *
 * @example isValidVersion('1.4.2-rc.1') // true; isValidVersion('../x') // false
 */
export function isValidVersion(name: string): boolean {
  return VERSION_PATTERN.test(name) && !RESERVED_NAMES.has(name) && !/^\.+$/.test(name);
}

/** Names the snapshot layout uses for itself: a version may never be called so. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([FACTORY, 'current', 'previous']);

/**
 * The snapshot of a re-released version (same version, other bytes, while that version runs):
 * `<version>~<first 8 hex of its MD5>`. `~` never appears in a version, so the two cannot clash.
 */
const RERELEASE = /^(.+)~([0-9a-f]{8})$/;

/** True when `name` can name a snapshot directory under `versions/`: a version or a re-release of one. */
export function isSnapshotName(name: string): boolean {
  const match = RERELEASE.exec(name);
  return isValidVersion(match === null ? name : (match[1] ?? ''));
}

/** The version a snapshot directory holds (its manifest's version). */
export function versionOfSnapshot(name: string): string {
  return RERELEASE.exec(name)?.[1] ?? name;
}

/**
 * The directory name for a package: its version, unless a directory of that name must stay as it
 * is (`taken`: the running snapshot for a re-release with other bytes, the factory's read-only
 * directory), then `<version>~<md5 prefix>`, so the running snapshot and the factory stay intact.
 */
export function snapshotNameFor(
  pkg: { version: string; md5: string },
  taken: readonly (string | null)[],
): string {
  if (!taken.includes(pkg.version)) return pkg.version;
  return `${pkg.version}~${pkg.md5.toLowerCase().slice(0, 8)}`;
}

/** True when `unit` is a unit name safe to pass to systemctl. */
export function isValidUnitName(unit: string): boolean {
  return UNIT_PATTERN.test(unit);
}

/**
 * Parses and strictly validates manifest.json. Unknown fields are refused (a typo such as
 * `healthURL` must not silently disable a health check); the version must be `expectedVersion`.
 * Throws VALIDATION_FAILED naming the field and what was wrong.
 *
 * Format (all fields required unless marked optional):
 * ```json
 * {
 *   "version": "1.4.2",
 *   "modules": [
 *     {
 *       "name": "printer-ui",
 *       "files": [{ "path": "ui/server.js", "mode": "0644" }, { "path": "ui/bin/run", "mode": "0755" }],
 *       "services": [{ "unit": "printer-ui.service", "healthUrl": "http://127.0.0.1:8080/health" }]
 *     }
 *   ]
 * }
 * ```
 * `mode` is an octal string ("0644", "755") or the numeric value (420); at most 0777: no setuid,
 * setgid or sticky bits in an over-the-air package installed by root.
 */
export function parseManifest(text: string, expectedVersion: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw invalid(`is not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const top = object(raw, 'manifest');
  onlyKeys(top, ['version', 'modules'], 'manifest');
  const version = string(top.version, 'version');
  if (!isValidVersion(version))
    throw invalid(
      `version "${version}" is not a valid version: use letters, digits and . _ + - (max 128), not "${FACTORY}"`,
    );
  if (version !== expectedVersion)
    throw invalid(
      `version is "${version}" but version "${expectedVersion}" was requested: the package does not match the update request`,
    );
  if (!Array.isArray(top.modules) || top.modules.length === 0)
    throw invalid('modules must be a non-empty array');
  const modules = top.modules.map((m: unknown, i) => parseModule(m, `modules[${i}]`));
  checkUnique(
    modules.map((m) => m.name),
    'module name',
  );
  checkUnique(
    modules.flatMap((m) => m.files.map((f) => f.path)),
    'file path',
  );
  checkServices(modules.flatMap((m) => m.services));
  return { version, modules };
}

/** Every service of the manifest, once per unit (modules may share one), in manifest order. */
export function manifestServices(manifest: Manifest): ServiceSpec[] {
  const byUnit = new Map<string, ServiceSpec>();
  for (const spec of manifest.modules.flatMap((m) => m.services))
    if (!byUnit.has(spec.unit)) byUnit.set(spec.unit, spec);
  return [...byUnit.values()];
}

/** The file modes the manifest assigns, by path. */
export function manifestModes(manifest: Manifest): Map<string, number> {
  return new Map(manifest.modules.flatMap((m) => m.files.map((f) => [f.path, f.mode] as const)));
}

/** The numeric mode of an octal string or number, or null when it is not a plain 0-0777 mode. */
export function parseMode(value: unknown): number | null {
  if (typeof value === 'number')
    return Number.isInteger(value) && value >= 0 && value <= 0o777 ? value : null;
  if (typeof value !== 'string') return null;
  const match = MODE_STRING.exec(value);
  if (match?.[1] === undefined) return null;
  const mode = Number.parseInt(match[1], 8);
  return mode <= 0o777 ? mode : null;
}

function parseModule(value: unknown, at: string): ManifestModule {
  const m = object(value, at);
  onlyKeys(m, ['name', 'files', 'services'], at);
  const name = string(m.name, `${at}.name`);
  if (!Array.isArray(m.files)) throw invalid(`${at}.files must be an array`);
  if (!Array.isArray(m.services)) throw invalid(`${at}.services must be an array (may be empty)`);
  const files = m.files.map((f: unknown, i) => parseFile(f, `${at}.files[${i}]`));
  const services = m.services.map((s: unknown, i) => parseService(s, `${at}.services[${i}]`));
  return { name, files, services };
}

function parseFile(value: unknown, at: string): ManifestModule['files'][number] {
  const f = object(value, at);
  onlyKeys(f, ['path', 'mode'], at);
  const path = string(f.path, `${at}.path`);
  const reason = unsafePackagePathReason(path);
  if (reason !== null) throw invalid(`${at}.path "${path}" is refused: ${reason}`);
  if (path.endsWith('/')) throw invalid(`${at}.path "${path}" names a directory; list files only`);
  const mode = parseMode(f.mode);
  if (mode === null)
    throw invalid(
      `${at}.mode ${JSON.stringify(f.mode)} is not a file mode: write an octal string such as "0644" or "0755" (at most 0777)`,
    );
  return { path, mode };
}

function parseService(value: unknown, at: string): ServiceSpec {
  const s = object(value, at);
  onlyKeys(s, ['unit', 'healthUrl'], at);
  const unit = string(s.unit, `${at}.unit`);
  if (!isValidUnitName(unit))
    throw invalid(
      `${at}.unit "${unit}" is not a systemd unit name (letters, digits, @ . _ : -, not starting with -)`,
    );
  if (s.healthUrl === undefined) return { unit };
  const healthUrl = string(s.healthUrl, `${at}.healthUrl`);
  let url: URL;
  try {
    url = new URL(healthUrl);
  } catch {
    throw invalid(`${at}.healthUrl "${healthUrl}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalid(`${at}.healthUrl "${healthUrl}" must be http or https`);
  return { unit, healthUrl };
}

function object(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(`${at} must be an object`);
  return value as Record<string, unknown>;
}

function string(value: unknown, at: string): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(`${at} must be a non-empty string`);
  return value;
}

function onlyKeys(value: Record<string, unknown>, allowed: readonly string[], at: string): void {
  const unknown = Object.keys(value).filter((k) => !allowed.includes(k));
  if (unknown.length > 0)
    throw invalid(`${at} has unknown field(s) ${unknown.join(', ')}; allowed: ${allowed.join(', ')}`);
}

function checkUnique(values: readonly string[], what: string): void {
  const seen = new Set<string>();
  for (const v of values) {
    if (seen.has(v)) throw invalid(`${what} "${v}" appears more than once`);
    seen.add(v);
  }
}

/** Two modules may share a unit, but then they must agree on how its health is checked. */
function checkServices(services: readonly ServiceSpec[]): void {
  const healthOf = new Map<string, string | undefined>();
  for (const s of services) {
    if (healthOf.has(s.unit) && healthOf.get(s.unit) !== s.healthUrl)
      throw invalid(`service unit "${s.unit}" is listed twice with different healthUrl values`);
    healthOf.set(s.unit, s.healthUrl);
  }
}

function invalid(problem: string): UpgradeError {
  return new UpgradeError('VALIDATION_FAILED', `${MANIFEST_FILE}: ${problem}`);
}
