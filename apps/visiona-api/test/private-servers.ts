// A PostgreSQL and a Redis of one test file's own, on free loopback ports, that the test can
// freeze (SIGSTOP to every process of the server, as a stuck host or a partition looks to the API)
// and thaw. The shared servers other suites use are never touched.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '@upgrade/db';
import { freePort, waitFor } from '@upgrade/testkit';

const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PrivateServer {
  url: string;
  /** Stops every process of the server: connections stay open, nothing answers. */
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
}

/** Runs as `postgres` when this process is root (PostgreSQL refuses root), else as this user. */
function postgresIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

async function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Signals the server's whole process group (it was started detached, so it leads one). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** The pids of `root`'s children, from /proc: PostgreSQL's backends each lead a session of their own. */
function childrenOf(root: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === root) children.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return children;
}

/** SIGSTOP / SIGCONT to the server and every process it started (backends, background workers). */
function signalTree(child: ChildProcess, signal: 'SIGSTOP' | 'SIGCONT'): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  // The parent first on SIGSTOP, so it starts no process the walk would miss.
  signalGroup(child, signal);
  for (const pid of childrenOf(child.pid)) {
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}

function serverOf(child: ChildProcess, url: string, dir: string | undefined): PrivateServer {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    url,
    freeze: () => signalTree(child, 'SIGSTOP'),
    thaw: () => signalTree(child, 'SIGCONT'),
    stop: async () => {
      signalTree(child, 'SIGCONT');
      // SIGINT: PostgreSQL's fast shutdown; Redis exits on it too.
      signalGroup(child, 'SIGINT');
      const kill = setTimeout(() => signalGroup(child, 'SIGKILL'), 5_000);
      await exited;
      clearTimeout(kill);
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** initdb + postgres in a temporary directory; the URL names the `postgres` database. */
export async function startPrivatePostgres(): Promise<PrivateServer> {
  const dir = mkdtempSync(join(tmpdir(), 'visiona-pg-'));
  const ids = postgresIds();
  if (ids !== undefined) chownSync(dir, ids.uid, ids.gid);
  const data = join(dir, 'data');
  execFileSync(
    join(PG_BIN, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'],
    { stdio: 'ignore', ...(ids ?? {}) },
  );
  const port = await freePort();
  const child = spawn(
    join(PG_BIN, 'postgres'),
    ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'],
    { detached: true, stdio: 'ignore', ...(ids ?? {}) },
  );
  child.unref();
  const server = serverOf(child, `postgres://postgres@127.0.0.1:${port}/postgres`, dir);
  // Listening comes before accepting queries (57P03 while starting up): wait for an answer.
  const probe = await openDatabase({ url: server.url, pool: { max: 1, connectionTimeoutMillis: 1_000 } });
  try {
    await waitFor(
      async () => {
        try {
          await probe.ping();
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the private PostgreSQL to answer' },
    );
  } finally {
    await probe.close();
  }
  return server;
}

/** redis-server without persistence on a free port. */
export async function startPrivateRedis(): Promise<PrivateServer> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { detached: true, stdio: 'ignore' },
  );
  child.unref();
  const server = serverOf(child, `redis://127.0.0.1:${port}`, undefined);
  await waitFor(() => reachable(port), { timeoutMs: 30_000, what: 'the private Redis to listen' });
  return server;
}
