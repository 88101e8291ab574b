// The rolling upgrade of the HA pair, top to bottom:
//
//   PREPARE         the pre-checks (flow/prechecks.ts: health, versions, VIP, keepalived priorities,
//                   database primary, replication connected and within the lag bounds, backup
//                   space); a failed one ends the task with nothing changed. Then pause rsync
//   BACKUP          backup.create on both nodes (jar, config, root key, full database; MD5 + SHA-256
//                   of each file, retention applied), then backup.verify against those checksums
//   UPGRADE_BACKUP  schema scripts (and their rollback scripts) staged, the scripts applied on the
//                   database primary, each in one transaction; replication in sync;
//                   the standby's jar staged, services stopped, jar installed, services started,
//                   `healthyChecksRequired` consecutive healthy checks
//   VIP_SWITCH      the database primary moves with the VIP (flow/switchover.ts): writes fenced on
//                   the old primary, the standby caught up to its last LSN and promoted; then the
//                   two keepalived priorities are swapped (the standby takes the holder's value,
//                   which ties and moves nothing; the holder takes the standby's, which moves the
//                   VIP), so priorities never drift; the VIP must be seen on the standby within
//                   vipSwitchTimeoutMs (retried vipSwitchRetries times); the old primary follows
//                   the new one (pg_rewind when needed) and replication is verified that way.
//                   With databaseSwitchover=0 the database is managed elsewhere: verified only
//   UPGRADE_MASTER  the former primary upgraded the same way (without the schema change)
//   VERIFY          rsync resumed, config checksums equal, both nodes healthy, replication in sync,
//                   VIP on the new primary, downtime recorded; staged files removed -> COMPLETE
//
// Every change is pushed on an undo list, and written to the task's journal in the task store,
// before it is made; a restarted orchestrator rolls a task it finds interrupted back from that
// journal (`rollBackInterrupted`, the same rollback with log source `recovery`). Any failure,
// the deadline of the whole run (upgradeTimeoutMs) or a cancel moves the task to ROLLBACK, which
// undoes the list from the end: former primary restored from its backup, database primary and VIP moved back, standby
// restored, the schema change undone by the package's rollback scripts on the database primary
// (never a restore of the live database: rows written meanwhile stay), rsync resumed, staged files
// removed. The task then ends in
// FAILED, TIMEOUT, UNREACHABLE or CANCELLED as the cause says. A node that cannot be reached is
// skipped by the rollback, which says so in the log.
//
// Cancel is honoured at safe points only: between steps, never between stopping a node's services
// and its health check, nor in the middle of the schema change or the VIP switch. Once VERIFY
// starts both nodes run the new version, and a cancel is logged but no longer rolls back.
//
// Downtime is the time during which no node was known to serve through the VIP (flow/downtime.ts):
// in a normal run, from raising the standby's priority until the VIP is seen on it and it answers
// a healthy check. Services are never stopped on the node holding the VIP on the way forward.
import { UpgradeError, abortError, describeError, isUpgradeError, type Clock } from '@upgrade/core';
import type { BackupKind } from './agent/protocol.js';
import { HA_MACHINE, failureStateOf } from './machine.js';
import { INTERRUPTED } from './ports.js';
import type {
  AuditTrail,
  Cluster,
  NodeClient,
  SafetySettings,
  JournalChange,
  TaskError,
  TaskJournal,
  TaskStore,
  UpgradeConfig,
  UpgradePackage,
  UpgradeTask,
} from './ports.js';
import { createFlowContext, startDeadline, type FlowContext } from './flow/context.js';
import { lockConfig, unlockConfig } from './flow/config-lock.js';
import { awaitHealthy } from './flow/health.js';
import { fileMatches, withRollbackScript } from './flow/journal-files.js';
import {
  SOFTWARE_KINDS,
  createBackup,
  stageFile,
  startServices,
  stopServices,
  verifyBackup,
} from './flow/node-steps.js';
import { runPreChecks } from './flow/prechecks.js';
import { awaitReplicationInSync, readReplication } from './flow/replication.js';
import { awaitCaughtUp, fenceWrites, follow, promote, unfence } from './flow/switchover.js';
import { TaskRecorder, type FlowLogger } from './flow/recorder.js';
import { awaitConfigInSync, setRsync } from './flow/sync.js';
import { MAX_PRIORITY, moveVip } from './flow/vip.js';

export { HA_MACHINE, HA_TRANSITIONS, WORKING_STATES, failureStateOf } from './machine.js';
export type { FlowLogger } from './flow/recorder.js';

export interface UpgradeDeps {
  cluster: Cluster;
  tasks: TaskStore;
  audit: AuditTrail;
  /** upgrade_config; safety settings it does not hold yet take their defaults. */
  config: UpgradeConfig & Partial<SafetySettings>;
  clock: Clock;
  logger?: FlowLogger;
  /**
   * Names of the agent's services to stop and start, in start order. Default: the services the
   * primary's agent lists in its health answer, so the agent's own configuration is the one source.
   */
  services?: readonly string[];
  /**
   * Aborted when this process lost its lease on the task (it stalled past the lease, and another
   * instance took the task over to reconcile it): the run stops at its next safe point and leaves
   * the task and the pair to that instance, writing nothing more.
   */
  leaseLost?: AbortSignal;
}

/** Downtime beyond this is reported as a warning (the upgrade is not undone for it). */
export const DOWNTIME_BUDGET_MS = 4 * 60_000;

/** Task percent when each step starts. */
const PERCENT = {
  check: 2,
  rsyncPause: 5,
  backupCreate: 8,
  backupVerify: 12,
  schemaStage: 16,
  schemaApply: 18,
  standby: { replication: 20, stage: 24, stop: 28, install: 32, start: 36, health: 40 },
  dbFence: 44,
  dbCatchUp: 45,
  dbPromote: 46,
  vipSwitch: 48,
  vipHealth: 51,
  dbFollow: 53,
  dbReplication: 55,
  master: { replication: 58, stage: 62, stop: 66, install: 70, start: 74, health: 78 },
  rsyncResume: 86,
  config: 88,
  health: 90,
  replication: 92,
  vip: 94,
  downtime: 96,
  cleanup: 98,
} as const;

type Role = 'standby' | 'master';

/** A change to the pair, recorded before it is made; the rollback undoes the list from the end. */
type Change =
  | { kind: 'rsync'; node: NodeClient }
  | { kind: 'config_lock'; node: NodeClient }
  /** One applied schema script; undone by its rollback script on whichever node is then primary. */
  | {
      kind: 'schema';
      index: number;
      stagedName: string;
      localPath: string;
      sha256: string;
      content?: string;
    }
  | { kind: 'software'; node: NodeClient; role: Role }
  /** Priorities swapped: `from` had `high` and got `low`, `to` had `low` and got `high`. */
  | { kind: 'vip'; from: NodeClient; to: NodeClient; high: number; low: number }
  /** The database on `node` stopped for the switchover. */
  | { kind: 'db_fence'; node: NodeClient }
  /** `to` promoted in place of `from`. */
  | { kind: 'db_promote'; from: NodeClient; to: NodeClient };

interface Run {
  ctx: FlowContext;
  /** Where the journal is written. */
  tasks: TaskStore;
  pkg: UpgradePackage;
  cancel: AbortSignal;
  /** See UpgradeDeps.leaseLost. */
  leaseLost: AbortSignal | undefined;
  /** False once VERIFY starts: both nodes are upgraded, a cancel no longer rolls back. */
  cancellable: boolean;
  changes: Change[];
  /** Nodes holding staged files of this task. */
  staged: Set<NodeClient>;
  /** backupId by node id. */
  backups: Map<string, string>;
  /** Who held the VIP at the start; null until the checks found out. */
  primary: NodeClient | null;
  databasePrimary: NodeClient | null;
  priorities: Map<string, number>;
  fromVersion: string | null;
  /** Node the flow last saw holding the VIP. */
  vipHolder: NodeClient | null;
  /** Changes the rollback already undid out of order (the VIP, right after the database primary). */
  undone: Set<Change>;
}

/** Thrown at a safe point once the lease on the task is lost: another instance has it now. */
class LeaseLost extends Error {
  constructor() {
    super('the lease on the task was lost to another orchestrator instance');
  }
}

/** Thrown at a safe point once a cancel was requested. */
class CancelRequested extends Error {
  constructor(readonly reason: string) {
    super(`cancel requested: ${reason}`);
  }
}

type Stop =
  | { kind: 'cancel'; reason: string }
  | { kind: 'error'; error: UpgradeError }
  /** The orchestrator stopped mid-run; a restarted one undoes the journal (`message` says where). */
  | { kind: 'interrupted'; message: string };

/**
 * Runs the rolling upgrade of `task` with `pkg`; never throws: the task ends in a final state,
 * every step recorded. `signal` aborted = cancel requested (reason in signal.reason): the run stops
 * at the next safe point and rolls back what it changed.
 */
export async function runRollingUpgrade(
  deps: UpgradeDeps,
  task: UpgradeTask,
  pkg: UpgradePackage,
  signal: AbortSignal,
): Promise<UpgradeTask> {
  const machine = HA_MACHINE.create(task.state, { clock: deps.clock });
  const rec = new TaskRecorder(deps, task, machine);
  if (task.state !== 'IDLE') {
    rec.bestEffort = true;
    await rec.log('ERROR', `task is ${task.state}; only an IDLE task can be run`);
    return rec.task;
  }
  const deadline = startDeadline(deps.clock, deps.config.upgradeTimeoutMs, `upgrade to ${pkg.version}`);
  const run: Run = {
    ctx: createFlowContext(deps, rec, deadline.signal),
    tasks: deps.tasks,
    pkg,
    cancel: signal,
    leaseLost: deps.leaseLost,
    cancellable: true,
    changes: [],
    staged: new Set(),
    backups: new Map(),
    primary: null,
    databasePrimary: null,
    priorities: new Map(),
    fromVersion: null,
    vipHolder: null,
    undone: new Set(),
  };

  let stop: Stop | null = null;
  try {
    if (signal.aborted) throw new CancelRequested(reasonOf(signal));
    await upgrade(run);
  } catch (error) {
    if (error instanceof LeaseLost) {
      // Another instance reconciles the task: nothing more is written or undone from here.
      deps.logger?.error({ taskId: task.id }, `${error.message}; this run stopped and left the task to it`);
      return rec.task;
    }
    stop = stopOf(run, error);
  } finally {
    deadline.stop();
  }
  if (stop !== null) {
    try {
      await finishStopped(run, stop);
    } catch (error) {
      deps.logger?.error({ taskId: task.id, err: error }, 'could not record the end of the upgrade');
    }
  }
  return rec.task;
}

/**
 * What a restarted orchestrator does with a task it finds interrupted: `finish-forward` (the
 * default) completes an upgrade that was past the VIP switch when both nodes can get there safely
 * and rolls back everything else; `roll-back` always rolls back.
 */
export type RecoveryPolicy = 'finish-forward' | 'roll-back';

export const RECOVERY_POLICIES: readonly RecoveryPolicy[] = ['finish-forward', 'roll-back'];

/**
 * Reconciles a task a stopped orchestrator left in a working state or in ROLLBACK, from its journal
 * (log source `recovery`). Past the VIP switch (the database primary and the VIP on the upgraded
 * node) and with `finish-forward`, the pair is inspected first (both nodes answer, the VIP and the
 * database primary where the journal says, the upgraded node healthy on the new version, the
 * package's jar still on this host with its checksum); when all holds, the former primary is
 * upgraded and the pair verified as in a normal run, ending COMPLETE. Otherwise, or when finishing
 * fails, the journal is rolled back like a failed run: FAILED with INTERRUPTED (`message` first),
 * or ROLLBACK_FAILED naming what could not be undone. Either way rsync is resumed, config unlocked
 * and staged files removed. Never throws once the journal names only nodes of the cluster.
 */
export async function recoverInterrupted(
  deps: UpgradeDeps,
  task: UpgradeTask,
  journal: TaskJournal,
  message: string,
  policy: RecoveryPolicy = 'finish-forward',
): Promise<UpgradeTask> {
  const run = runFromJournal(deps, task, journal);
  const { rec } = run.ctx;
  let stop: Stop = { kind: 'interrupted', message };
  if (policy === 'finish-forward') {
    const plan = forwardPlan(run, journal);
    if (plan.ok) {
      const refused = await inspectForForward(run, plan);
      if (refused === null) {
        const stopped = await finishForward(run, plan, message);
        if (stopped === null) return rec.task;
        stop = stopped;
      } else {
        await rec.log('WARNING', `${message}; cannot finish the upgrade forward: ${refused}; rolling back`);
      }
    } else {
      await rec.log('INFO', `${message}; ${plan.reason}: rolling back`);
    }
  }
  try {
    await finishStopped(run, stop);
  } catch (error) {
    deps.logger?.error({ taskId: task.id, err: error }, 'could not record the end of the reconciliation');
  }
  return rec.task;
}

/** `recoverInterrupted` with the `roll-back` policy. */
export async function rollBackInterrupted(
  deps: UpgradeDeps,
  task: UpgradeTask,
  journal: TaskJournal,
  message: string,
): Promise<UpgradeTask> {
  return recoverInterrupted(deps, task, journal, message, 'roll-back');
}

/** The run of an interrupted task, rebuilt from its journal, recording with log source `recovery`. */
function runFromJournal(deps: UpgradeDeps, task: UpgradeTask, journal: TaskJournal): Run {
  const node = (id: string): NodeClient => {
    const found = deps.cluster.nodes.find((n) => n.id === id);
    if (found === undefined)
      throw new UpgradeError(
        'CONFIG_INVALID',
        `the task's journal names node ${id}, which is not configured`,
      );
    return found;
  };
  const changes = journal.changes.map((c): Change => {
    switch (c.kind) {
      case 'rsync':
      case 'config_lock':
      case 'db_fence':
        return { kind: c.kind, node: node(c.node) };
      case 'software':
        return { kind: c.kind, node: node(c.node), role: c.role };
      case 'vip':
        return { kind: c.kind, from: node(c.from), to: node(c.to), high: c.high, low: c.low };
      case 'db_promote':
        return { kind: c.kind, from: node(c.from), to: node(c.to) };
      case 'schema':
        return { ...c };
    }
  });
  const orNull = (id: string | null): NodeClient | null => (id === null ? null : node(id));

  const machine = HA_MACHINE.create(task.state, { clock: deps.clock });
  const rec = new TaskRecorder(deps, task, machine);
  rec.source = 'recovery';
  // Each undo gets its own deadline in rollBack, finishing forward its own in finishForward.
  const ctx = createFlowContext({ ...deps, services: journal.services }, rec, new AbortController().signal);
  ctx.meter.seed(journal.downtime ?? []);
  return {
    ctx,
    tasks: deps.tasks,
    // Only finishing forward reads the package, from `journal.package`; the rollback scripts'
    // paths and contents are in the journal.
    pkg: {
      version: task.toVersion,
      ...(journal.package === undefined
        ? {}
        : { jarPath: journal.package.jarPath, jarSha256: journal.package.jarSha256 }),
    } as UpgradePackage,
    cancel: new AbortController().signal,
    leaseLost: deps.leaseLost,
    cancellable: false,
    changes,
    staged: new Set(journal.staged.map(node)),
    backups: new Map(Object.entries(journal.backups)),
    primary: orNull(journal.primary),
    databasePrimary: orNull(journal.databasePrimary),
    priorities: new Map(Object.entries(journal.priorities)),
    fromVersion: journal.fromVersion,
    vipHolder: orNull(journal.vipHolder),
    undone: new Set(),
  };
}

type ForwardPlan =
  | { ok: true; from: NodeClient; to: NodeClient; managed: boolean; jarPath: string; jarSha256: string }
  | { ok: false; reason: string };

/** Whether the journal says the run was past the VIP switch, with what finishing needs. */
function forwardPlan(run: Run, journal: TaskJournal): ForwardPlan {
  const state = run.ctx.rec.state;
  if (state !== 'VIP_SWITCH' && state !== 'UPGRADE_MASTER' && state !== 'VERIFY')
    return { ok: false, reason: `it was in ${state ?? 'an unknown state'}, before the VIP switch` };
  const vip = run.changes.find((c): c is Extract<Change, { kind: 'vip' }> => c.kind === 'vip');
  if (vip === undefined || run.vipHolder !== vip.to)
    return { ok: false, reason: 'the VIP had not moved to the upgraded node yet' };
  const managed = run.changes.some((c) => c.kind === 'db_fence');
  if (managed && (run.databasePrimary !== vip.to || !run.changes.some((c) => c.kind === 'db_promote')))
    return { ok: false, reason: 'the database primary had not moved to the upgraded node yet' };
  if (journal.package === undefined)
    return { ok: false, reason: "the task's journal does not record the package" };
  return {
    ok: true,
    from: vip.from,
    to: vip.to,
    managed,
    jarPath: journal.package.jarPath,
    jarSha256: journal.package.jarSha256,
  };
}

/**
 * Looks at the pair before finishing forward: null when both nodes can reach the target safely,
 * else the reason not to. Read-only.
 */
async function inspectForForward(run: Run, plan: Extract<ForwardPlan, { ok: true }>): Promise<string | null> {
  const { ctx, pkg } = run;
  const { from, to, managed } = plan;
  try {
    return await ctx.rec.step(
      {
        name: 'recovery.inspect',
        message: `inspecting the pair before finishing the upgrade to ${pkg.version}: versions, VIP, database roles, package`,
      },
      async () => {
        if (!(await fileMatches(plan.jarPath, plan.jarSha256)))
          return `the package's jar is no longer in ${plan.jarPath} with its checksum`;
        const toHealth = await ctx.nodes.call(to, 'health', {}, ctx.signal);
        await ctx.nodes.call(from, 'health', {}, ctx.signal);
        if (!toHealth.ok || toHealth.version !== pkg.version)
          return `${to.id} is not healthy on ${pkg.version} (version ${toHealth.version ?? 'unknown'})`;
        const [toVip, fromVip] = await Promise.all(
          [to, from].map((n) => ctx.nodes.call(n, 'keepalived.status', {}, ctx.signal)),
        );
        if (!toVip?.holdsVip || fromVip?.holdsVip)
          return `the VIP is not on ${to.id} alone (${to.id} ${toVip?.state}, ${from.id} ${fromVip?.state})`;
        if (managed) {
          const [toDb, fromDb] = await Promise.all(
            [to, from].map((n) => ctx.nodes.call(n, 'replication.status', {}, ctx.signal)),
          );
          if (toDb?.role !== 'primary') return `${to.id}'s database is ${toDb?.role}, not the primary`;
          if (fromDb?.role === 'primary') return `${from.id}'s database is a primary too`;
        }
        await ctx.rec.log(
          'INFO',
          `${to.id} holds the VIP${managed ? ' and the database primary' : ''} on ${pkg.version}, healthy; ${from.id} answers; the package is here`,
        );
        return null;
      },
    );
  } catch (error) {
    return describeError(error);
  }
}

/**
 * Finishes an upgrade past the VIP switch: the former primary's database follows the new primary,
 * the former primary is upgraded, the pair verified, COMPLETE. Returns null when it completed,
 * else why it stopped (the caller rolls back).
 */
async function finishForward(
  run: Run,
  plan: Extract<ForwardPlan, { ok: true }>,
  message: string,
): Promise<Stop | null> {
  const { rec, clock, config } = run.ctx;
  const { from, to, managed } = plan;
  const deadline = startDeadline(
    clock,
    config.upgradeTimeoutMs,
    `finishing the upgrade to ${run.pkg.version}`,
  );
  run.ctx = { ...run.ctx, signal: deadline.signal };
  const ctx = run.ctx;
  try {
    await rec.log(
      'WARNING',
      `${message}; it was past the VIP switch: finishing the upgrade forward (former primary ${from.id} next)`,
    );
    if (rec.state === 'VIP_SWITCH')
      await rec.transition('UPGRADE_MASTER', `upgrading former primary ${from.id} to ${run.pkg.version}`);
    if (managed) await followNewPrimary(ctx, from, to, 'unless-streaming');
    if (rec.state === 'UPGRADE_MASTER') {
      // The interrupted install is redone from the start; recorded once.
      run.changes = run.changes.filter((c) => !(c.kind === 'software' && c.node === from));
      await upgradeNode(run, from, 'master');
      await rec.transition('VERIFY', `both nodes run ${run.pkg.version}; verifying the pair`);
    }
    await verifyPair(run, to, from);
    await cleanStaging(ctx, run, PERCENT.cleanup);
    await rec.transition(
      'COMPLETE',
      `upgrade to ${run.pkg.version} complete after a restart of the orchestrator; VIP on ${to.id}, downtime ${ctx.meter.totalMs} ms`,
      'INFO',
      {
        percent: 100,
        primaryAfter: to.id,
        downtimeMs: ctx.meter.totalMs,
        finishedAt: rec.now(),
        error: null,
      },
    );
    return null;
  } catch (error) {
    return stopOf(run, error);
  } finally {
    deadline.stop();
  }
}

async function upgrade(run: Run): Promise<void> {
  const { ctx, pkg } = run;
  const { rec } = ctx;

  await rec.transition('PREPARE', `upgrade to ${pkg.version} started`, 'INFO', { startedAt: rec.now() });
  const { primary, standby } = await inspectPair(run);
  await checkpoint(run);
  await rec.step(
    {
      name: 'prepare.rsync_pause',
      percent: PERCENT.rsyncPause,
      message: 'pausing config sync on both nodes',
    },
    async () => {
      for (const node of [standby, primary]) {
        await remember(run, { kind: 'rsync', node });
        await setRsync(ctx, node, 'pause');
      }
    },
  );
  await checkpoint(run);

  await rec.transition('BACKUP', `backing up ${standby.id} and ${primary.id}`);
  for (const node of [standby, primary]) await backUpNode(run, node);
  await rec.step(
    {
      name: 'backup.config_lock',
      percent: PERCENT.backupVerify,
      message: 'locking config files on both nodes',
    },
    async () => {
      for (const node of [standby, primary]) {
        await remember(run, { kind: 'config_lock', node });
        await lockConfig(ctx, node);
      }
    },
  );
  await checkpoint(run);

  await rec.transition('UPGRADE_BACKUP', `upgrading standby ${standby.id} to ${pkg.version}`);
  await applySchema(run);
  await upgradeNode(run, standby, 'standby');
  await checkpoint(run);

  await rec.transition('VIP_SWITCH', `moving VIP ${ctx.cluster.vip} from ${primary.id} to ${standby.id}`);
  await switchPrimary(run, primary, standby);
  await checkpoint(run);

  await rec.transition('UPGRADE_MASTER', `upgrading former primary ${primary.id} to ${pkg.version}`);
  await upgradeNode(run, primary, 'master');
  await checkpoint(run);

  run.cancellable = false;
  await rec.transition('VERIFY', `both nodes run ${pkg.version}; verifying the pair`);
  await verifyPair(run, standby, primary);
  await cleanStaging(ctx, run, PERCENT.cleanup);
  if (run.cancel.aborted)
    await rec.log('WARNING', `cancel request ignored: both nodes already ran ${pkg.version} when it came`, {
      reason: reasonOf(run.cancel),
    });
  await rec.transition(
    'COMPLETE',
    `upgrade to ${pkg.version} complete; VIP on ${standby.id}, downtime ${ctx.meter.totalMs} ms`,
    'INFO',
    {
      percent: 100,
      primaryAfter: standby.id,
      downtimeMs: ctx.meter.totalMs,
      finishedAt: rec.now(),
      error: null,
    },
  );
}

/** The pre-checks: read-only, nothing on the nodes changes here. */
async function inspectPair(run: Run): Promise<{ primary: NodeClient; standby: NodeClient }> {
  const { ctx, pkg } = run;
  return ctx.rec.step(
    {
      name: 'prepare.check',
      percent: PERCENT.check,
      message:
        'pre-checks: health, versions, VIP, keepalived priorities, database, replication, backup space',
    },
    async () => {
      const facts = await runPreChecks(ctx, pkg);
      const { primary, standby } = facts;
      run.primary = primary;
      run.databasePrimary = facts.databasePrimary;
      run.vipHolder = primary;
      run.fromVersion = facts.fromVersion;
      for (const [id, p] of facts.priorities) run.priorities.set(id, p);
      await saveJournal(run);
      await ctx.rec.patch({ fromVersion: facts.fromVersion, primaryBefore: primary.id });
      if (facts.databasePrimary !== primary)
        await ctx.rec.log(
          'WARNING',
          `database primary ${facts.databasePrimary.id} does not hold the VIP (${primary.id} does); the database is managed elsewhere`,
        );
      await ctx.rec.log(
        'INFO',
        `primary ${primary.id} (VIP, priority ${run.priorities.get(primary.id)}), standby ${standby.id} (priority ${run.priorities.get(standby.id)}), version ${facts.fromVersion ?? 'unknown'} -> ${pkg.version}`,
        { services: [...ctx.services], databasePrimary: facts.databasePrimary.id },
      );
      return { primary, standby };
    },
  );
}

async function backUpNode(run: Run, node: NodeClient): Promise<void> {
  const { ctx } = run;
  const backupId = `task-${ctx.rec.task.id}`;
  const created = await ctx.rec.step(
    {
      name: 'backup.create',
      nodeId: node.id,
      percent: PERCENT.backupCreate,
      message: `backing up ${node.id}`,
    },
    async () => {
      const result = await createBackup(ctx, node, backupId);
      run.backups.set(node.id, result.backupId);
      await saveJournal(run);
      return result;
    },
  );
  await ctx.rec.log(
    'INFO',
    `backup ${created.backupId} on ${node.id}: ${created.files.map((f) => `${f.kind} ${f.sizeBytes} B md5 ${f.md5}`).join(', ')}`,
    { dir: created.dir, removed: created.removed },
  );
  let verified = false;
  try {
    await ctx.rec.step(
      {
        name: 'backup.verify',
        nodeId: node.id,
        percent: PERCENT.backupVerify,
        message: `verifying backup ${created.backupId} on ${node.id}`,
      },
      () => verifyBackup(ctx, node, created.backupId, created.files),
    );
    verified = true;
  } finally {
    await ctx.rec.write('backup', () =>
      ctx.audit.backup({
        taskId: ctx.rec.task.id,
        nodeId: node.id,
        backupId: created.backupId,
        dir: created.dir,
        files: created.files,
        verified,
        at: ctx.rec.now(),
      }),
    );
  }
}

/**
 * Stages the schema scripts and their rollback scripts on the database primary and runs the
 * scripts there, each in one transaction; the standby gets them by replication. Each applied
 * script is recorded with its rollback before the next one runs.
 */
async function applySchema(run: Run): Promise<void> {
  const { ctx, pkg } = run;
  const node = run.databasePrimary as NodeClient;
  const scripts = pkg.schemaScripts.map((s, i) => {
    const n = String(i + 1).padStart(3, '0');
    return {
      ...s,
      stagedName: `${ctx.rec.task.id}-schema-${n}.sql`,
      rollbackName: `${ctx.rec.task.id}-schema-${n}-rollback.sql`,
    };
  });
  const apply = { name: 'standby.schema_apply', nodeId: node.id, percent: PERCENT.schemaApply, message: '' };
  if (scripts.length === 0) {
    await ctx.rec.skip(
      { ...apply, message: 'no schema change' },
      'the package has no schema scripts',
      'INFO',
    );
    return;
  }
  await ctx.rec.step(
    {
      name: 'standby.schema_stage',
      nodeId: node.id,
      percent: PERCENT.schemaStage,
      message: `copying ${scripts.length} schema scripts and their rollback scripts to ${node.id}`,
    },
    async () => {
      for (const script of scripts) {
        await stageFile(ctx, run.staged, node, { localPath: script.path, ...script });
        await stageFile(ctx, run.staged, node, {
          localPath: script.rollback.path,
          stagedName: script.rollbackName,
          sha256: script.rollback.sha256,
        });
      }
    },
  );
  await checkpoint(run);
  await ctx.rec.step(
    { ...apply, message: `applying ${scripts.length} schema scripts on database primary ${node.id}` },
    async () => {
      for (const [index, script] of scripts.entries()) {
        const change: Change = {
          kind: 'schema',
          index,
          stagedName: script.rollbackName,
          localPath: script.rollback.path,
          sha256: script.rollback.sha256,
          ...(script.rollback.content === undefined ? {} : { content: script.rollback.content }),
        };
        // Journalled before it runs: after a crash its outcome is unknown, so its rollback runs.
        await remember(run, change);
        try {
          await ctx.nodes.call(
            node,
            'schema.apply',
            { stagedName: script.stagedName, sha256: script.sha256 },
            ctx.signal,
          );
        } catch (error) {
          // A script that failed ran in one transaction and left nothing; one whose outcome is
          // unknown (no answer) may have committed, so its rollback runs too.
          if (isUpgradeError(error, 'DEPLOYMENT_FAILED')) {
            run.changes.pop();
            await saveJournal(run);
          }
          throw error;
        }
      }
    },
  );
}

/**
 * Upgrades one node that does not hold the VIP: replication in sync, jar staged, then services
 * stopped, jar installed, services started and the node healthy, with no safe point in between.
 */
async function upgradeNode(run: Run, node: NodeClient, role: Role): Promise<void> {
  const { ctx, pkg } = run;
  const { rec } = ctx;
  const percent = PERCENT[role];
  const step = (
    name: string,
    p: number,
    message: string,
  ): { name: string; nodeId: string; percent: number; message: string } => ({
    name: `${role}.${name}`,
    nodeId: node.id,
    percent: p,
    message,
  });

  await rec.step(step('replication', percent.replication, 'waiting for database replication in sync'), () =>
    awaitReplicationInSync(ctx, ctx.cluster.nodes),
  );
  await checkpoint(run);
  const stagedName = `${rec.task.id}-app.jar`;
  await rec.step(step('stage', percent.stage, `copying jar ${pkg.version} to ${node.id}`), () =>
    stageFile(ctx, run.staged, node, { localPath: pkg.jarPath, stagedName, sha256: pkg.jarSha256 }),
  );
  await checkpoint(run);

  // Never the case on the way forward (the VIP has left the node); measured should it ever be.
  const holdsVip = run.vipHolder === node;
  if (holdsVip) ctx.meter.open(`services stopped on VIP holder ${node.id}`);
  await remember(run, { kind: 'software', node, role });
  await rec.step(step('stop', percent.stop, `stopping ${ctx.services.join(', ')} on ${node.id}`), () =>
    stopServices(ctx, node),
  );
  await rec.step(
    step('install', percent.install, `installing jar ${pkg.version} on ${node.id}`),
    async () => {
      const installed = await ctx.nodes.call(
        node,
        'jar.install',
        { stagedName, sha256: pkg.jarSha256, version: pkg.version },
        ctx.signal,
      );
      await rec.log(
        'INFO',
        `${node.id}: jar ${installed.previousVersion ?? 'unknown'} -> ${installed.version}`,
        {
          path: installed.path,
        },
      );
    },
  );
  await rec.step(step('start', percent.start, `starting ${ctx.services.join(', ')} on ${node.id}`), () =>
    startServices(ctx, node),
  );
  await rec.step(
    step(
      'health',
      percent.health,
      `waiting for ${ctx.config.healthyChecksRequired} healthy checks of ${node.id}`,
    ),
    () =>
      awaitHealthy(ctx, node, {
        required: ctx.config.healthyChecksRequired,
        version: pkg.version,
        ...(holdsVip ? { onHealthy: () => ctx.meter.close() } : {}),
      }),
  );
  await rec.log('INFO', `${node.id} runs ${pkg.version} and is healthy`);
}

/**
 * Moves the database primary and the VIP from `primary` to `standby`. With databaseSwitchover=0
 * only the VIP moves and replication is verified.
 */
async function switchPrimary(run: Run, primary: NodeClient, standby: NodeClient): Promise<void> {
  const { ctx } = run;
  const { rec } = ctx;
  const managed = ctx.config.databaseSwitchover === 1;
  const high = run.priorities.get(primary.id) ?? 0;
  const low = run.priorities.get(standby.id) ?? 0;
  if (!(high > low && low >= 1 && high <= MAX_PRIORITY))
    throw new UpgradeError(
      'CONFIG_INVALID',
      `keepalived priorities ${primary.id} ${high}, ${standby.id} ${low} cannot be swapped; the holder's must be the higher`,
    );
  // Recorded first: the rollback, undoing from the end, moves the database primary back first and
  // the VIP right after its promotion (the node taking the VIP must be able to serve writes), then
  // lets the other database follow; swapping back is a no-op if the VIP never moved.
  await remember(run, { kind: 'vip', from: primary, to: standby, high, low });
  if (managed) {
    // Writes stop here: the meter counts from the fence until the VIP answers on the new primary.
    ctx.meter.open(`writes fenced on ${primary.id} for the switchover`);
    const lastLsn = await rec.step(
      {
        name: 'database.fence',
        nodeId: primary.id,
        percent: PERCENT.dbFence,
        message: `fencing writes on database primary ${primary.id}`,
      },
      async () => {
        await remember(run, { kind: 'db_fence', node: primary });
        return fenceWrites(ctx, primary);
      },
    );
    await rec.step(
      {
        name: 'database.catch_up',
        nodeId: standby.id,
        percent: PERCENT.dbCatchUp,
        message: `waiting for ${standby.id} to replay past ${primary.id}'s last position ${lastLsn}`,
      },
      () => awaitCaughtUp(ctx, standby, lastLsn),
    );
    await rec.step(
      {
        name: 'database.promote',
        nodeId: standby.id,
        percent: PERCENT.dbPromote,
        message: `promoting ${standby.id}'s database to primary`,
      },
      async () => {
        await remember(run, { kind: 'db_promote', from: primary, to: standby });
        await promote(ctx, standby);
        run.databasePrimary = standby;
        await saveJournal(run);
      },
    );
  }
  await switchVip(run, primary, standby);
  await followNewPrimary(ctx, primary, standby, managed ? 'always' : 'unmanaged');
}

/**
 * After the switchover: `former`'s database follows `primary` (`'always'`; `'unless-streaming'`
 * skips it when it already streams from it; `'unmanaged'`: the database is managed elsewhere), and
 * replication is checked that way.
 */
async function followNewPrimary(
  ctx: FlowContext,
  former: NodeClient,
  primary: NodeClient,
  mode: 'always' | 'unless-streaming' | 'unmanaged',
): Promise<void> {
  const { rec } = ctx;
  let needed = mode === 'always';
  if (mode === 'unless-streaming') {
    const db = await ctx.nodes.call(former, 'replication.status', {}, ctx.signal);
    needed = db.role !== 'standby' || !db.connected;
  }
  if (needed)
    await rec.step(
      {
        name: 'database.follow',
        nodeId: former.id,
        percent: PERCENT.dbFollow,
        message: `turning ${former.id}'s database into a standby of ${primary.id}`,
      },
      () => follow(ctx, former, primary),
    );
  const managed = mode !== 'unmanaged';
  await rec.step(
    {
      name: 'database.replication',
      percent: PERCENT.dbReplication,
      message: managed
        ? `checking replication from ${primary.id} to ${former.id}`
        : 'checking replication (the database is managed elsewhere)',
    },
    () => awaitReplicationInSync(ctx, ctx.cluster.nodes, managed ? primary : undefined),
  );
}

/**
 * Swaps the two keepalived priorities: the standby takes the holder's (a tie: the VIP stays), then
 * the holder takes the standby's, which moves the VIP. The values never change, only who has which.
 */
async function switchVip(run: Run, primary: NodeClient, standby: NodeClient): Promise<void> {
  const { ctx, pkg } = run;
  const high = run.priorities.get(primary.id) ?? 0;
  const low = run.priorities.get(standby.id) ?? 0;
  await ctx.rec.step(
    {
      name: 'vip.switch',
      nodeId: standby.id,
      percent: PERCENT.vipSwitch,
      message: `swapping keepalived priorities: ${standby.id} ${low} -> ${high}, ${primary.id} ${high} -> ${low}`,
    },
    async () => {
      ctx.meter.open(`VIP moving from ${primary.id} to ${standby.id}`);
      await ctx.nodes.call(standby, 'keepalived.set_priority', { priority: high }, ctx.signal);
      await moveVip(ctx, { from: primary, to: standby, setOn: primary, priority: low });
      run.vipHolder = standby;
      await saveJournal(run);
    },
  );
  await ctx.rec.step(
    {
      name: 'vip.health',
      nodeId: standby.id,
      percent: PERCENT.vipHealth,
      message: `checking ${standby.id} behind the VIP`,
    },
    () =>
      awaitHealthy(ctx, standby, { required: 1, version: pkg.version, onHealthy: () => ctx.meter.close() }),
  );
}

async function verifyPair(run: Run, newPrimary: NodeClient, newStandby: NodeClient): Promise<void> {
  const { ctx, pkg } = run;
  const { rec } = ctx;
  await rec.step(
    {
      name: 'verify.config_unlock',
      percent: PERCENT.rsyncResume,
      message: 'unlocking config files on both nodes',
    },
    async () => {
      for (const node of [newStandby, newPrimary]) await unlockConfig(ctx, node);
    },
  );
  await rec.step(
    {
      name: 'verify.rsync_resume',
      percent: PERCENT.rsyncResume,
      message: 'resuming config sync on both nodes',
    },
    async () => {
      for (const node of [newStandby, newPrimary]) await setRsync(ctx, node, 'resume');
    },
  );
  await rec.step(
    { name: 'verify.config', percent: PERCENT.config, message: 'comparing config checksums of both nodes' },
    () => awaitConfigInSync(ctx),
  );
  await rec.step(
    { name: 'verify.health', percent: PERCENT.health, message: 'checking both nodes' },
    async () => {
      for (const node of [newPrimary, newStandby])
        await awaitHealthy(ctx, node, { required: 1, version: pkg.version });
    },
  );
  await rec.step(
    { name: 'verify.replication', percent: PERCENT.replication, message: 'checking database replication' },
    () =>
      awaitReplicationInSync(
        ctx,
        ctx.cluster.nodes,
        ctx.config.databaseSwitchover === 1 ? newPrimary : undefined,
      ),
  );
  await rec.step(
    {
      name: 'verify.vip',
      percent: PERCENT.vip,
      message: `checking VIP ${ctx.cluster.vip} is on ${newPrimary.id}`,
    },
    async () => {
      const onPrimary = await ctx.nodes.call(newPrimary, 'keepalived.status', {}, ctx.signal);
      const onStandby = await ctx.nodes.call(newStandby, 'keepalived.status', {}, ctx.signal);
      if (!onPrimary.holdsVip || onStandby.holdsVip)
        throw new UpgradeError(
          'HEALTH_CHECK_FAILED',
          `VIP ${ctx.cluster.vip} is not where expected: ${newPrimary.id} ${onPrimary.state}, ${newStandby.id} ${onStandby.state}`,
        );
    },
  );
  await rec.step(
    { name: 'verify.downtime', percent: PERCENT.downtime, message: 'recording the downtime' },
    async () => {
      const downtimeMs = ctx.meter.totalMs;
      await rec.patch({ downtimeMs });
      const over = downtimeMs > DOWNTIME_BUDGET_MS;
      await rec.log(
        over ? 'WARNING' : 'INFO',
        `downtime ${downtimeMs} ms${over ? `, over the budget of ${DOWNTIME_BUDGET_MS} ms` : ''}`,
        { downtimeMs, intervals: ctx.meter.intervals },
      );
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Stopping: rollback and the final state.

async function finishStopped(run: Run, stop: Stop): Promise<void> {
  const { ctx } = run;
  const { rec } = ctx;
  rec.bestEffort = true;
  // The step that stopped the run, before the rollback's own steps replace it on the task.
  const failedStep = rec.task.currentStep;
  const final = failureStateOf(
    stop.kind === 'cancel'
      ? { kind: 'cancel', reason: stop.reason }
      : stop.kind === 'interrupted'
        ? { kind: 'error', code: INTERRUPTED }
        : ctx.signal.aborted
          ? { kind: 'deadline' }
          : { kind: 'error', code: stop.error.code },
  );
  if (stop.kind === 'cancel') {
    // The cancel request may have recorded its time and reason already: the first one stays.
    await rec.refresh();
    stop = { kind: 'cancel', reason: rec.task.cancelReason ?? stop.reason };
    await rec.patch({
      cancelRequestedAt: rec.task.cancelRequestedAt ?? rec.now(),
      cancelReason: stop.reason,
    });
    await rec.log(
      'WARNING',
      `cancel requested (${stop.reason}); stopped after ${rec.task.currentStep ?? 'start'}`,
    );
  } else if (stop.kind === 'interrupted') {
    await rec.log('ERROR', stop.message);
  } else {
    await rec.log('ERROR', `${rec.task.currentStep ?? 'upgrade'} failed: ${describeError(stop.error)}`, {
      code: stop.error.code,
      ...(ctx.nodes.unreachable.length > 0 ? { unreachable: ctx.nodes.unreachable } : {}),
    });
  }

  const machine = rec.machineState;
  const changed = run.changes.length > 0 || run.staged.size > 0;
  const problems = changed || !(machine?.can(final) ?? false) ? await rollBack(run, stop) : [];

  const error: TaskError | null =
    problems.length > 0
      ? {
          code: 'ROLLBACK_FAILED',
          message: `${describeStop(stop)}; rollback incomplete: ${problems.join('; ')}`,
          step: failedStep,
        }
      : stop.kind === 'error'
        ? { code: stop.error.code, message: stop.error.message, step: failedStep }
        : stop.kind === 'interrupted'
          ? {
              code: INTERRUPTED,
              message: `${stop.message}; ${changed ? 'rolled back after the restart' : 'nothing was changed'}`,
              step: failedStep,
            }
          : null;
  const skipped = ctx.nodes.unreachable;
  const summary = [
    stop.kind === 'cancel'
      ? `cancelled: ${stop.reason}`
      : stop.kind === 'interrupted'
        ? 'interrupted by a restart of the orchestrator'
        : describeError(stop.error),
    !changed
      ? 'nothing was changed'
      : problems.length > 0
        ? 'rollback incomplete'
        : skipped.length > 0
          ? 'rolled back what could be reached'
          : 'rolled back',
    ...(skipped.length > 0 ? [`${skipped.join(', ')} unreachable, left as it was`] : []),
  ].join('; ');
  await rec.transition(final, summary, final === 'CANCELLED' && problems.length === 0 ? 'WARNING' : 'ERROR', {
    finishedAt: rec.now(),
    error,
    primaryAfter: run.vipHolder?.id ?? null,
    downtimeMs: run.primary === null ? null : ctx.meter.totalMs,
  });
}

/**
 * Undoes the recorded changes, newest first; returns what could not be undone. Each undo has its
 * own deadline of upgradeTimeoutMs, so one that hangs does not keep the others from running.
 */
async function rollBack(run: Run, stop: Stop): Promise<string[]> {
  const { rec, clock, config } = run.ctx;
  const problems: string[] = [];
  const reason =
    stop.kind === 'cancel'
      ? `cancelled (${stop.reason}); undoing ${run.changes.length} changes`
      : stop.kind === 'interrupted'
        ? `undoing the ${run.changes.length} changes the task's journal recorded before the orchestrator stopped`
        : `undoing ${run.changes.length} changes after ${stop.error.code}`;
  const level = stop.kind === 'cancel' ? 'WARNING' : 'ERROR';
  // A task the orchestrator stopped in the middle of its rollback is rolled back again from there.
  if (rec.state === 'ROLLBACK') await rec.log(level, reason);
  else await rec.transition('ROLLBACK', reason, level);
  const withDeadline = async (what: string, fn: (ctx: FlowContext) => Promise<void>): Promise<void> => {
    const deadline = startDeadline(clock, config.upgradeTimeoutMs, `rollback of ${what}`);
    try {
      await fn({ ...run.ctx, signal: deadline.signal });
    } finally {
      deadline.stop();
    }
  };
  for (const change of [...run.changes].reverse()) {
    const what = describeChange(change);
    try {
      await withDeadline(what, (ctx) => undo(ctx, run, change));
    } catch (error) {
      problems.push(`${what}: ${describeError(error)}`);
      await rec.log('ERROR', `rollback of ${what} failed: ${describeError(error)}`);
    }
  }
  await withDeadline('staged files', (ctx) => cleanStaging(ctx, run, undefined));
  await rec.log(
    problems.length === 0 ? 'INFO' : 'ERROR',
    problems.length === 0 ? 'rollback finished' : `rollback finished with ${problems.length} problems`,
    { problems, unreachable: run.ctx.nodes.unreachable },
  );
  return problems;
}

async function undo(ctx: FlowContext, run: Run, change: Change): Promise<void> {
  const { rec } = ctx;
  switch (change.kind) {
    case 'software': {
      const { node } = change;
      if (
        await skipUnreachable(
          ctx,
          'rollback.restore',
          node,
          `restore it from backup ${run.backups.get(node.id) ?? '(none)'} once it is back`,
        )
      )
        return;
      await restoreNode(ctx, run, node, SOFTWARE_KINDS);
      return;
    }
    case 'vip': {
      if (!run.undone.has(change)) await undoVip(ctx, run, change);
      return;
    }
    case 'db_promote': {
      // Back the same way it went: `from` follows `to` (rewound if needed) and catches up, `to` is
      // fenced, `from` promoted and the VIP moved back to it at once, then `to` follows it. Rows
      // written on `to` meanwhile stay.
      const { from, to } = change;
      if (
        await skipUnreachable(
          ctx,
          'rollback.database_promote',
          from,
          `the database primary stays on ${to.id}`,
        )
      )
        return;
      if (await skipUnreachable(ctx, 'rollback.database_promote', to, `${from.id}'s database stays stopped`))
        return;
      const current = await ctx.nodes.call(to, 'replication.status', {}, ctx.signal);
      if (current.role !== 'primary') {
        await rec.log('INFO', `${to.id}'s database was not promoted (${current.role}); nothing to move back`);
        return;
      }
      await rec.step(
        {
          name: 'rollback.database_follow',
          nodeId: from.id,
          message: `${from.id}'s database follows ${to.id} to catch up`,
        },
        () => follow(ctx, from, to),
      );
      await rec.step(
        {
          name: 'rollback.database_replication',
          message: `waiting for ${from.id} to catch up with ${to.id}`,
        },
        () => awaitReplicationInSync(ctx, ctx.cluster.nodes, to),
      );
      ctx.meter.open(`writes fenced on ${to.id} to move the database primary back`);
      const lastLsn = await rec.step(
        { name: 'rollback.database_fence', nodeId: to.id, message: `fencing writes on ${to.id}` },
        () => fenceWrites(ctx, to),
      );
      await rec.step(
        {
          name: 'rollback.database_catch_up',
          nodeId: from.id,
          message: `waiting for ${from.id} to replay past ${lastLsn}`,
        },
        () => awaitCaughtUp(ctx, from, lastLsn),
      );
      await rec.step(
        { name: 'rollback.database_promote', nodeId: from.id, message: `promoting ${from.id}'s database` },
        () => promote(ctx, from),
      );
      run.databasePrimary = from;
      // Clients write through the VIP: it follows the primary now, not after `to` has been rewound.
      const vip = run.changes.find(
        (c): c is Extract<Change, { kind: 'vip' }> =>
          c.kind === 'vip' && c.from === from && c.to === to && !run.undone.has(c),
      );
      if (vip !== undefined) {
        run.undone.add(vip);
        await undoVip(ctx, run, vip);
      }
      await rec.step(
        {
          name: 'rollback.database_follow',
          nodeId: to.id,
          message: `${to.id}'s database follows ${from.id} again`,
        },
        () => follow(ctx, to, from),
      );
      await rec.step(
        {
          name: 'rollback.database_replication',
          message: `checking replication from ${from.id} to ${to.id}`,
        },
        () => awaitReplicationInSync(ctx, ctx.cluster.nodes, from),
      );
      return;
    }
    case 'db_fence': {
      const { node } = change;
      if (await skipUnreachable(ctx, 'rollback.database_unfence', node, 'its database stays stopped')) return;
      await rec.step(
        {
          name: 'rollback.database_unfence',
          nodeId: node.id,
          message: `starting ${node.id}'s database again`,
        },
        () => unfence(ctx, node),
      );
      return;
    }
    case 'schema': {
      const reachable = ctx.cluster.nodes.filter((n) => !ctx.nodes.isUnreachable(n));
      const primary = (await readReplication(ctx, reachable)).find((v) => v.status.role === 'primary')?.node;
      if (primary === undefined) {
        if (reachable.length < ctx.cluster.nodes.length) {
          await ctx.rec.skip(
            { name: 'rollback.schema', message: '' },
            'the database primary is unreachable; the schema change stays until its rollback script is run',
          );
          return;
        }
        throw new UpgradeError('ROLLBACK_FAILED', 'no database primary to run the schema rollback script on');
      }
      await rec.step(
        {
          name: 'rollback.schema',
          nodeId: primary.id,
          message: `running rollback script ${change.index + 1} of the schema change on database primary ${primary.id}`,
        },
        async () => {
          await withRollbackScript(ctx, change, (localPath) =>
            stageFile(ctx, run.staged, primary, {
              localPath,
              stagedName: change.stagedName,
              sha256: change.sha256,
            }),
          );
          await ctx.nodes.call(
            primary,
            'schema.apply',
            { stagedName: change.stagedName, sha256: change.sha256 },
            ctx.signal,
          );
        },
      );
      if (change.index === 0)
        await rec.step(
          { name: 'rollback.replication', message: 'waiting for database replication in sync' },
          () => awaitReplicationInSync(ctx, reachable),
        );
      return;
    }
    case 'config_lock': {
      const { node } = change;
      if (await skipUnreachable(ctx, 'rollback.config_unlock', node, 'its config files stay read-only'))
        return;
      await rec.step(
        { name: 'rollback.config_unlock', nodeId: node.id, message: `unlocking config files on ${node.id}` },
        () => unlockConfig(ctx, node),
      );
      return;
    }
    case 'rsync': {
      const { node } = change;
      if (await skipUnreachable(ctx, 'rollback.rsync_resume', node, 'its config sync stays paused')) return;
      await rec.step(
        { name: 'rollback.rsync_resume', nodeId: node.id, message: `resuming config sync on ${node.id}` },
        () => setRsync(ctx, node, 'resume'),
      );
      return;
    }
  }
}

/** Stop, restore `kinds` from the node's backup, start, healthy on the version from before. */
/** Swaps the keepalived priorities back (or outbids an unreachable holder) and checks the VIP on `from`. */
async function undoVip(ctx: FlowContext, run: Run, change: Extract<Change, { kind: 'vip' }>): Promise<void> {
  const { rec } = ctx;
  const { from, to, high, low } = change;
  if (await skipUnreachable(ctx, 'rollback.vip', from, `the VIP stays on ${to.id}`)) return;
  ctx.meter.open(`VIP moving back from ${to.id} to ${from.id}`);
  if (ctx.nodes.isUnreachable(to)) {
    // The swapped priority cannot be lowered: outbid it on the original primary instead, so the
    // VIP comes back to the node the flow can see is healthy.
    const outbid = Math.min(MAX_PRIORITY, high + 1);
    await rec.log(
      'WARNING',
      `${to.id} is unreachable: its keepalived priority stays ${high}; raising ${from.id}'s to ${outbid} to take the VIP back (set ${to.id} back to ${low} and ${from.id} to ${high} once it is back)`,
    );
    await rec.step(
      {
        name: 'rollback.vip',
        nodeId: from.id,
        message: `${from.id}'s keepalived priority to ${outbid}; VIP back to ${from.id}`,
      },
      () => moveVip(ctx, { from: to, to: from, setOn: from, priority: outbid, targetOnly: true }),
    );
  } else {
    await rec.step(
      {
        name: 'rollback.vip',
        nodeId: to.id,
        message: `swapping keepalived priorities back: ${from.id} ${high}, ${to.id} ${low}; VIP back to ${from.id}`,
      },
      async () => {
        await ctx.nodes.call(from, 'keepalived.set_priority', { priority: high }, ctx.signal);
        await moveVip(ctx, { from: to, to: from, setOn: to, priority: low });
      },
    );
  }
  run.vipHolder = from;
  await rec.step(
    { name: 'rollback.vip_health', nodeId: from.id, message: `checking ${from.id} behind the VIP` },
    () =>
      awaitHealthy(ctx, from, {
        required: 1,
        version: run.fromVersion,
        onHealthy: () => ctx.meter.close(),
      }),
  );
}

async function restoreNode(
  ctx: FlowContext,
  run: Run,
  node: NodeClient,
  kinds: readonly BackupKind[],
): Promise<void> {
  const { rec } = ctx;
  const backupId = run.backups.get(node.id);
  if (backupId === undefined)
    throw new UpgradeError('ROLLBACK_FAILED', `no backup of ${node.id} to restore from`);
  const holdsVip = run.vipHolder === node;
  if (holdsVip) ctx.meter.open(`services stopped on VIP holder ${node.id} to restore it`);
  await rec.step(
    { name: 'rollback.stop', nodeId: node.id, message: `stopping ${ctx.services.join(', ')} on ${node.id}` },
    () => stopServices(ctx, node),
  );
  await rec.step(
    {
      name: kinds.includes('database') ? 'rollback.database' : 'rollback.restore',
      nodeId: node.id,
      message: `restoring ${kinds.join(', ')} on ${node.id} from ${backupId}`,
    },
    async () => {
      const restored = await ctx.nodes.call(
        node,
        'backup.restore',
        { backupId, kinds: [...kinds] },
        ctx.signal,
      );
      await rec.log('INFO', `${node.id}: restored ${restored.restored.join(', ')} from ${backupId}`);
    },
  );
  await rec.step(
    { name: 'rollback.start', nodeId: node.id, message: `starting ${ctx.services.join(', ')} on ${node.id}` },
    () => startServices(ctx, node),
  );
  await rec.step(
    {
      name: 'rollback.health',
      nodeId: node.id,
      message: `checking ${node.id} on ${run.fromVersion ?? 'its old version'}`,
    },
    () =>
      awaitHealthy(ctx, node, {
        required: ctx.config.healthyChecksRequired,
        version: run.fromVersion,
        ...(holdsVip ? { onHealthy: () => ctx.meter.close() } : {}),
      }),
  );
}

async function skipUnreachable(
  ctx: FlowContext,
  step: string,
  node: NodeClient,
  consequence: string,
): Promise<boolean> {
  if (!ctx.nodes.isUnreachable(node)) return false;
  await ctx.rec.skip(
    { name: step, nodeId: node.id, message: '' },
    `${node.id} is unreachable; ${consequence}`,
  );
  return true;
}

/** Removes this task's staged files; a failure is a warning, never a reason to undo an upgrade. */
async function cleanStaging(ctx: FlowContext, run: Run, percent: number | undefined): Promise<void> {
  for (const node of run.staged) {
    const spec = {
      name: 'cleanup.staging',
      nodeId: node.id,
      message: `removing staged files of this task on ${node.id}`,
      ...(percent === undefined ? {} : { percent }),
    };
    if (ctx.nodes.isUnreachable(node)) {
      await ctx.rec.skip(spec, `${node.id} is unreachable; its staged files stay`);
      continue;
    }
    try {
      await ctx.rec.step(spec, () =>
        ctx.nodes.call(node, 'staging.clean', { prefix: ctx.rec.task.id }, ctx.signal),
      );
      run.staged.delete(node);
    } catch (error) {
      await ctx.rec.log('WARNING', `staged files on ${node.id} not removed: ${describeError(error)}`);
    }
  }
}

/** A safe point: the lease, the run's deadline, then a cancel request. */
async function checkpoint(run: Run): Promise<void> {
  if (run.leaseLost?.aborted === true) throw new LeaseLost();
  if (run.ctx.signal.aborted) throw abortError(run.ctx.signal);
  if (run.cancel.aborted && run.cancellable) throw new CancelRequested(reasonOf(run.cancel));
}

function stopOf(run: Run, error: unknown): Stop {
  if (error instanceof CancelRequested) return { kind: 'cancel', reason: error.reason };
  if (isUpgradeError(error, 'ABORTED') && run.cancel.aborted)
    return { kind: 'cancel', reason: reasonOf(run.cancel) };
  if (isUpgradeError(error)) return { kind: 'error', error };
  return {
    kind: 'error',
    error: new UpgradeError('INTERNAL', `unexpected failure: ${describeError(error)}`, { cause: error }),
  };
}

function reasonOf(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (typeof reason === 'string' && reason !== '') return reason;
  if (reason instanceof Error && reason.name !== 'AbortError') return reason.message;
  return 'cancel requested';
}

function describeStop(stop: Stop): string {
  switch (stop.kind) {
    case 'cancel':
      return `cancelled (${stop.reason})`;
    case 'interrupted':
      return stop.message;
    case 'error':
      return describeError(stop.error);
  }
}

function describeChange(change: Change): string {
  switch (change.kind) {
    case 'rsync':
      return `rsync pause on ${change.node.id}`;
    case 'config_lock':
      return `config lock on ${change.node.id}`;
    case 'schema':
      return `schema script ${change.index + 1}`;
    case 'software':
      return `upgrade of ${change.node.id}`;
    case 'vip':
      return `VIP move from ${change.from.id} to ${change.to.id}`;
    case 'db_fence':
      return `write fence on ${change.node.id}`;
    case 'db_promote':
      return `database primary move from ${change.from.id} to ${change.to.id}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The journal: the run's changes in the task store, written before each change is made.

/** Writes the run's state and changes so far to the task's journal. */
async function saveJournal(run: Run): Promise<void> {
  const { rec } = run.ctx;
  await rec.write('the journal', () => run.tasks.writeJournal(rec.task.id, toJournal(run)));
}

/** Records `change` in memory and in the journal, before the flow makes it. */
async function remember(run: Run, change: Change): Promise<void> {
  run.changes.push(change);
  await saveJournal(run);
}

function toJournal(run: Run): TaskJournal {
  const changes = run.changes.map((c): JournalChange => {
    switch (c.kind) {
      case 'rsync':
      case 'config_lock':
      case 'db_fence':
        return { kind: c.kind, node: c.node.id };
      case 'software':
        return { kind: c.kind, node: c.node.id, role: c.role };
      case 'vip':
        return { kind: c.kind, from: c.from.id, to: c.to.id, high: c.high, low: c.low };
      case 'db_promote':
        return { kind: c.kind, from: c.from.id, to: c.to.id };
      case 'schema':
        return { ...c };
    }
  });
  return {
    fromVersion: run.fromVersion,
    primary: run.primary?.id ?? null,
    databasePrimary: run.databasePrimary?.id ?? null,
    vipHolder: run.vipHolder?.id ?? null,
    priorities: Object.fromEntries(run.priorities),
    backups: Object.fromEntries(run.backups),
    // A file copy in flight when the process died may have left a file behind: every node.
    staged: run.changes.length > 0 || run.staged.size > 0 ? run.ctx.cluster.nodes.map((n) => n.id) : [],
    services: [...run.ctx.services],
    changes,
    ...(run.pkg.jarPath === undefined
      ? {}
      : { package: { version: run.pkg.version, jarPath: run.pkg.jarPath, jarSha256: run.pkg.jarSha256 } }),
    downtime: run.ctx.meter.intervals.map((i) => ({ ...i })),
  };
}
