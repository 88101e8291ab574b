// The built CLI as a process (`pnpm --filter @upgrade/visiona-api build` first): migrations
// against a fresh database, a bad configuration, and `serve` answering and shutting down cleanly.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { useRedisPrefix, useTestDatabase } from '@upgrade/testkit';
import { beforeAll, describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const database = useTestDatabase();
const redis = useRedisPrefix();

function run(args: string[], env: Record<string, string>) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('visiona-api CLI', () => {
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run pnpm --filter @upgrade/visiona-api build`);
  });

  it('migrate status lists the pending migration, up applies it, status then lists it applied', () => {
    const env = { DATABASE_URL: database.url };
    const before = run(['migrate', 'status'], env);
    expect([before.code, before.stdout.trim()]).toEqual([0, 'pending  0000_init']);
    const up = run(['migrate', 'up'], env);
    expect([up.code, up.stdout.trim()]).toEqual([0, 'applied 0000_init']);
    expect(run(['migrate', 'up'], env).stdout.trim()).toBe('up to date');
    expect(run(['migrate', 'status'], env).stdout.trim()).toBe('applied  0000_init');
  });

  // Each process start costs seconds on a loaded 2-core machine: one or two per test, not five.
  it('exits 2 with one line per bad variable', () => {
    const bad = run(['serve'], { PORT: 'eighty', SESSION_COOKIE_SECURE: 'maybe', DATABASE_URL: 'mysql://x' });
    expect(bad.code).toBe(2);
    const lines = bad.stderr.trim().split('\n');
    expect(lines[0]).toBe('Invalid configuration:');
    expect(lines.slice(1).map((l) => l.trim().split(':')[0])).toEqual([
      'PORT',
      'DATABASE_URL',
      'SESSION_COOKIE_SECURE',
    ]);
  });

  it('exits 2 on a migrate without a database', () => {
    const migrate = run(['migrate', 'up'], {});
    expect(migrate.code).toBe(2);
    expect(migrate.stderr).toContain('DATABASE_URL: is required by migrate');
  });

  it('exits 2 on an unknown command or subcommand', () => {
    expect(run(['migrate', 'sideways'], {}).code).toBe(2);
    expect(run(['nonsense'], {}).code).toBe(2);
  });

  it('serve migrates, answers, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, 'serve'], {
      env: {
        PATH: process.env.PATH ?? '',
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: database.url,
        REDIS_URL: redis.url,
        REDIS_KEY_PREFIX: redis.prefix,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const listening = await new Promise<{ docs: string }>((resolve, reject) => {
        let buffer = '';
        const timer = setTimeout(() => reject(new Error(`not listening in time: ${buffer}`)), 15_000);
        child.stdout.on('data', (chunk: Buffer) => {
          buffer += chunk.toString();
          for (const line of buffer.split('\n')) {
            if (!line.includes('visiona-api listening')) continue;
            clearTimeout(timer);
            resolve(JSON.parse(line) as { docs: string });
          }
        });
      });
      const base = listening.docs.replace(/\/docs$/, '');
      const info = (await (await fetch(`${base}/api/system/info`)).json()) as { data: { version: string } };
      // The build writes in the commit it was made from.
      expect(info.data.version).toMatch(/^[0-9a-f]{12}$/);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/docs`)).status).toBeLessThan(400);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
