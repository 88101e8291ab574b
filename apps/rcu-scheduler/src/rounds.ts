// One upgrade round, top to bottom: pick the firmware by rotation, trigger every group, wait,
// poll until every host is final or the deadline, then store one log row per host and advance the
// rotation in the same transaction. The round is recorded before its first vendor call and its
// results are spooled to disk before the database is tried, so neither a crash nor a database
// outage loses a result.
import { setMaxListeners } from 'node:events';
import {
  UpgradeError,
  abortError,
  createRotation,
  describeError,
  isUpgradeError,
  type Clock,
} from '@upgrade/core';
import {
  isFinalStatus,
  type FinalHostStatus,
  type FirmwareFile,
  type HostGroup,
  type HostProgress,
  type ResultSpool,
  type RoundGroup,
  type RoundRecord,
  type RoundStore,
  type RoundSummary,
  type RoundTrigger,
  type UpgradeLogEntry,
  type VendorApi,
} from './ports.js';

/** How rounds run; all durations in ms so tests and demos compress time by configuration. */
export interface RoundSettings {
  files: readonly FirmwareFile[];
  repeats: number;
  groups: readonly HostGroup[];
  initialDelayMs: number;
  pollIntervalMs: number;
  pollTimeoutMs: number;
  /** Vendor calls in flight at once (triggers, and queries within one poll). */
  concurrency: number;
  /** Longest wait between two attempts to store results while the database is down. */
  storeRetryMaxMs: number;
}

/** The small logger the flow writes to; pino fits. */
export interface RoundLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What a round tells its watchers while it runs (terminal progress, metrics). */
export type RoundEvent =
  | {
      type: 'started';
      roundId: string;
      filename: string;
      trigger: RoundTrigger;
      hosts: number;
      startedAt: Date;
      groups: readonly { roomTypeId: number; hosts: readonly string[] }[];
      /** True when a restart resumes a round an earlier run left unfinished. */
      resumed: boolean;
    }
  | { type: 'triggered'; roundId: string; roomTypeId: number; uuid: string | null; error: string | null }
  | { type: 'progress'; roundId: string; final: number; hosts: number; meanProgress: number }
  /** Where each host of one group stands, after the group's poll (or as the watch starts and ends). */
  | { type: 'hosts'; roundId: string; roomTypeId: number; hosts: HostSnapshot[] }
  | { type: 'stored'; roundId: string; rows: number }
  | { type: 'store-retry'; roundId: string; attempt: number; error: string }
  | { type: 'finished'; roundId: string; filename: string; summary: RoundSummary; stored: boolean };

/** One host of a running round as watchers see it. */
export interface HostSnapshot {
  host: string;
  status: HostProgress['status'];
  /** 0-100 */
  progress: number;
}

export interface RoundDeps {
  vendor: VendorApi;
  store: RoundStore;
  spool: ResultSpool;
  clock: Clock;
  logger: RoundLogger;
  newId: () => string;
  onEvent?: (event: RoundEvent) => void;
}

export interface RoundOutcome {
  roundId: string;
  filename: string;
  summary: RoundSummary;
  /** False when the results are still in the spool (database down); they are stored later. */
  stored: boolean;
}

/** Where one host stands during the watch. */
interface HostState {
  group: RoundGroup;
  host: string;
  startTime: Date;
  status: HostProgress['status'];
  progress: number;
  configVersion: string | null;
  firmwareVersion: string | null;
  endTime: Date | null;
  detail: string | null;
}

/**
 * Runs one round. Resolves with `null` when another instance already ran this schedule slot.
 * The database being down at the end does not fail the round: results wait in the spool and the
 * store is retried until it answers or `signal` aborts.
 */
export async function runRound(
  deps: RoundDeps,
  settings: RoundSettings,
  options: { trigger: RoundTrigger; slot: number | null; roundId?: string; signal?: AbortSignal },
): Promise<RoundOutcome | null> {
  const { clock, store } = deps;
  const rotation = createRotation(settings.files, settings.repeats);
  const { version: file, state: rotationAfter } = rotation.next(await store.loadRotation());
  const round: RoundRecord = {
    id: options.roundId ?? deps.newId(),
    slot: options.slot,
    trigger: options.trigger,
    filename: file.filename,
    fileType: file.fileType,
    rotationAfter,
    status: 'running',
    startedAt: new Date(clock.now()),
    finishedAt: null,
    groups: settings.groups.map((g) => ({
      roomTypeId: g.roomTypeId,
      hosts: [...g.hosts],
      uuid: null,
      triggerError: null,
    })),
  };
  try {
    await store.startRound(round);
  } catch (error) {
    // Another instance already ran this slot; the scheduler logs the skipped tick.
    if (isUpgradeError(error, 'CONFLICT') && options.slot !== null) return null;
    throw error;
  }
  const hosts = round.groups.reduce((n, g) => n + g.hosts.length, 0);
  deps.logger.info(
    { roundId: round.id, filename: file.filename, groups: round.groups.length, hosts },
    'round started',
  );
  emitStarted(deps, round, false);

  const states = await withRoundSignal(options.signal, settings, async (signal) => {
    await triggerGroups(deps, settings, round, signal);
    return watchRound(deps, settings, round, {
      initialDelayMs: settings.initialDelayMs,
      timeoutMs: settings.pollTimeoutMs,
      signal,
    });
  });
  return finishRound(deps, settings, round, states, options.signal);
}

/**
 * Finishes a round a crash or restart left running: polls its upgrades again by uuid until the
 * round's original deadline (at least once, and past the deadline one whole poll), logs what the vendor no longer knows as failed, then
 * stores everything and advances the rotation exactly as the round would have.
 */
export async function resumeRound(
  deps: RoundDeps,
  settings: RoundSettings,
  round: RoundRecord,
  signal?: AbortSignal,
): Promise<RoundOutcome> {
  const deadline = round.startedAt.getTime() + settings.initialDelayMs + settings.pollTimeoutMs;
  deps.logger.warn(
    { roundId: round.id, filename: round.filename, startedAt: round.startedAt.toISOString() },
    'resuming a round left unfinished by a restart',
  );
  emitStarted(deps, round, true);
  // With less than one poll interval left (a slow restart), each group gets one whole poll, bounded
  // by the adapter's own timeouts: a cut one interval after the deadline could end that poll before
  // the vendor answered and log as timeout hosts the vendor reports completed.
  const remainingMs = deadline - deps.clock.now();
  const states = await withRoundSignal(signal, settings, (roundSignal) =>
    watchRound(deps, settings, round, {
      initialDelayMs: 0,
      timeoutMs: remainingMs < settings.pollIntervalMs ? 0 : remainingMs,
      signal: roundSignal,
      unconfirmed: "interrupted: the service stopped before this group's upgrade was confirmed by the vendor",
    }),
  );
  return finishRound(deps, settings, round, states, signal);
}

/**
 * Stores results left in the spool by an earlier run (database down at the end of a round, then
 * a restart). Stops at the first failure: the database is still down, try again later.
 */
export async function flushSpool(deps: Pick<RoundDeps, 'store' | 'spool' | 'logger'>): Promise<number> {
  let stored = 0;
  for (const batch of await deps.spool.list()) {
    await deps.store.finishRound(batch.roundId, batch.entries, batch.finishedAt);
    await deps.spool.remove(batch.roundId);
    deps.logger.info({ roundId: batch.roundId, rows: batch.entries.length }, 'stored spooled round results');
    stored++;
  }
  return stored;
}

function emitStarted(deps: RoundDeps, round: RoundRecord, resumed: boolean): void {
  deps.onEvent?.({
    type: 'started',
    roundId: round.id,
    filename: round.filename,
    trigger: round.trigger,
    hosts: round.groups.reduce((n, g) => n + g.hosts.length, 0),
    startedAt: round.startedAt,
    groups: round.groups.map((g) => ({ roomTypeId: g.roomTypeId, hosts: g.hosts })),
    resumed,
  });
}

async function triggerGroups(
  deps: RoundDeps,
  settings: RoundSettings,
  round: RoundRecord,
  signal: AbortSignal | undefined,
): Promise<void> {
  const file: FirmwareFile = { filename: round.filename, fileType: round.fileType };
  await forEachLimited(round.groups, settings.concurrency, async (group) => {
    let outcome: { uuid: string } | { error: string };
    try {
      outcome = await deps.vendor.triggerUpgrade({ group, file }, signal);
      group.uuid = outcome.uuid;
    } catch (error) {
      if (signal?.aborted) throw error;
      group.triggerError = `trigger failed: ${describeError(error)}`;
      outcome = { error: group.triggerError };
      deps.logger.warn({ roundId: round.id, roomTypeId: group.roomTypeId, err: error }, 'trigger failed');
    }
    deps.onEvent?.({
      type: 'triggered',
      roundId: round.id,
      roomTypeId: group.roomTypeId,
      uuid: group.uuid,
      error: group.triggerError,
    });
    try {
      await deps.store.recordTrigger(round.id, group.roomTypeId, outcome);
    } catch (error) {
      // The uuid only helps recovery after a crash; the round itself goes on and its results are
      // spooled, so a database hiccup here must not cost the upgrade.
      deps.logger.warn(
        { roundId: round.id, roomTypeId: group.roomTypeId, err: error },
        'could not record trigger',
      );
    }
  });
}

async function watchRound(
  deps: RoundDeps,
  settings: RoundSettings,
  round: RoundRecord,
  options: {
    initialDelayMs: number;
    timeoutMs: number;
    signal: AbortSignal | undefined;
    unconfirmed?: string;
  },
): Promise<HostState[]> {
  const { clock } = deps;
  const states: HostState[] = [];
  const byGroup = new Map<RoundGroup, Map<string, HostState>>();
  for (const group of round.groups) {
    const hostStates = new Map<string, HostState>();
    for (const host of group.hosts) {
      const state: HostState = {
        group,
        host,
        startTime: round.startedAt,
        status: 'pending',
        progress: 0,
        configVersion: null,
        firmwareVersion: null,
        endTime: null,
        detail: null,
      };
      const reason = group.triggerError ?? (group.uuid === null ? (options.unconfirmed ?? null) : null);
      if (reason !== null) settle(state, 'failed', reason, round.startedAt);
      hostStates.set(host, state);
      states.push(state);
    }
    byGroup.set(group, hostStates);
  }
  const emitHosts = (group: RoundGroup): void => {
    if (deps.onEvent === undefined) return;
    const hosts = [...(byGroup.get(group)?.values() ?? [])].map((s) => ({
      host: s.host,
      status: s.status,
      progress: s.progress,
    }));
    deps.onEvent({ type: 'hosts', roundId: round.id, roomTypeId: group.roomTypeId, hosts });
  };
  for (const group of round.groups) emitHosts(group);
  const hasOpen = (group: RoundGroup): boolean =>
    [...(byGroup.get(group)?.values() ?? [])].some((s) => !isFinalStatus(s.status));
  const watched = round.groups.filter((g) => g.uuid !== null && hasOpen(g));

  if (watched.length > 0) {
    const start = clock.now();
    const deadline = start + options.timeoutMs;
    // Each group polls on its own loop, so a group whose queries hang (the adapter's retries can
    // hold one call for several response timeouts) costs only its own polls. A call still running
    // at the deadline is cut one poll interval later: the round ends within one interval of it.
    const watch = new AbortController();
    setMaxListeners(watched.length * 3 + settings.concurrency + 10, watch.signal);
    const forward = (): void => watch.abort(options.signal?.reason);
    if (options.signal?.aborted) forward();
    else options.signal?.addEventListener('abort', forward, { once: true });
    const cutTimer = new AbortController();
    // No deadline left (a resumed round's single poll): nothing to cut; see resumeRound.
    if (options.timeoutMs > 0)
      clock.sleep(deadline + settings.pollIntervalMs - clock.now(), cutTimer.signal).then(
        () => watch.abort(new UpgradeError('TIMEOUT', 'the round passed its poll deadline')),
        () => undefined, // the watch ended first
      );
    const limit = createLimiter(settings.concurrency);
    const onProgress = (group: RoundGroup): void => {
      emitHosts(group);
      const final = states.filter((s) => isFinalStatus(s.status)).length;
      const meanProgress =
        states.length === 0 ? 100 : states.reduce((n, s) => n + s.progress, 0) / states.length;
      deps.onEvent?.({ type: 'progress', roundId: round.id, final, hosts: states.length, meanProgress });
    };
    const watchGroup = async (group: RoundGroup): Promise<void> => {
      const hosts = byGroup.get(group) ?? new Map<string, HostState>();
      const initialDelay = Math.min(options.initialDelayMs, options.timeoutMs);
      if (initialDelay > 0) await clock.sleep(initialDelay, watch.signal);
      for (;;) {
        const started = clock.now();
        await limit(() => pollGroup(deps, round, group, hosts, watch.signal), watch.signal);
        onProgress(group);
        if (!hasOpen(group) || clock.now() >= deadline) return;
        // Every interval from the start of the last query; the query at the deadline is still made.
        await clock.sleep(Math.min(started + settings.pollIntervalMs, deadline) - clock.now(), watch.signal);
      }
    };
    const outcomes = await Promise.allSettled(watched.map(watchGroup));
    cutTimer.abort();
    options.signal?.removeEventListener('abort', forward);
    // A shutdown ends the round here; a cut at the deadline only ends the groups it caught.
    if (options.signal?.aborted) throw abortError(options.signal);
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected' && !watch.signal.aborted) throw outcome.reason;
    }
    const at = new Date(clock.now());
    for (const group of round.groups) {
      if (!hasOpen(group)) continue;
      for (const s of byGroup.get(group)?.values() ?? []) {
        if (!isFinalStatus(s.status)) {
          settle(
            s,
            'timeout',
            `still ${s.status} at ${s.progress}% when the poll timeout of ${settings.pollTimeoutMs} ms ended`,
            at,
          );
        }
      }
      emitHosts(group);
    }
  }
  return states;
}

/** One query of one group; a failure of this group never stops the others. */
async function pollGroup(
  deps: RoundDeps,
  round: RoundRecord,
  group: RoundGroup,
  hosts: Map<string, HostState>,
  signal: AbortSignal,
): Promise<void> {
  const uuid = group.uuid as string;
  const now = (): Date => new Date(deps.clock.now());
  let answer: HostProgress[];
  try {
    answer = await deps.vendor.queryProgress(uuid, signal);
  } catch (error) {
    if (signal.aborted) throw error;
    if (
      isUpgradeError(error, 'VENDOR_CONTRACT_VIOLATION', 'NOT_FOUND', 'VALIDATION_FAILED', 'UNAUTHORIZED')
    ) {
      // Not going to get better by asking again: the group's open hosts end here, with the reason.
      const reason = isUpgradeError(error, 'NOT_FOUND')
        ? error.message
        : `progress query failed: ${describeError(error)}`;
      for (const s of hosts.values()) if (!isFinalStatus(s.status)) settle(s, 'failed', reason, now());
      deps.logger.warn(
        { roundId: round.id, roomTypeId: group.roomTypeId, uuid, err: error },
        'group ended by vendor error',
      );
      return;
    }
    // Transient (5xx after retries, timeout, unreachable): the next poll asks again.
    deps.logger.warn(
      { roundId: round.id, roomTypeId: group.roomTypeId, uuid, err: error },
      'progress query failed; retrying next poll',
    );
    return;
  }
  for (const p of answer) {
    const s = hosts.get(p.host);
    if (s === undefined || isFinalStatus(s.status)) continue;
    s.status = p.status;
    s.progress = p.progress;
    s.configVersion = p.configVersion ?? s.configVersion;
    s.firmwareVersion = p.firmwareVersion ?? s.firmwareVersion;
    if (isFinalStatus(p.status)) {
      settle(
        s,
        p.status,
        p.status === 'completed' ? null : (p.message ?? `vendor reported ${p.status}`),
        now(),
      );
    }
  }
}

function settle(s: HostState, status: FinalHostStatus, detail: string | null, at: Date): void {
  s.status = status;
  s.detail = detail;
  s.endTime = at;
  if (status === 'completed') s.progress = 100;
}

async function finishRound(
  deps: RoundDeps,
  settings: RoundSettings,
  round: RoundRecord,
  states: HostState[],
  signal: AbortSignal | undefined,
): Promise<RoundOutcome> {
  const finishedAt = new Date(deps.clock.now());
  const entries: UpgradeLogEntry[] = states.map((s) => ({
    roundId: round.id,
    uuid: s.group.uuid,
    roomTypeId: s.group.roomTypeId,
    host: s.host,
    filename: round.filename,
    fileType: round.fileType,
    status: s.status as FinalHostStatus,
    startTime: s.startTime,
    endTime: s.endTime ?? finishedAt,
    configVersion: s.configVersion,
    firmwareVersion: s.firmwareVersion,
    detail: s.detail,
  }));
  const summary = summarise(entries);
  let spooled = true;
  try {
    await deps.spool.put(round.id, { roundId: round.id, finishedAt, entries });
  } catch (error) {
    // A full or read-only disk must not cost the results: the database may still take them.
    spooled = false;
    deps.logger.error(
      { roundId: round.id, err: error },
      'could not spool round results; storing them without a local copy',
    );
  }
  const stored = await storeWithRetry(deps, settings, round.id, entries, finishedAt, signal);
  if (stored) {
    if (spooled)
      await deps.spool.remove(round.id).catch((error: unknown) => {
        // Harmless: finishRound is idempotent, so a later flushSpool stores nothing twice and drops the file.
        deps.logger.warn({ roundId: round.id, err: error }, 'could not remove spooled round results');
      });
    deps.onEvent?.({ type: 'stored', roundId: round.id, rows: entries.length });
  }
  deps.logger.info({ roundId: round.id, filename: round.filename, ...summary, stored }, 'round finished');
  deps.onEvent?.({ type: 'finished', roundId: round.id, filename: round.filename, summary, stored });
  return { roundId: round.id, filename: round.filename, summary, stored };
}

/**
 * Retries the final write while the database is unavailable, backing off up to the configured
 * maximum. Gives up (results stay spooled) only on abort, i.e. shutdown, or on an error that a
 * retry cannot fix.
 */
async function storeWithRetry(
  deps: RoundDeps,
  settings: RoundSettings,
  roundId: string,
  entries: UpgradeLogEntry[],
  finishedAt: Date,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  let delay = Math.min(500, settings.storeRetryMaxMs);
  for (let attempt = 1; ; attempt++) {
    try {
      await deps.store.finishRound(roundId, entries, finishedAt);
      return true;
    } catch (error) {
      const retryable = isUpgradeError(error) && error.retryable;
      deps.onEvent?.({ type: 'store-retry', roundId, attempt, error: describeError(error) });
      if (!retryable) {
        deps.logger.error({ roundId, err: error }, 'storing round results failed; they stay in the spool');
        return false;
      }
      deps.logger.warn(
        { roundId, attempt, err: error },
        'database unavailable; results kept in the spool, retrying',
      );
      try {
        await deps.clock.sleep(delay, signal);
      } catch {
        return false;
      }
      delay = Math.min(delay * 2, settings.storeRetryMaxMs);
    }
  }
}

/**
 * The signal a round's vendor calls share: up to `concurrency` calls listen on it at once, more
 * than Node's default listener warning threshold, so the round owns a child signal sized for that.
 * Its link to the long-lived outer signal is removed when the round ends.
 */
async function withRoundSignal<T>(
  outer: AbortSignal | undefined,
  settings: RoundSettings,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  setMaxListeners(settings.concurrency + 10, controller.signal);
  const forward = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) forward();
  else outer?.addEventListener('abort', forward, { once: true });
  try {
    return await fn(controller.signal);
  } finally {
    outer?.removeEventListener('abort', forward);
  }
}

/** Counts per final status. */
export function summarise(entries: readonly { status: FinalHostStatus }[]): RoundSummary {
  const summary: RoundSummary = { total: entries.length, completed: 0, failed: 0, timeout: 0 };
  for (const e of entries) summary[e.status]++;
  return summary;
}

/**
 * At most `limit` calls of the returned function run at once; the others wait in arrival order, so
 * a group that just polled queues behind the ones that have not. A waiting call leaves the queue
 * when `signal` aborts.
 */
function createLimiter(limit: number): <T>(fn: () => Promise<T>, signal: AbortSignal) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  const release = (): void => {
    const next = waiting.shift();
    if (next === undefined) active--;
    else next(); // the slot passes on
  };
  return async (fn, signal) => {
    if (active < limit) active++;
    else {
      await new Promise<void>((resolve, reject) => {
        if (signal.aborted) {
          reject(abortError(signal));
          return;
        }
        const onAbort = (): void => {
          waiting.splice(waiting.indexOf(granted), 1);
          reject(abortError(signal));
        };
        const granted = (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        waiting.push(granted);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
    try {
      return await fn();
    } finally {
      release();
    }
  };
}

/** Runs `fn` over `items` with at most `limit` at once; the first rejection rejects the whole. */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}
