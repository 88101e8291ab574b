// The two-node HA lab (infra/lab/lab.sh) for tests: bring it up and down, and reach what an
// orchestrator and a test need: node addresses, the SSH key and pinned host keys, the VIP, the
// agent command per node, keepalived priorities, the database on each node.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { runCommand, type RunResult } from './run.js';

/** infra/lab/lab.sh. */
export const LAB_SCRIPT = fileURLToPath(new URL('../../infra/lab/lab.sh', import.meta.url));
export const DEFAULT_LAB_DIR = '/tmp/ha-lab';
export const LAB_NODE_IDS = ['node-a', 'node-b'] as const;
export type LabNodeId = (typeof LAB_NODE_IDS)[number];
/** The namespaces lab.sh creates (`client` is cleaned up too, for labs that add one). */
export const LAB_NAMESPACES = ['lab', 'node-a', 'node-b', 'client'] as const;

/** lab.sh's exit codes. */
export const LAB_EXIT = {
  failed: 1,
  usage: 2,
  notRoot: 3,
  noNetns: 4,
  missingPackage: 5,
  degraded: 6,
  down: 7,
} as const;

export interface LabOptions {
  /** State dir (LAB_DIR); default /tmp/ha-lab. */
  dir?: string;
  /** keepalived advert_int in seconds (VRRP v3 allows 0.1). Default 1. */
  advertInt?: 1 | 0.1;
  /** Seconds between config syncs on the standby. Default 1. */
  syncIntervalS?: number;
  /** Include the PostgreSQL pair. Default true. */
  postgres?: boolean;
  /** Rebuild even a healthy lab (a known start: VIP on node-a, initial priorities and versions). */
  fresh?: boolean;
}

export type LabAvailability = { ok: true } | { ok: false; code: number; reason: string };

export interface HostKey {
  algorithm: string;
  /** Base64 key blob, as in known_hosts. */
  base64: string;
  /** OpenSSH fingerprint, `SHA256:...`. */
  sha256: string;
}

/** One node as lab.sh wrote it to lab.json, plus derived addresses. */
export interface LabNode {
  id: LabNodeId;
  ip: string;
  namespace: string;
  dir: string;
  /** The node agent's JSON config (apps/ha-orchestrator/src/agent/config.ts). */
  agentConfig: string;
  keepalivedConfig: string;
  keepalivedPidFile: string;
  initialPriority: number;
  /** FAKE_SYSTEMD_DIR of this node's units. */
  systemdDir: string;
  configDir: string;
  rootKey: string;
  jarFile: string;
  versionFile: string;
  rsyncStatusFile: string;
  pgDataDir: string;
  pgSocketDir: string;
  logsDir: string;
  /** http://<ip>:8080, the application stand-in on this node. */
  appUrl: string;
  hostKey: HostKey;
}

export interface LabSsh {
  user: string;
  port: number;
  privateKeyPath: string;
  publicKeyPath: string;
  knownHostsPath: string;
}

interface LabFile {
  dir: string;
  vip: string;
  prefixLength: number;
  rootIp: string;
  advertInt: number;
  syncIntervalS: number;
  postgres: boolean;
  appPort: number;
  pgPort: number;
  pgBin: string;
  appUnit: string;
  syncUnit: string;
  initialVersion: string;
  ssh: { user: string; port: number; privateKey: string; publicKey: string; knownHosts: string };
  agent: { node: string; script: string };
  fakesDir: string;
  nodes: Omit<LabNode, 'appUrl' | 'hostKey'>[];
}

export interface Lab {
  dir: string;
  vip: string;
  /** http://<vip>:8080: the application through the VIP. */
  vipUrl: string;
  /** The root namespace's address on the lab bridge (the orchestrator calls from here). */
  rootIp: string;
  advertInt: number;
  syncIntervalS: number;
  appPort: number;
  pgPort: number;
  appUnit: string;
  syncUnit: string;
  initialVersion: string;
  /** Path of the node agent script the agent command runs (exists once ha-orchestrator is built). */
  agentScript: string;
  nodes: readonly [LabNode, LabNode];
  ssh: LabSsh;
  node(id: LabNodeId): LabNode;
  /** The remote command that runs the node agent with that node's config. */
  agentCommand(id: LabNodeId): string;
  /** `ssh` argv (without the remote command) with the lab key and pinned host keys. */
  sshArgs(id: LabNodeId): string[];
  /** Runs a command on the node over SSH, as the orchestrator does. */
  exec(id: LabNodeId, command: string, options?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  /** The fake systemctl on the node (over SSH, so units start inside the node's namespace). */
  systemctl(id: LabNodeId, ...args: string[]): Promise<RunResult>;
  /** One SQL statement on the node's database (from the root namespace over TCP), rows as text. */
  psql(id: LabNodeId, sql: string): Promise<string>;
  /** Nodes whose eth0 carries the VIP right now. */
  vipHolders(): Promise<LabNodeId[]>;
  /** Resolves with the ms waited once `id` alone holds the VIP; rejects after timeoutMs. */
  waitForVip(id: LabNodeId, timeoutMs?: number): Promise<number>;
  priorities(): Promise<Record<LabNodeId, number>>;
  /** Rewrites the keepalived priorities given, then SIGHUPs those keepalived (back to back). */
  setPriorities(priorities: Partial<Record<LabNodeId, number>>): Promise<void>;
  /**
   * The nodes as ha-orchestrator's HA_NODES lists them (apps/ha-orchestrator/src/config.ts), the
   * current primary first.
   */
  haNodes(primary?: LabNodeId): HaNodeSettings[];
  /** HA_NODES, SSH_KNOWN_HOSTS_FILE and VIP for an ha-orchestrator process talking to this lab. */
  orchestratorEnv(primary?: LabNodeId): Record<string, string>;
  /** `lab.sh status` output. */
  status(): Promise<string>;
  down(): Promise<void>;
}

/** One entry of ha-orchestrator's HA_NODES. */
export interface HaNodeSettings {
  id: string;
  host: string;
  port: number;
  username: string;
  privateKeyFile: string;
  agentCommand: string;
}

/**
 * Contents of a jar for the lab's application stand-in (infra/lab/app-standin.mjs): it reports the
 * version from the version file the agent writes; the markers make a bad build for rollback tests.
 */
export function standInJar(version: string, fault?: 'crash-on-start' | 'fail-health'): Buffer {
  return Buffer.from(`ha-lab stand-in jar ${version}\n${fault === undefined ? '' : `ha-lab: ${fault}\n`}`);
}

function scriptEnv(options: LabOptions): NodeJS.ProcessEnv {
  return {
    ...process.env,
    LAB_DIR: options.dir ?? DEFAULT_LAB_DIR,
    ADVERT_INT: String(options.advertInt ?? 1),
    SYNC_INTERVAL: String(options.syncIntervalS ?? 1),
    LAB_POSTGRES: options.postgres === false ? '0' : '1',
    NODE: process.execPath,
  };
}

async function labScript(verb: string[], options: LabOptions, timeoutMs = 90_000): Promise<RunResult> {
  return runCommand('bash', [LAB_SCRIPT, ...verb], { env: scriptEnv(options), timeoutMs });
}

const firstLine = (text: string): string => text.trim().split('\n')[0] ?? '';

/** Whether the lab can run here (root, network namespaces, packages); the reason when not. */
export async function checkLab(options: LabOptions = {}): Promise<LabAvailability> {
  if (process.platform !== 'linux') return { ok: false, code: -1, reason: 'the lab needs Linux' };
  const result = await labScript(['check'], options, 20_000);
  if (result.code === 0) return { ok: true };
  return {
    ok: false,
    code: result.code,
    reason: firstLine(result.stderr) || `lab.sh check exited ${result.code}`,
  };
}

/** Brings the lab up (a healthy one with the same settings is reused) and opens it. */
export async function startLab(options: LabOptions = {}): Promise<Lab> {
  const result = await labScript(options.fresh === true ? ['up', '--fresh'] : ['up'], options);
  if (result.code !== 0)
    throw new Error(`lab.sh up exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
  return openLab(options.dir ?? DEFAULT_LAB_DIR);
}

/** Tears the lab down: processes, namespaces, links, state dir. */
export async function stopLab(options: LabOptions = {}): Promise<void> {
  const result = await labScript(['down'], options, 30_000);
  if (result.code !== 0) throw new Error(`lab.sh down exited ${result.code}: ${result.stderr.trim()}`);
}

/** What is left of a lab: namespaces, the root link, processes tagged with its state dir, the dir. */
export async function labResidue(dir = DEFAULT_LAB_DIR): Promise<{
  namespaces: string[];
  rootLink: boolean;
  pids: number[];
  stateDir: boolean;
}> {
  const netns = existsSync('/run/netns') ? await readdir('/run/netns') : [];
  const namespaces = netns.filter((ns) => (LAB_NAMESPACES as readonly string[]).includes(ns));
  const rootLink = existsSync('/sys/class/net/ha-root');
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      if (!cmdline.includes(`${dir}/`) && !cmdline.includes(`--ha-lab=${dir}`)) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return { namespaces, rootLink, pids, stateDir: existsSync(dir) };
}

function parseKnownHosts(text: string): Map<string, HostKey> {
  const keys = new Map<string, HostKey>();
  for (const line of text.split('\n')) {
    const [host, algorithm, base64] = line.trim().split(/\s+/);
    if (host === undefined || algorithm === undefined || base64 === undefined) continue;
    const digest = createHash('sha256').update(Buffer.from(base64, 'base64')).digest('base64');
    keys.set(host, { algorithm, base64, sha256: `SHA256:${digest.replace(/=+$/, '')}` });
  }
  return keys;
}

const PRIORITY_LINE = /^(\s*priority\s+)(\d+)/m;

/** Opens a lab that is already up, from its `lab.json`. */
export async function openLab(dir = DEFAULT_LAB_DIR): Promise<Lab> {
  const file = JSON.parse(await readFile(`${dir}/lab.json`, 'utf8')) as LabFile;
  const hostKeys = parseKnownHosts(await readFile(file.ssh.knownHosts, 'utf8'));
  const nodes = file.nodes.map((n): LabNode => {
    const hostKey = hostKeys.get(n.ip);
    if (hostKey === undefined) throw new Error(`no host key for ${n.ip} in ${file.ssh.knownHosts}`);
    return { ...n, appUrl: `http://${n.ip}:${file.appPort}`, hostKey };
  });
  const [a, b] = nodes;
  if (a === undefined || b === undefined) throw new Error(`${dir}/lab.json lists fewer than two nodes`);
  const node = (id: LabNodeId): LabNode => (id === 'node-a' ? a : b);
  const ssh: LabSsh = {
    user: file.ssh.user,
    port: file.ssh.port,
    privateKeyPath: file.ssh.privateKey,
    publicKeyPath: file.ssh.publicKey,
    knownHostsPath: file.ssh.knownHosts,
  };
  const sshArgs = (id: LabNodeId): string[] => [
    '-i',
    ssh.privateKeyPath,
    '-p',
    String(ssh.port),
    '-o',
    `UserKnownHostsFile=${ssh.knownHostsPath}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=5',
    `${ssh.user}@${node(id).ip}`,
  ];
  const exec: Lab['exec'] = (id, command, options = {}) =>
    runCommand('ssh', [...sshArgs(id), command], {
      input: options.input,
      timeoutMs: options.timeoutMs ?? 30_000,
    });
  const readPriority = async (id: LabNodeId): Promise<number> => {
    const match = PRIORITY_LINE.exec(await readFile(node(id).keepalivedConfig, 'utf8'));
    if (match?.[2] === undefined) throw new Error(`no priority line in ${node(id).keepalivedConfig}`);
    return Number(match[2]);
  };
  const vipHolders = async (): Promise<LabNodeId[]> => {
    const holders: LabNodeId[] = [];
    for (const id of LAB_NODE_IDS) {
      const out = await runCommand('ip', ['-n', node(id).namespace, '-o', 'addr', 'show', 'dev', 'eth0'], {
        timeoutMs: 5000,
      });
      if (out.stdout.includes(` ${file.vip}/`)) holders.push(id);
    }
    return holders;
  };
  const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
  const agentCommand = (id: LabNodeId): string =>
    `${quote(file.agent.node)} ${quote(file.agent.script)} --config ${quote(node(id).agentConfig)}`;
  const haNodes = (primary: LabNodeId = 'node-a'): HaNodeSettings[] =>
    (primary === 'node-a' ? (['node-a', 'node-b'] as const) : (['node-b', 'node-a'] as const)).map((id) => ({
      id,
      host: node(id).ip,
      port: ssh.port,
      username: ssh.user,
      privateKeyFile: ssh.privateKeyPath,
      agentCommand: agentCommand(id),
    }));

  return {
    dir: file.dir,
    vip: file.vip,
    vipUrl: `http://${file.vip}:${file.appPort}`,
    rootIp: file.rootIp,
    advertInt: file.advertInt,
    syncIntervalS: file.syncIntervalS,
    appPort: file.appPort,
    pgPort: file.pgPort,
    appUnit: file.appUnit,
    syncUnit: file.syncUnit,
    initialVersion: file.initialVersion,
    agentScript: file.agent.script,
    nodes: [a, b],
    ssh,
    node,
    agentCommand,
    sshArgs,
    exec,
    systemctl: (id, ...args) =>
      exec(
        id,
        `PATH=${quote(`${file.fakesDir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`)} ` +
          `FAKE_SYSTEMD_DIR=${quote(node(id).systemdDir)} systemctl ${args.map(quote).join(' ')}`,
      ),
    async psql(id, sql) {
      const n = node(id);
      const args = ['-h', n.ip, '-p', String(file.pgPort), '-U', 'postgres', '-d', 'app', '-XqAt'];
      const out = await runCommand(`${file.pgBin}/psql`, [...args, '-c', sql], {
        timeoutMs: 10_000,
      });
      if (out.code !== 0) throw new Error(`psql on ${id} exited ${out.code}: ${out.stderr.trim()}`);
      return out.stdout.trim();
    },
    vipHolders,
    async waitForVip(id, timeoutMs = 30_000) {
      const started = performance.now();
      // Address events from both nodes instead of polling: spawning `ip` every few ms would load the
      // machine and the event loop a load generator shares, and blur the timing.
      let lastEvent: number | null = null;
      let wake: (() => void) | null = null;
      const monitors = LAB_NODE_IDS.map((n) => {
        const child = spawn('ip', ['-n', node(n).namespace, '-o', 'monitor', 'address'], {
          stdio: ['ignore', 'pipe', 'ignore'],
        });
        child.stdout.on('data', (chunk: Buffer) => {
          if (!chunk.toString().includes(` ${file.vip}/`)) return;
          lastEvent = performance.now();
          wake?.();
        });
        return child;
      });
      try {
        await new Promise((resolve) => setTimeout(resolve, 30));
        for (;;) {
          const holders = await vipHolders();
          if (holders.length === 1 && holders[0] === id) return (lastEvent ?? performance.now()) - started;
          const left = timeoutMs - (performance.now() - started);
          if (left <= 0)
            throw new Error(
              `VIP not on ${id} alone after ${timeoutMs} ms (holders: ${holders.join(', ') || 'none'})`,
            );
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.min(left, 500));
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = null;
        }
      } finally {
        for (const child of monitors) child.kill();
      }
    },
    async priorities() {
      return { 'node-a': await readPriority('node-a'), 'node-b': await readPriority('node-b') };
    },
    async setPriorities(priorities) {
      const ids = LAB_NODE_IDS.filter((id) => priorities[id] !== undefined);
      for (const id of ids) {
        const path = node(id).keepalivedConfig;
        const text = await readFile(path, 'utf8');
        await writeFile(`${path}.tmp`, text.replace(PRIORITY_LINE, `$1${priorities[id]}`));
        await rename(`${path}.tmp`, path);
      }
      const pids = await Promise.all(
        ids.map(async (id) => Number((await readFile(node(id).keepalivedPidFile, 'utf8')).trim())),
      );
      for (const pid of pids) process.kill(pid, 'SIGHUP');
    },
    haNodes,
    orchestratorEnv(primary = 'node-a') {
      return {
        HA_NODES: JSON.stringify(haNodes(primary)),
        SSH_KNOWN_HOSTS_FILE: ssh.knownHostsPath,
        VIP: file.vip,
      };
    },
    async status() {
      const out = await labScript(['status'], { dir: file.dir }, 30_000);
      return out.stdout.trim();
    },
    down: () => stopLab({ dir: file.dir }),
  };
}
