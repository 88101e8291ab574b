// A real OpenSSH server on a loopback port for the transport tests: its own host key, a client key
// in AuthorizedKeysFile, key auth only, logging to a file the tests read (one "Accepted publickey"
// line per connection).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from '@upgrade/testkit';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';
const UNSHARE = '/usr/bin/unshare';

/** Why the real-sshd tests cannot run here, or null when they can. */
export function sshdSkipReason(): string | null {
  if (!existsSync(SSHD)) return `${SSHD} is not installed (apt-get install openssh-server)`;
  if (!existsSync('/usr/bin/ssh-keygen')) return 'ssh-keygen is not installed';
  if (process.getuid?.() !== 0) return 'sshd needs root to run and to log in as the test user';
  return null;
}

export interface TestSshd {
  port: number;
  dir: string;
  username: string;
  privateKey: Buffer;
  /** known_hosts pinning this server's host key for [127.0.0.1]:port. */
  knownHosts: string;
  /** The same pin for another port (a proxy in front of this server). */
  knownHostsFor(port: number): string;
  /** known_hosts listing a different key for the same host: a mismatch. */
  wrongKnownHosts: string;
  /** Connections accepted so far (from the server's log). */
  acceptedConnections(): Promise<number>;
  stop(): Promise<void>;
  /** Starts the same server again (same port and keys) after stop(). */
  start(): Promise<void>;
}

async function keygen(path: string): Promise<string> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ha-test', '-f', path]);
  const [type, key] = (await readFile(`${path}.pub`, 'utf8')).trim().split(/\s+/);
  return `${type} ${key}`;
}

export async function startTestSshd(): Promise<TestSshd> {
  const dir = await mkdtemp(join(tmpdir(), 'ha-sshd-'));
  const hostKey = await keygen(join(dir, 'host_key'));
  const otherKey = await keygen(join(dir, 'other_host_key'));
  const clientKey = await keygen(join(dir, 'client_key'));
  await writeFile(join(dir, 'authorized_keys'), `${clientKey}\n`, { mode: 0o600 });
  const port = await freePort();
  const log = join(dir, 'sshd.log');
  await writeFile(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      'LogLevel INFO',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  // sshd refuses to start without its privilege-separation directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  let child: ChildProcess | null = null;

  // The server runs in its own mount namespace with an empty home for the login user, so sessions
  // do not run the machine's shell start-up files (~/.bashrc), which may be slow or hang.
  const home = join(dir, 'home');
  await mkdir(home, { recursive: true });
  const start = async (): Promise<void> => {
    child = existsSync(UNSHARE)
      ? spawn(
          UNSHARE,
          [
            '--mount',
            '--propagation',
            'private',
            '--',
            '/bin/sh',
            '-c',
            'mount --bind "$1" /root && exec "$2" -D -f "$3" -E "$4"',
            'sshd-test',
            home,
            SSHD,
            join(dir, 'sshd_config'),
            log,
          ],
          { stdio: 'ignore' },
        )
      : spawn(SSHD, ['-D', '-f', join(dir, 'sshd_config'), '-E', log], { stdio: 'ignore' });
    await waitFor(() => accepts(port), { timeoutMs: 5_000, what: `sshd on port ${port}` });
  };
  const stop = async (): Promise<void> => {
    const current = child;
    child = null;
    if (current === null || current.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
    current.kill('SIGTERM');
    // Connections already open live on in their own sshd processes until their clients close.
    await exited;
  };
  await start();
  return {
    port,
    dir,
    username: 'root',
    privateKey: await readFile(join(dir, 'client_key')),
    knownHosts: `[127.0.0.1]:${port} ${hostKey}\n`,
    knownHostsFor: (other) => `[127.0.0.1]:${other} ${hostKey}\n`,
    wrongKnownHosts: `[127.0.0.1]:${port} ${otherKey}\n`,
    async acceptedConnections() {
      const text = await readFile(log, 'utf8').catch(() => '');
      return text.split('\n').filter((line) => line.includes('Accepted publickey')).length;
    },
    start,
    async stop() {
      await stop();
    },
  };
}

export async function removeTestSshd(sshd: TestSshd | undefined): Promise<void> {
  if (sshd === undefined) return;
  await sshd.stop();
  await rm(sshd.dir, { recursive: true, force: true });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
