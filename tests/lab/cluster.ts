// What the pair looks like from outside the orchestrator, for assertions: each node's application
// (its /health), the VIP holder, replication as the database primary reports it, config sync and
// config checksums as each node's agent reports them. And `resetLab`, which brings a lab an
// upgrade scenario changed back to its start without rebuilding it.
import { writeFile } from 'node:fs/promises';
import { LAB_NODE_IDS, standInJar, type Lab, type LabNodeId } from './lab.js';
import { runCommand } from './run.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Retries `probe` (every 200 ms) until it returns a value; rejects with the last problem. */
export async function eventually<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = `: ${(error as Error).message}`;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last}`);
    await sleep(200);
  }
}

/** One call of the node agent over SSH, as the orchestrator makes it; the result or a thrown error. */
export async function agentCall<T = Record<string, unknown>>(
  lab: Lab,
  id: LabNodeId,
  op: string,
  args: Record<string, unknown> = {},
  timeoutMs = 20_000,
): Promise<T> {
  const request = { op, args, timeoutMs, requestId: `lab-${id}-${op}-${Date.now()}` };
  const result = await lab.exec(id, lab.agentCommand(id), { input: `${JSON.stringify(request)}\n` });
  const line = result.stdout.trim().split('\n').at(-1) ?? '';
  let answer: { ok?: boolean; result?: T; error?: { message: string } };
  try {
    answer = JSON.parse(line) as typeof answer;
  } catch {
    throw new Error(`agent ${op} on ${id}: no answer (ssh exit ${result.code}): ${result.stderr.trim()}`);
  }
  if (answer.ok !== true || answer.result === undefined)
    throw new Error(`agent ${op} on ${id} failed: ${answer.error?.message ?? line}`);
  return answer.result;
}

export interface AppHealth {
  status: number;
  version: string | null;
  node: string | null;
}

/** GET /health of the application on one node (not through the VIP). */
export async function appHealth(lab: Lab, id: LabNodeId): Promise<AppHealth> {
  try {
    const response = await fetch(`${lab.node(id).appUrl}/health`, { signal: AbortSignal.timeout(2000) });
    const body = (await response.json()) as { version?: string; node?: string };
    return { status: response.status, version: body.version ?? null, node: body.node ?? null };
  } catch {
    return { status: 0, version: null, node: null };
  }
}

export interface PairState {
  apps: Record<LabNodeId, AppHealth>;
  vipHolders: LabNodeId[];
  /** Which node's database is the primary (not in recovery); null when none or both. */
  databasePrimary: LabNodeId | null;
  /** `application_name state sync_state` rows of pg_stat_replication on the database primary. */
  replication: string;
  /** Whether the standby has replayed everything the primary sent. */
  replicationCaughtUp: boolean;
  rsync: Record<LabNodeId, { paused: boolean; lastSyncAt: string | null; lastResult: string | null }>;
  /** Whether the config-sync unit runs, per node. */
  rsyncUnitActive: Record<LabNodeId, boolean>;
  configDigests: Record<LabNodeId, string>;
}

/** Reads everything a scenario asserts about the pair. */
export async function readPair(lab: Lab): Promise<PairState> {
  const apps = {} as PairState['apps'];
  const rsync = {} as PairState['rsync'];
  const rsyncUnitActive = {} as PairState['rsyncUnitActive'];
  const configDigests = {} as PairState['configDigests'];
  for (const id of LAB_NODE_IDS) {
    apps[id] = await appHealth(lab, id);
    rsync[id] = await agentCall(lab, id, 'rsync.status');
    rsyncUnitActive[id] =
      (await lab.systemctl(id, 'is-active', lab.syncUnit)).stdout.trim().split('\n').at(-1) === 'active';
    configDigests[id] = (await agentCall<{ digest: string }>(lab, id, 'config.checksums')).digest;
  }
  const databasePrimary = await databasePrimaryOf(lab);
  const on = databasePrimary ?? 'node-a';
  const replication = await lab.psql(
    on,
    "select application_name || ' ' || state || ' ' || sync_state from pg_stat_replication",
  );
  const caughtUp = await eventually('the standby to replay what the primary sent', 10_000, async () =>
    (await lab.psql(
      on,
      'select coalesce(bool_and(replay_lsn = pg_current_wal_lsn()), false) from pg_stat_replication',
    )) === 't'
      ? true
      : undefined,
  ).catch(() => false);
  return {
    databasePrimary,
    apps,
    vipHolders: await lab.vipHolders(),
    replication,
    replicationCaughtUp: caughtUp,
    rsync,
    rsyncUnitActive,
    configDigests,
  };
}

export type DatabaseRole = 'primary' | 'standby' | 'down';

export async function databaseRole(lab: Lab, id: LabNodeId): Promise<DatabaseRole> {
  try {
    return (await lab.psql(id, 'select pg_is_in_recovery()')) === 't' ? 'standby' : 'primary';
  } catch {
    return 'down';
  }
}

/** The node whose database is the only primary, or null. */
export async function databasePrimaryOf(lab: Lab): Promise<LabNodeId | null> {
  const primaries: LabNodeId[] = [];
  for (const id of LAB_NODE_IDS) if ((await databaseRole(lab, id)) === 'primary') primaries.push(id);
  return primaries.length === 1 ? (primaries[0] ?? null) : null;
}

/**
 * The database pair back to node-a primary, node-b streaming from it, through the node agents'
 * own switchover operations (fence, promote, follow with pg_rewind).
 */
export async function resetDatabase(lab: Lab): Promise<void> {
  const slow = 60_000;
  if ((await databaseRole(lab, 'node-a')) === 'down')
    await agentCall(lab, 'node-a', 'database.unfence', {}, slow);
  await lab.psql('node-b', 'select pg_wal_replay_resume()').catch(() => undefined);
  if ((await databaseRole(lab, 'node-a')) === 'standby') {
    if ((await databaseRole(lab, 'node-b')) === 'primary') {
      // As the orchestrator does it: node-a must have everything node-b has before it is promoted.
      const receiving = await eventually('node-a streaming from node-b', 30_000, async () =>
        (await lab.psql('node-a', 'select status from pg_stat_wal_receiver')) === 'streaming'
          ? true
          : undefined,
      ).catch(() => false);
      const { lastLsn } = await agentCall<{ lastLsn: string }>(lab, 'node-b', 'database.fence', {}, slow);
      if (receiving)
        await eventually(`node-a to replay past ${lastLsn}`, 30_000, async () =>
          (await lab.psql('node-a', `select pg_last_wal_replay_lsn() > '${lastLsn}'::pg_lsn`)) === 't'
            ? true
            : undefined,
        );
    }
    await agentCall(lab, 'node-a', 'database.promote', {}, slow);
  }
  const streaming = async (): Promise<boolean> =>
    (await lab.psql(
      'node-a',
      "select count(*) from pg_stat_replication where application_name = 'node-b' and state = 'streaming'",
    )) === '1';
  if (!(await streaming()))
    await agentCall(
      lab,
      'node-b',
      'database.follow',
      { primaryHost: lab.node('node-a').ip, primaryPort: lab.pgPort },
      slow,
    );
}

/**
 * Puts the pair back where `lab.sh up` leaves it, after a scenario: both links up, initial keepalived
 * priorities (VIP on node-a), the initial jar and version running on both nodes, config sync running
 * on node-b only, replication streaming. Cheaper than a rebuild, and the host keys the orchestrator
 * pinned stay valid.
 */
export async function resetLab(lab: Lab): Promise<void> {
  for (const node of lab.nodes) {
    await runCommand('ip', ['-n', node.namespace, 'link', 'set', 'eth0', 'up'], { timeoutMs: 5000 });
  }
  await resetDatabase(lab);
  const priorities = await lab.priorities();
  const initial = {
    'node-a': lab.node('node-a').initialPriority,
    'node-b': lab.node('node-b').initialPriority,
  };
  if (priorities['node-a'] !== initial['node-a'] || priorities['node-b'] !== initial['node-b'])
    await lab.setPriorities(initial);
  await lab.waitForVip('node-a', 30_000);
  for (const id of LAB_NODE_IDS) {
    const health = await appHealth(lab, id);
    if (health.status === 200 && health.version === lab.initialVersion) continue;
    const node = lab.node(id);
    await writeFile(node.jarFile, standInJar(lab.initialVersion));
    await writeFile(node.versionFile, `${lab.initialVersion}\n`);
    const restart = await lab.systemctl(id, 'restart', lab.appUnit);
    if (restart.code !== 0) throw new Error(`restarting the app on ${id}: ${restart.stderr.trim()}`);
  }
  await lab.systemctl('node-a', 'stop', lab.syncUnit);
  const start = await lab.systemctl('node-b', 'start', lab.syncUnit);
  if (start.code !== 0) throw new Error(`starting config sync on node-b: ${start.stderr.trim()}`);
  await eventually('both apps healthy on the initial version', 20_000, async () => {
    for (const id of LAB_NODE_IDS) {
      const health = await appHealth(lab, id);
      if (health.status !== 200 || health.version !== lab.initialVersion) return undefined;
    }
    return true;
  });
  await eventually('replication to node-b streaming', 30_000, async () =>
    (await lab.psql('node-a', "select state from pg_stat_replication where application_name = 'node-b'")) ===
    'streaming'
      ? true
      : undefined,
  );
}
