// Test-side helpers around the one fake systemctl (packages/testkit/fakes/systemctl): a unit directory per
// test file, an environment that puts the fake first on PATH (passed to the adapter, never set on
// process.env), and a way to find and kill every process a test started.
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Directory holding the fake `systemctl` and `test-service.mjs` (src/ and dist/ are both one level below it). */
export const FAKES_DIR = fileURLToPath(new URL('../fakes', import.meta.url));
/** The HTTP service the app units run. */
export const TEST_SERVICE = join(FAKES_DIR, 'test-service.mjs');

/** A unit definition as the fake reads it from `<dir>/<unit>.json`. */
export interface FakeUnit {
  exec: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** Like TimeoutStopSec=: SIGKILL after this long. */
  stopTimeoutMs?: number;
}

export interface FakeSystemd {
  /** FAKE_SYSTEMD_DIR: unit files, pid files, logs. */
  dir: string;
  /** The environment for the systemd adapter and scripts: the fake first on PATH. */
  env: NodeJS.ProcessEnv;
  /** Marks the processes of this fake (an argument of the command line) so they can be found. */
  tag: string;
  addUnit(unit: string, def: FakeUnit): Promise<void>;
  /** An app unit running test-service.mjs in `<root>/current/app` on `port`. */
  addAppUnit(unit: string, root: string, port: number): Promise<void>;
  /** Runs the fake systemctl directly. */
  systemctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Stops every unit, then kills anything with the tag still alive. */
  stopAll(): Promise<void>;
  /** Pids of live (non-zombie) processes carrying the tag. */
  livePids(): Promise<number[]>;
}

/** A fake systemd whose units live in `<base>/systemd`. */
export async function createFakeSystemd(base: string): Promise<FakeSystemd> {
  const dir = join(base, 'systemd');
  await mkdir(dir, { recursive: true });
  const tag = `--fake-systemd-tag=${base}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${FAKES_DIR}:${process.env.PATH ?? ''}`,
    FAKE_SYSTEMD_DIR: dir,
  };
  const systemctl: FakeSystemd['systemctl'] = async (...args) => {
    try {
      const { stdout, stderr } = await run('systemctl', args, { env });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };
  const units = async (): Promise<string[]> =>
    (await readdir(dir)).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
  const livePids = async (): Promise<number[]> => livePidsWithTagPrefix(tag);
  return {
    dir,
    env,
    tag,
    async addUnit(unit, def) {
      await writeFile(join(dir, `${unit}.json`), JSON.stringify(def));
    },
    async addAppUnit(unit, root, port) {
      await writeFile(
        join(dir, `${unit}.json`),
        JSON.stringify({
          exec: [process.execPath, TEST_SERVICE, tag],
          env: { PORT: String(port) },
          cwd: join(root, 'current', 'app'),
        } satisfies FakeUnit),
      );
    },
    systemctl,
    async stopAll() {
      const all = await units();
      if (all.length > 0) await systemctl('stop', ...all);
      for (const pid of await livePids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    },
    livePids,
  };
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/** GET /health of a test service: status, version and pid it reports, or null when nothing answers. */
export async function getHealth(
  port: number,
): Promise<{ status: number; version: string; pid: number } | null> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
    const body = (await response.json()) as { version: string; pid: number };
    return { status: response.status, version: body.version, pid: body.pid };
  } catch {
    return null;
  }
}

/** Live (non-zombie) processes with an argument starting with `prefix`: a tag or a family of tags. */
export async function livePidsWithTagPrefix(prefix: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.split('\0').some((arg) => arg.startsWith(prefix))) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // The container's init does not reap orphans: zombies are dead, whatever /proc still lists.
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}
