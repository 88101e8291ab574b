// The lab is one set of network namespaces and one VIP per machine: two test runs on the same
// machine (a developer's run beside a CI run) would tear down each other's nodes mid-scenario. This
// global setup holds an exclusive flock(1) on a machine-wide file for the whole run; the lock lives
// in a `flock` child whose stdin is our pipe, so it is released when this process ends in any way
// (a crash or SIGKILL included), never left behind.
import { spawn } from 'node:child_process';
import { once } from 'node:events';

/** Shared by every checkout on the machine; override with LAB_LOCK_FILE. */
const LOCK_FILE = process.env.LAB_LOCK_FILE ?? '/tmp/upgrade-platform-lab.lock';
/** A run that waits longer than this is told why it waits. */
const NOTICE_AFTER_MS = 2000;

export async function setup(): Promise<() => Promise<void>> {
  const holder = spawn('flock', ['-x', LOCK_FILE, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const notice = setTimeout(() => {
    process.stderr.write(
      `waiting for the lab lock ${LOCK_FILE}: another test run on this machine uses the lab\n`,
    );
  }, NOTICE_AFTER_MS);
  try {
    await new Promise<void>((resolve, reject) => {
      holder.once('error', reject);
      holder.once('exit', (code) =>
        reject(new Error(`flock ${LOCK_FILE} exited with ${code ?? 'a signal'}`)),
      );
      holder.stdout.setEncoding('utf8');
      holder.stdout.on('data', (text: string) => {
        if (text.includes('locked')) resolve();
      });
    });
  } finally {
    clearTimeout(notice);
  }
  return async () => {
    holder.stdin.end();
    if (holder.exitCode === null) await once(holder, 'exit');
  };
}
