// The OTA service's flow, top to bottom: a download request -> downloading -> verifying ->
// downloaded; an update request -> deploying -> health_check -> success (or rolling_back ->
// rolled_back / failed). Every stage change is written to state.json (atomically) before it is
// reported, so a power cut at any point is resumed by `recover()` on the next start.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  UpgradeError,
  createProgressReporter,
  defineMachine,
  describeError,
  isUpgradeError,
  type Clock,
  type ProgressSink,
} from '@upgrade/core';
import {
  deployVersion,
  finishEndedDeploy,
  resumeDeploy,
  stageOfPhase,
  type DeployDeps,
  type DeployRecord,
} from './deploy.js';
import { discardDownload, downloadPackage, downloadPaths, type DownloadOptions } from './download.js';
import {
  OTA_STAGES,
  type DownloadCheckpoint,
  type DownloadRequest,
  type OtaProgress,
  type OtaStage,
  type VerifiedPackage,
} from './ports.js';
import { errorLogFields } from './log-fields.js';
import { versionOfSnapshot } from './manifest.js';
import { readLinks, type SnapshotLinks } from './snapshots.js';
import { readStateFile, writeStateFile } from './state-file.js';

/** The legal stage changes; anything else is a bug and throws ILLEGAL_TRANSITION. */
export const otaMachine = defineMachine<OtaStage>({
  states: OTA_STAGES,
  transitions: {
    // `success` straight away: a re-push of the running release is a no-op.
    idle: ['downloading', 'success'],
    downloading: ['verifying', 'failed', 'idle'],
    verifying: ['downloaded', 'failed', 'idle'],
    downloaded: ['deploying', 'downloading', 'idle', 'success'],
    // `rolled_back` straight away: a deploy a restart cut before the switch.
    deploying: ['health_check', 'rolling_back', 'rolled_back', 'failed', 'idle', 'success'],
    // A restart during the health check re-enters the deploy at its switch.
    health_check: ['success', 'rolling_back', 'rolled_back', 'failed', 'deploying'],
    rolling_back: ['rolled_back', 'failed'],
    success: ['downloading', 'idle'],
    // The package is still on disk after a rollback: the update may be tried again.
    rolled_back: ['downloading', 'deploying', 'idle', 'success'],
    failed: ['downloading', 'deploying', 'idle', 'success'],
  },
});

/** Stages during which a new request gets 409. */
const BUSY: ReadonlySet<OtaStage> = new Set([
  'downloading',
  'verifying',
  'deploying',
  'health_check',
  'rolling_back',
]);

/** Everything state.json holds: enough to resume after a power cut. */
export interface OtaState extends OtaProgress {
  /** The version being downloaded or deployed, or the last one. */
  version: string | null;
  /** Where a download stands (partial file + offset), while downloading. */
  download: DownloadCheckpoint | null;
  /** A verified package waiting for POST /update. */
  downloaded: VerifiedPackage | null;
  /** The deploy's last phase, while deploying or rolling back. */
  deploy: DeployRecord | null;
  /** MD5 of the package each installed snapshot came from: a release is its version + MD5. */
  releases: Record<string, string>;
  updatedAt: number;
}

export const initialOtaState = (now: number): OtaState => ({
  stage: 'idle',
  progress: 0,
  message: 'idle',
  error: null,
  version: null,
  download: null,
  downloaded: null,
  deploy: null,
  releases: {},
  updatedAt: now,
});

export interface UpdaterLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface UpdaterDeps {
  statePath: string;
  downloadsDir: string;
  deploy: DeployDeps;
  clock: Clock;
  /** Where progress goes besides GET /progress: the device API. Failures are counted, never fatal. */
  sink: ProgressSink<OtaStage>;
  logger: UpdaterLogger;
  /**
   * Keep the last verified package after it was deployed, rolled back or cancelled, for a quick
   * re-deploy. Default false: a package file is deleted as soon as it served (a package the deploy
   * proved invalid always is).
   */
  keepLastPackage?: boolean;
  /** Passed to every download (timeouts, public key, retries). */
  download: Omit<DownloadOptions, 'dir' | 'resumeFrom' | 'signal' | 'onProgress' | 'onCheckpoint' | 'clock'>;
}

export interface Updater {
  /**
   * Starts a download in the background (`started`), or, when the request is the release that
   * runs now (same version, same MD5), changes nothing and reports success (`current`). CONFLICT
   * while busy.
   */
  startDownload(request: DownloadRequest): Promise<'started' | 'current'>;
  /** Starts deploying a downloaded version. NOT_FOUND when it is not downloaded, CONFLICT while busy. */
  startUpdate(version: string): Promise<void>;
  /** Stops a download or a deploy that has not switched yet; back to idle. CONFLICT otherwise. */
  cancel(): Promise<void>;
  progress(): OtaProgress;
  state(): OtaState;
  versions(): Promise<SnapshotLinks>;
  /** Finishes what a restart interrupted; call once at start-up. */
  recover(): Promise<void>;
  /** Progress reports sent / failed, for /metrics. */
  readonly reportStats: { offered: number; sent: number; failed: number };
  /** Stops background work (a download keeps its partial for the next start). */
  close(): Promise<void>;
}

/** Creates the updater; state is read by `recover()`. */
export function createUpdater(deps: UpdaterDeps): Updater {
  let state = initialOtaState(deps.clock.now());
  let work: { promise: Promise<void>; abort: AbortController; cancellable: () => boolean } | null = null;
  let writes: Promise<void> = Promise.resolve();
  const reporter = createProgressReporter<OtaStage>(deps.sink, {
    // The sink warns once when reports start failing (and says when they work again); each
    // failure is counted in /metrics and only detailed at debug level.
    onError: (error) => {
      const fields = errorLogFields(error);
      deps.logger.debug(fields, `progress report to the device API failed: ${fields.code}: ${fields.reason}`);
    },
  });

  /** Persists and reports a change; stage changes are checked against the machine. */
  const update = async (patch: Partial<OtaState>, options: { persist?: boolean } = {}): Promise<void> => {
    if (patch.stage !== undefined && patch.stage !== state.stage)
      otaMachine.assertTransition(state.stage, patch.stage);
    state = { ...state, ...patch, updatedAt: deps.clock.now() };
    const snapshot = state;
    if (options.persist !== false) {
      // Serialised: a slow disk never lets an older state overwrite a newer one.
      writes = writes.then(() => writeStateFile(deps.statePath, snapshot));
      await writes;
    }
    reporter.report({
      stage: state.stage,
      progress: state.progress,
      message: state.message,
      error: state.error,
    });
  };

  const fail = async (error: unknown, extra: Partial<OtaState> = {}): Promise<void> => {
    const e = isUpgradeError(error) ? error : new UpgradeError('INTERNAL', describeError(error));
    deps.logger.error(
      { ...errorLogFields(error), version: state.version },
      `update failed: ${describeError(error)}`,
    );
    await update({
      stage: 'failed',
      message: e.message,
      error: { code: e.code, message: e.message },
      ...extra,
    });
  };

  const runInBackground = (fn: (signal: AbortSignal) => Promise<void>, cancellable: () => boolean): void => {
    const abort = new AbortController();
    const promise = fn(abort.signal)
      .catch((error: unknown) =>
        deps.logger.error(errorLogFields(error), `background work failed: ${describeError(error)}`),
      )
      .finally(() => {
        if (work?.promise === promise) work = null;
      });
    work = { promise, abort, cancellable };
  };

  /**
   * Refuses new work while an update runs. Work that has published its final stage may still be
   * finishing its bookkeeping: wait for it rather than refuse. The caller must change the stage
   * right after this resolves, without awaiting anything first, so two requests never both pass.
   */
  const claim = async (what: string): Promise<void> => {
    while (work !== null && !BUSY.has(state.stage)) await work.promise;
    if (BUSY.has(state.stage) || work !== null) {
      throw new UpgradeError(
        'CONFLICT',
        `an update is in progress (${state.stage}${state.version === null ? '' : ` of ${state.version}`}); ${what} is refused until it ends or is cancelled`,
      );
    }
  };

  /**
   * The snapshot `current` points at and the MD5 it was installed from (null when unknown).
   * UNAVAILABLE when the install root has no current version: nothing could be deployed or rolled
   * back there, so no download is started for it.
   */
  const runningRelease = async (): Promise<{ snapshot: string; md5: string | null }> => {
    const current = (await readLinks(deps.deploy.root).catch(() => null))?.current ?? null;
    if (current === null)
      throw new UpgradeError(
        'UNAVAILABLE',
        `the install root ${deps.deploy.root} has no current version (versions/current is missing or dangling); set it up with the install script, then try again`,
      );
    return { snapshot: current, md5: state.releases[current] ?? null };
  };

  /** `releases` without the snapshots retention (or a rollback) removed. */
  const installedReleases = async (releases: Record<string, string>): Promise<Record<string, string>> => {
    const links = await readLinks(deps.deploy.root).catch(() => null);
    if (links === null) return releases;
    const kept = new Set([links.current, links.previous, ...links.others]);
    return Object.fromEntries(Object.entries(releases).filter(([name]) => kept.has(name)));
  };

  const keepLast = deps.keepLastPackage === true;

  /** What state.json says of a package that served; persisted before the file goes (see below). */
  const afterUse = (rejected: boolean): Partial<OtaState> =>
    keepLast && !rejected ? {} : { downloaded: null };

  /**
   * Deletes a package that served, after state.json stopped pointing at it: a cut between the two
   * leaves an orphan file the start-up sweep removes, never a state naming a missing file.
   */
  const removeUsed = async (pkg: VerifiedPackage, rejected: boolean): Promise<void> => {
    if (keepLast && !rejected) return;
    await removeFile(pkg.path);
  };

  const removeFile = async (path: string): Promise<void> => {
    await rm(path, { force: true }).catch((error: unknown) =>
      deps.logger.warn(
        { ...errorLogFields(error), path },
        `could not delete ${path}: ${describeError(error)}`,
      ),
    );
  };

  /** Removes from downloads/ every file state.json does not point at: crash leftovers, old packages. */
  const sweepDownloads = async (): Promise<void> => {
    const keep = new Set<string>();
    if (state.download !== null) keep.add(state.download.partialPath);
    if (state.downloaded !== null) keep.add(state.downloaded.path);
    const names = await readdir(deps.downloadsDir).catch(() => [] as string[]);
    const removed: string[] = [];
    for (const name of names) {
      const path = join(deps.downloadsDir, name);
      if (keep.has(path)) continue;
      await rm(path, { recursive: true, force: true });
      removed.push(name);
    }
    if (removed.length > 0)
      deps.logger.info({ removed }, `removed ${removed.length} orphan file(s) from downloads/`);
  };

  const download = async (
    request: DownloadRequest,
    signal: AbortSignal,
    resumeFrom?: DownloadCheckpoint,
  ): Promise<void> => {
    try {
      const pkg = await downloadPackage(request, {
        ...deps.download,
        dir: deps.downloadsDir,
        clock: deps.clock,
        signal,
        ...(resumeFrom === undefined ? {} : { resumeFrom }),
        onProgress: ({ received, total }) => {
          const progress = total === 0 ? 100 : Math.floor((received / total) * 100);
          if (received >= total && state.stage === 'downloading') {
            void update({ stage: 'verifying', progress: 100, message: `verifying ${request.version}` });
          } else if (state.stage === 'downloading' && progress !== state.progress) {
            void update(
              { progress, message: `downloading ${request.version}: ${received} of ${total} bytes` },
              { persist: false },
            );
          }
        },
        onCheckpoint: (checkpoint) => update({ download: checkpoint }),
      });
      await writes;
      if (state.stage === 'downloading')
        await update({ stage: 'verifying', progress: 100, message: `verifying ${request.version}` });
      const replaced = state.downloaded;
      await update({
        stage: 'downloaded',
        progress: 100,
        message: `${request.version} downloaded and verified`,
        download: null,
        downloaded: pkg,
      });
      // The last verified package kept for a re-deploy is superseded by this one.
      if (replaced !== null && replaced.path !== pkg.path) await removeFile(replaced.path);
      deps.logger.info(
        { version: pkg.version, size: pkg.size, md5: pkg.md5 },
        'package downloaded and verified',
      );
    } catch (error) {
      if (isUpgradeError(error, 'ABORTED') && signal.aborted) return; // cancel or shutdown decides
      const checkpoint = state.download;
      if (checkpoint !== null) await discardDownload(checkpoint).catch(() => undefined);
      // Also when no checkpoint recorded it yet.
      await discardDownload({ partialPath: downloadPaths(deps.downloadsDir, request.version).partial }).catch(
        () => undefined,
      );
      await fail(error, { download: null });
    }
  };

  const deploy = async (pkg: VerifiedPackage, signal: AbortSignal, resume?: DeployRecord): Promise<void> => {
    const options = {
      signal,
      onPhase: async (
        phase: DeployRecord['phase'],
        detail: { record: DeployRecord; progress: number; message: string },
      ) => {
        const stage = stageOfPhase(phase);
        await update({
          ...(stage === 'success' || stage === 'rolled_back' || stage === 'failed' ? {} : { stage }),
          deploy: detail.record,
          progress: detail.progress,
          message: detail.message,
          error: detail.record.error,
        });
      },
      onProgress: (progress: number, message: string) =>
        void update({ progress, message }, { persist: false }),
    };
    try {
      const result =
        resume === undefined
          ? await deployVersion(deps.deploy, pkg, options)
          : await resumeDeploy(deps.deploy, resume, options);
      switch (result.status) {
        case 'committed':
          await update({
            stage: 'success',
            progress: 100,
            message: `${result.version} installed and healthy`,
            error: null,
            deploy: null,
            ...afterUse(false),
            releases: await installedReleases({ ...state.releases, [result.version]: pkg.md5 }),
          });
          await removeUsed(pkg, false);
          break;
        case 'rolled_back':
          await update({
            stage: 'rolled_back',
            progress: 100,
            message: `${result.version} failed and was rolled back to ${result.restored}: ${result.error.message}`,
            error: { code: result.error.code, message: result.error.message },
            deploy: null,
            ...afterUse(false),
          });
          await removeUsed(pkg, false);
          break;
      }
    } catch (error) {
      if (isUpgradeError(error, 'ABORTED') && signal.aborted) {
        await update({
          stage: 'idle',
          progress: 0,
          message: `deploy of ${pkg.version} cancelled`,
          deploy: null,
          error: null,
          ...afterUse(false),
        });
        await removeUsed(pkg, false);
        return;
      }
      // A package the deploy proved invalid is of no further use, whatever keepLastPackage says.
      const rejected = isUpgradeError(error, 'VALIDATION_FAILED');
      await fail(error, { deploy: null, ...afterUse(rejected) });
      await removeUsed(pkg, rejected);
    }
  };

  return {
    async startDownload(request) {
      const running = await runningRelease();
      await claim('a new download');
      const previousPackage = state.downloaded;
      if (
        versionOfSnapshot(running.snapshot) === request.version &&
        running.md5 === request.packageMd5.toLowerCase()
      ) {
        await update({
          stage: 'success',
          progress: 100,
          message: `${request.version} with this package is already installed and running; nothing to do`,
          error: null,
          version: request.version,
        });
        return 'current';
      }
      await update({
        stage: 'downloading',
        progress: 0,
        message: `downloading ${request.version}`,
        error: null,
        version: request.version,
        download: null,
        ...(keepLast ? {} : { downloaded: null }),
      });
      // Without keepLastPackage the package waiting for an update gives way to the new download.
      if (!keepLast && previousPackage !== null) await removeFile(previousPackage.path);
      runInBackground(
        (signal) => download(request, signal),
        () => true,
      );
      return 'started';
    },

    async startUpdate(version) {
      await runningRelease();
      await claim('a new update');
      const pkg = state.downloaded;
      if (pkg === null || pkg.version !== version) {
        throw new UpgradeError(
          'NOT_FOUND',
          `version ${version} is not downloaded${pkg === null ? '' : ` (downloaded: ${pkg.version})`}; POST /api/v1.0/download first`,
        );
      }
      await update({
        stage: 'deploying',
        progress: 0,
        message: `deploying ${version}`,
        error: null,
        version,
      });
      runInBackground(
        (signal) => deploy(pkg, signal),
        () => state.deploy === null || state.deploy.phase === 'unpacking',
      );
    },

    async cancel() {
      const current = work;
      if (current === null || !current.cancellable()) {
        throw new UpgradeError(
          'CONFLICT',
          current === null
            ? `nothing to cancel (${state.stage})`
            : `the deploy of ${state.version ?? '?'} is past the switch and cannot be cancelled; it finishes or rolls back by itself`,
        );
      }
      current.abort.abort(new UpgradeError('ABORTED', 'cancelled by request'));
      await current.promise;
      if (state.stage === 'downloading' || state.stage === 'verifying') {
        const checkpoint = state.download;
        if (checkpoint !== null) await discardDownload(checkpoint).catch(() => undefined);
        await update({
          stage: 'idle',
          progress: 0,
          message: `download of ${state.version ?? '?'} cancelled`,
          download: null,
          error: null,
        });
      }
    },

    progress: () => ({
      stage: state.stage,
      progress: state.progress,
      message: state.message,
      error: state.error,
    }),
    state: () => state,
    versions: () => readLinks(deps.deploy.root),

    async recover() {
      const saved = await readStateFile(deps.statePath, parseOtaState);
      if (saved !== null) state = saved;
      // Before anything resumes: leftovers of a crash or of an older version of this service go.
      await sweepDownloads().catch((error: unknown) =>
        deps.logger.warn(errorLogFields(error), `sweeping downloads/ failed: ${describeError(error)}`),
      );
      if (saved === null) {
        await update({}, {});
        return;
      }
      switch (state.stage) {
        case 'downloading':
        case 'verifying': {
          const checkpoint = state.download;
          deps.logger.warn(
            { version: state.version, offset: checkpoint?.offset },
            'resuming a download interrupted by a restart',
          );
          if (checkpoint === null) {
            // Killed before the first checkpoint: the partial file may exist without being recorded.
            if (state.version !== null) {
              const { partial } = downloadPaths(deps.downloadsDir, state.version);
              await discardDownload({ partialPath: partial }).catch(() => undefined);
            }
            await update({
              stage: 'idle',
              progress: 0,
              message: 'a download was interrupted before it started writing',
            });
            return;
          }
          if (state.stage === 'verifying') state = { ...state, stage: 'downloading' };
          runInBackground(
            (signal) => download(checkpoint.request, signal, checkpoint),
            () => true,
          );
          return;
        }
        case 'deploying':
        case 'health_check':
        case 'rolling_back': {
          const record = state.deploy;
          const pkg = state.downloaded;
          deps.logger.warn(
            { version: state.version, phase: record?.phase },
            'resuming a deploy interrupted by a restart',
          );
          if (record === null || pkg === null) {
            // Cut before the deploy recorded its first phase: nothing changed on disk. The same end
            // state as any other cut before the switch.
            const cut = `the deploy of ${state.version ?? '?'} was interrupted (restart or power loss) before the switch; the running version stays current`;
            await update({
              stage: 'rolled_back',
              progress: 100,
              message: cut,
              error: { code: 'DEPLOYMENT_FAILED', message: cut },
              deploy: null,
              ...afterUse(false),
            });
            if (pkg !== null) await removeUsed(pkg, false);
            return;
          }
          // Killed after the deploy saved its final phase but before the stage: finish its clean-up
          // and report the outcome it reached, with its cause, instead of resuming a deploy that
          // already ended.
          if (record.phase === 'rolled_back' || record.phase === 'failed') {
            await finishEndedDeploy(deps.deploy, record).catch((error: unknown) =>
              deps.logger.warn(
                { ...errorLogFields(error), version: record.version },
                `cleaning up after the ended deploy failed: ${describeError(error)}`,
              ),
            );
          }
          if (record.phase === 'rolled_back') {
            const cause = record.error === null ? '' : `: ${record.error.message}`;
            await update({
              stage: 'rolled_back',
              progress: 100,
              message: `${record.version} failed and was rolled back${cause}`,
              error: record.error,
              deploy: null,
            });
            return;
          }
          if (record.phase === 'failed') {
            const cause = record.error === null ? '' : ` (${record.error.code}: ${record.error.message})`;
            await fail(
              new UpgradeError(
                'ROLLBACK_FAILED',
                `${record.version} failed${cause} and no version could be brought back healthy; run verify_setup.sh and reinstall a known-good version`,
              ),
              { deploy: null },
            );
            return;
          }
          runInBackground(
            (signal) => deploy(pkg, signal, record),
            () => record.phase === 'unpacking',
          );
          return;
        }
        case 'idle':
        case 'downloaded':
        case 'success':
        case 'rolled_back':
        case 'failed':
          return;
      }
    },

    get reportStats() {
      return reporter.stats;
    },

    async close() {
      work?.abort.abort(new UpgradeError('ABORTED', 'the service is shutting down'));
      await work?.promise;
      await writes;
      await reporter.flush();
    },
  };
}

/** state.json as written by this service; anything else is refused with a clear error. */
export function parseOtaState(value: unknown): OtaState {
  const s = value as Partial<OtaState> | null;
  if (
    s === null ||
    typeof s !== 'object' ||
    typeof s.stage !== 'string' ||
    !otaMachine.states.includes(s.stage)
  ) {
    throw new Error('not an ota-updater state (missing or unknown "stage")');
  }
  return {
    ...initialOtaState(0),
    ...s,
  };
}
