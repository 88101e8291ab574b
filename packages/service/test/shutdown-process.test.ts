import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';

const fixture = join(import.meta.dirname, 'fixtures', 'server.mjs');

interface Running {
  child: ChildProcess;
  base: string;
  logs: Record<string, unknown>[];
  /** Resolves with the first log line whose msg matches. */
  logged(msg: string | RegExp): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

async function start(): Promise<Running> {
  const child = spawn(process.execPath, [fixture], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const logs: Record<string, unknown>[] = [];
  const waiters: {
    matches: (line: Record<string, unknown>) => boolean;
    resolve: (line: Record<string, unknown>) => void;
  }[] = [];
  createInterface({ input: child.stdout }).on('line', (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    logs.push(line);
    for (const w of waiters) if (w.matches(line)) w.resolve(line);
  });
  const logged = (msg: string | RegExp) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const matches = (line: Record<string, unknown>) =>
        typeof msg === 'string' ? line.msg === msg : msg.test(String(line.msg));
      const seen = logs.find(matches);
      if (seen) resolve(seen);
      else waiters.push({ matches, resolve });
    });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const listening = await logged(/^Server listening at /);
  return { child, base: String(listening.msg).replace('Server listening at ', ''), logs, logged, exited };
}

describe('a service process', () => {
  it('finishes the in-flight request on SIGTERM, runs close hooks and exits 0', async () => {
    const service = await start();
    const slow = request(`${service.base}/slow`);
    const started = await service.logged('slow started');
    service.child.kill('SIGTERM');
    const res = await slow;
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ done: true });
    expect(await service.exited).toBe(0);
    expect(service.logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['shutdown: signal received, draining', 'pool closed', 'shutdown: done']),
    );
    expect(started.reqId).toBe(res.headers['x-request-id']);
  });

  it('exits 1 at once on a second signal', async () => {
    const service = await start();
    const hang = request(`${service.base}/hang`).catch(() => 'cut');
    await service.logged('hang started');
    service.child.kill('SIGTERM');
    await service.logged('shutdown: signal received, draining');
    service.child.kill('SIGINT');
    expect(await service.exited).toBe(1);
    expect(await hang).toBe('cut');
  });
});
