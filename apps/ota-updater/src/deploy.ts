// The deploy flow, top to bottom: unpack -> stop -> switch `current` -> start -> health -> commit.
// Any failure after the services were stopped rolls back: first to the version that ran before
// (`previous`), then to the read-only factory snapshot, each level verified by the same health
// check. The caller persists every phase (onPhase) so that resumeDeploy can finish a deploy a power
// cut interrupted: before the switch it is rolled back (nothing of it stays), after it it is
// checked, then committed or rolled back.
import {
  ERROR_CODES,
  UpgradeError,
  abortError,
  describeError,
  isUpgradeError,
  type Clock,
  type HealthReport,
} from '@upgrade/core';
import {
  PHASE_PROGRESS,
  UNPACK_PROGRESS_END,
  startPhaseRun,
  type DeployPhase,
  type DeployRecord,
  type PhaseListener,
  type PhaseRun,
} from './deploy-phases.js';
import { FACTORY, manifestServices, snapshotNameFor } from './manifest.js';
import type { ServiceManager, ServiceSpec, VerifiedPackage } from './ports.js';
import {
  cleanupStaleFiles,
  pruneVersions,
  readFactoryVersion,
  readLinks,
  readSnapshotManifest,
  removeVersion,
  snapshotDir,
  switchCurrent,
  versionDir,
} from './snapshots.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage, type UnpackLimits } from './unpack.js';

export {
  DEPLOY_PHASES,
  stageOfPhase,
  type DeployPhase,
  type DeployRecord,
  type PhaseDetail,
} from './deploy-phases.js';

/** Checks the services of a version; `down` fails the deploy (or the rollback level). */
export type CheckServicesHealth = (
  services: readonly ServiceSpec[],
  signal?: AbortSignal,
) => Promise<HealthReport>;

/** The ports and settings a deploy needs. */
export interface DeployDeps {
  root: string;
  services: ServiceManager;
  checkHealth: CheckServicesHealth;
  clock: Clock;
  limits?: UnpackLimits;
  /** Versions kept besides current, previous and factory. Default 2. */
  keepVersions?: number;
}

/** Callbacks and cancellation of one deploy. */
export interface DeployOptions {
  /**
   * Awaited on every phase change; persist `detail.record` here. A throw on the way forward fails
   * the deploy (and rolls back); during a rollback it is ignored, as stopping then would be worse.
   */
  onPhase?: PhaseListener;
  /** Progress inside a phase (unpacking), 0-100 overall. Never awaited. */
  onProgress?(progress: number, message: string): void;
  /** Cancels the deploy while unpacking; once the services are stopped it runs to the end. */
  signal?: AbortSignal;
}

/** How a deploy ended when the device is healthy; a deploy leaving it unhealthy throws ROLLBACK_FAILED. */
export type DeployResult =
  | { status: 'committed'; version: string }
  | { status: 'rolled_back'; version: string; restored: string; error: UpgradeError };

/**
 * Installs a verified package and makes it current, or leaves the device on a healthy older
 * version. Throws VALIDATION_FAILED for a bad package (nothing changed), CONFLICT when the version
 * is already current, ABORTED when cancelled while unpacking, and ROLLBACK_FAILED when no version
 * could be brought back healthy.
 */
export async function deployVersion(
  deps: DeployDeps,
  pkg: VerifiedPackage,
  options: DeployOptions = {},
): Promise<DeployResult> {
  const links = await readLinks(deps.root);
  // A re-release (same version, other bytes) of the running version gets its own snapshot, and so
  // does the factory's version: the factory's read-only directory is never replaced.
  const name = snapshotNameFor(pkg, [links.current, await readFactoryVersion(deps.root)]);
  if (links.current === name || links.current === snapshotNameFor(pkg, [pkg.version]))
    throw new UpgradeError('CONFLICT', `version ${pkg.version} is already current; nothing to deploy`);
  const run = startPhaseRun(options.onPhase, {
    version: name,
    phase: 'unpacking',
    from: links.current,
    previousBefore: links.previous,
    error: null,
    startedAt: deps.clock.now(),
  });

  // 1. Unpack beside the running version: a bad package fails here and changes nothing.
  await run.phase('unpacking', `unpacking ${name}`);
  const { manifest } = await unpackPackage(
    pkg.path,
    versionDir(deps.root, name),
    deps.limits ?? DEFAULT_UNPACK_LIMITS,
    {
      version: pkg.version,
      replace: true,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      onProgress: (written, total) =>
        options.onProgress?.(
          PHASE_PROGRESS.unpacking +
            Math.floor(((UNPACK_PROGRESS_END - PHASE_PROGRESS.unpacking) * written) / (total || 1)),
          `unpacking ${pkg.version}`,
        ),
    },
  );
  if (options.signal?.aborted) {
    await removeVersion(deps.root, name);
    throw abortError(options.signal);
  }
  const newServices = manifestServices(manifest);
  const oldServices = (await servicesOf(deps.root, links.current)) ?? [];

  try {
    // 2. Stop what the old and the new version run: no process may see its files switch under it.
    await run.phase('stopping', `stopping ${describeUnits([...oldServices, ...newServices])}`);
    await deps.services.stop(unitsOf([...oldServices, ...newServices]));

    // 3. Switch `current` (and `previous`) atomically. From here a restart resumes, not discards.
    await switchCurrent(deps.root, name);
    await run.phase('switched', `current -> ${name}`);

    // 4-6. Start, check health, commit.
    return await startAndCommit(deps, run, newServices);
  } catch (error) {
    return await rollBack(deps, run, asDeployError(error), 'previous');
  }
}

/**
 * Finishes a deploy interrupted by a restart, from the last record onPhase persisted (crash
 * leftovers are cleaned first). Not switched yet: rolled back with DEPLOYMENT_FAILED, whatever
 * phase the cut hit (the unpacked version is deleted, the old services are restarted and checked
 * if they may have been stopped). Switched but not committed: health-checked, then committed or
 * rolled back. Interrupted mid-rollback: the rollback is redone.
 */
export async function resumeDeploy(
  deps: DeployDeps,
  record: DeployRecord,
  options: DeployOptions = {},
): Promise<DeployResult> {
  await cleanupStaleFiles(deps.root);
  const run = startPhaseRun(options.onPhase, { ...record });
  // Keeps the original reason (e.g. HEALTH_CHECK_FAILED) when the cut came mid-rollback.
  const interrupted = (): UpgradeError =>
    new UpgradeError(
      ERROR_CODES.find((code) => code === record.error?.code) ?? 'DEPLOYMENT_FAILED',
      record.error?.message ?? `deploy of ${record.version} was interrupted by a restart`,
    );
  switch (record.phase) {
    case 'committed':
      return { status: 'committed', version: record.version };
    case 'rolled_back':
    case 'failed':
      throw new UpgradeError(
        'CONFLICT',
        `deploy of ${record.version} already ended as ${record.phase}; nothing to resume`,
      );
    case 'rolling_back_previous':
      return rollBack(deps, run, interrupted(), 'previous');
    case 'rolling_back_factory':
      return rollBack(deps, run, interrupted(), 'factory');
    case 'unpacking':
    case 'stopping':
    case 'switched':
    case 'starting':
    case 'health_check':
      break;
  }
  // The link, not the record, says whether the switch happened: the cut may fall between the two.
  if ((await readLinks(deps.root)).current === record.version) {
    try {
      const services = await servicesOf(deps.root, record.version);
      if (services === null) throw missingManifest(deps.root, record.version);
      await run.phase('switched', `resuming ${record.version} after a restart`);
      return await startAndCommit(deps, run, services);
    } catch (error) {
      return await rollBack(deps, run, asDeployError(error), 'previous');
    }
  }
  const cut = new UpgradeError(
    'DEPLOYMENT_FAILED',
    `the deploy of ${record.version} was interrupted (restart or power loss) before the switch; ${record.from === null ? 'the running version' : label(record.from)} stays current`,
  );
  if (record.phase === 'unpacking') {
    // Nothing was stopped: only the unpacked files go.
    await removeVersion(deps.root, record.version);
    run.record.error = { code: cut.code, message: cut.message };
    await run.phase('rolled_back', cut.message, { bestEffort: true });
    return { status: 'rolled_back', version: record.version, restored: record.from ?? FACTORY, error: cut };
  }
  // Stopped but never switched: the old version is still current; bring its services back.
  return rollBack(deps, run, cut, 'previous');
}

/**
 * Finishes a deploy that had already ended when a restart cut it: its last phase (`rolled_back` or
 * `failed`) was saved, what rollBack does after that save may not have run. Crash leftovers go (a
 * `.trash-` directory half deleted), and after a rollback the failed version is deleted and
 * retention applied, so the device ends as an uninterrupted rollback leaves it. After `failed` the
 * failed version stays, as it does without a restart.
 */
export async function finishEndedDeploy(deps: DeployDeps, record: DeployRecord): Promise<void> {
  await cleanupStaleFiles(deps.root);
  if (record.phase !== 'rolled_back') return;
  await removeVersion(deps.root, record.version).catch(() => false);
  await pruneQuietly(deps);
}

async function startAndCommit(
  deps: DeployDeps,
  run: PhaseRun,
  services: ServiceSpec[],
): Promise<DeployResult> {
  const { version } = run.record;
  await run.phase('starting', `starting ${describeUnits(services)}`);
  await deps.services.start(unitsOf(services));

  await run.phase('health_check', `checking ${describeUnits(services)}`);
  const report = await deps.checkHealth(services);
  if (report.status === 'down')
    throw new UpgradeError(
      'HEALTH_CHECK_FAILED',
      `version ${version} is unhealthy: ${describeFailingChecks(report)}`,
    );

  await run.phase('committed', `${version} is current and healthy`);
  await pruneQuietly(deps);
  return { status: 'committed', version };
}

/**
 * Level 1 restores `from` (the version that ran before) with the `previous` link it had; level 2
 * the factory. Each level stops what may run, switches, starts and checks health.
 */
async function rollBack(
  deps: DeployDeps,
  run: PhaseRun,
  cause: UpgradeError,
  startAt: 'previous' | 'factory',
): Promise<DeployResult> {
  const { version, from, previousBefore } = run.record;
  run.record.error = { code: cause.code, message: cause.message };
  const levels: { phase: DeployPhase; target: string; previous: string | null }[] = [];
  if (startAt === 'previous' && from !== null)
    levels.push({
      phase: 'rolling_back_previous',
      target: from,
      // A re-deployed `previous` was overwritten by the failed package: do not point at it.
      previous: previousBefore === version ? null : previousBefore,
    });
  const factoryVersion = await readFactoryVersion(deps.root);
  // Level 1 already tried the factory when `from` was the factory (or its directory).
  if (factoryVersion !== null && from !== FACTORY && from !== factoryVersion)
    levels.push({ phase: 'rolling_back_factory', target: FACTORY, previous: from });

  const failures: string[] = [];
  const units = new Set<string>();
  for (const level of levels) {
    await run.phase(level.phase, `rolling back to ${label(level.target)}`, { bestEffort: true });
    try {
      await restore(deps, version, level.target, level.previous, units);
      await run.phase('rolled_back', `rolled back to ${label(level.target)}`, { bestEffort: true });
      await removeVersion(deps.root, version).catch(() => false);
      await pruneQuietly(deps);
      return { status: 'rolled_back', version, restored: level.target, error: cause };
    } catch (error) {
      failures.push(`rollback to ${label(level.target)} failed: ${describeError(error)}`);
    }
  }

  const error = new UpgradeError(
    'ROLLBACK_FAILED',
    technicianMessage(deps.root, run.record, cause, failures, units, (await readLinks(deps.root)).current),
    {
      cause,
      details: { version, from, failures, units: [...units] },
    },
  );
  run.record.error = { code: error.code, message: error.message };
  await run.phase('failed', error.message, { bestEffort: true });
  throw error;
}

async function restore(
  deps: DeployDeps,
  failedVersion: string,
  target: string,
  previous: string | null,
  seenUnits: Set<string>,
): Promise<void> {
  const services = await servicesOf(deps.root, target);
  if (services === null) throw missingManifest(deps.root, target);
  const failedServices = (await servicesOf(deps.root, failedVersion)) ?? [];
  for (const unit of unitsOf([...failedServices, ...services])) seenUnits.add(unit);
  // A stop failure is not fatal here: the start and the health check below decide.
  await deps.services.stop(unitsOf([...failedServices, ...services])).catch(() => undefined);
  await switchCurrent(deps.root, target, { previous });
  await deps.services.start(unitsOf(services));
  const report = await deps.checkHealth(services);
  if (report.status === 'down')
    throw new UpgradeError(
      'HEALTH_CHECK_FAILED',
      `${label(target)} is unhealthy: ${describeFailingChecks(report)}`,
    );
}

function technicianMessage(
  root: string,
  record: DeployRecord,
  cause: UpgradeError,
  failures: readonly string[],
  units: ReadonlySet<string>,
  current: string | null,
): string {
  const unitList = [...units].join(' ') || '<the units in manifest.json>';
  const tried =
    failures.length > 0 ? failures.join('; ') : 'no rollback target exists (no previous version, no factory)';
  return (
    `Update to ${record.version} failed (${describeError(cause)}) and no version could be brought back healthy: ${tried}. ` +
    `current now points at ${current === null ? 'nothing valid' : label(current)}. ` +
    `Check: systemctl status ${unitList}; journalctl -u ${[...units][0] ?? '<unit>'} -n 200; the health URLs in ${root}/versions/current/manifest.json; ` +
    `free disk space; the links current, previous and factory in ${root}/versions (run verify_setup.sh ${root}). ` +
    `Then reinstall a known-good version, or point ${root}/versions/current at factory and restart the units.`
  );
}

async function servicesOf(root: string, target: string | null): Promise<ServiceSpec[] | null> {
  if (target === null) return null;
  const manifest = await readSnapshotManifest(root, target);
  return manifest === null ? null : manifestServices(manifest);
}

function missingManifest(root: string, target: string): UpgradeError {
  return new UpgradeError(
    'DEPLOYMENT_FAILED',
    `${snapshotDir(root, target)}/manifest.json is missing or invalid: cannot tell which services ${label(target)} runs`,
  );
}

/** `a.service (not active in systemd), a.service http://... (HTTP 503)`. */
function describeFailingChecks(report: HealthReport): string {
  const failing = report.checks.filter((c) => c.status === 'down');
  if (failing.length === 0) return 'no health check passed';
  return failing.map((c) => `${c.name} (${(c.detail ?? 'failed').replace(/^[A-Z_]+: /, '')})`).join(', ');
}

function unitsOf(services: readonly ServiceSpec[]): string[] {
  return [...new Set(services.map((s) => s.unit))];
}

function describeUnits(services: readonly ServiceSpec[]): string {
  const units = unitsOf(services);
  return units.length === 0 ? 'no services' : units.join(', ');
}

function label(target: string): string {
  return target === FACTORY ? 'the factory version' : `version ${target}`;
}

function asDeployError(error: unknown): UpgradeError {
  return isUpgradeError(error)
    ? error
    : new UpgradeError('DEPLOYMENT_FAILED', describeError(error), { cause: error });
}

async function pruneQuietly(deps: DeployDeps): Promise<void> {
  // Retention frees space; failing at it must not turn a good deploy into a failed one.
  await pruneVersions(deps.root, deps.keepVersions ?? 2).catch(() => []);
}
