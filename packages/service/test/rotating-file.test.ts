import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRotatingFile } from '../src/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('createRotatingFile', () => {
  it('keeps at most `files` files of at most `maxBytes`, newest lines in the base file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotating-'));
    dirs.push(dir);
    const path = join(dir, 'logs', 'ota.log');
    const log = createRotatingFile({ path, maxBytes: 100, files: 3 });
    for (let i = 0; i < 40; i++) log.write(`line ${String(i).padStart(3, '0')} ${'x'.repeat(10)}\n`);
    log.close();

    expect(readdirSync(join(dir, 'logs')).sort()).toEqual(['ota.log', 'ota.log.1', 'ota.log.2']);
    for (const f of ['ota.log', 'ota.log.1', 'ota.log.2'])
      expect(statSync(join(dir, 'logs', f)).size).toBeLessThanOrEqual(100);
    const newest = readFileSync(path, 'utf8').trim().split('\n');
    expect(newest.at(-1)).toMatch(/^line 039 /);
    const older = readFileSync(`${path}.1`, 'utf8').trim().split('\n');
    const olderLast = Number(older.at(-1)?.slice(5, 8));
    const newestFirst = Number(newest[0]?.slice(5, 8));
    expect(olderLast + 1).toBe(newestFirst);
  });

  it('appends to an existing file after a restart and counts its size', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotating-'));
    dirs.push(dir);
    const path = join(dir, 'svc.log');
    const first = createRotatingFile({ path, maxBytes: 50, files: 2 });
    first.write('a'.repeat(30) + '\n');
    first.close();
    const second = createRotatingFile({ path, maxBytes: 50, files: 2 });
    second.write('b'.repeat(30) + '\n');
    second.close();
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('a'.repeat(30) + '\n');
    expect(readFileSync(path, 'utf8')).toBe('b'.repeat(30) + '\n');
  });
});
