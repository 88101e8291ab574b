// writeStateFile / readStateFile on real files in a temp directory.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UpgradeError } from '@upgrade/core';
import { readStateFile, writeStateFile } from '../src/state-file.js';

interface State {
  stage: string;
  offset: number;
}

/** A validator as the service writes one: refuse anything that is not a State. */
function asState(value: unknown): State {
  if (typeof value !== 'object' || value === null) throw new Error('not an object');
  const { stage, offset } = value as Record<string, unknown>;
  if (typeof stage !== 'string') throw new Error('stage is not a string');
  if (typeof offset !== 'number') throw new Error('offset is not a number');
  return { stage, offset };
}

let dir: string;
let path: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ota-state-'));
  path = join(dir, 'state.json');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function errorOf(promise: Promise<unknown>): Promise<UpgradeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof UpgradeError)) throw new Error(`expected an UpgradeError, got ${String(error)}`);
  return error;
}

describe('state file', () => {
  it('reads null when no state was ever written', async () => {
    expect(await readStateFile(path, asState)).toBeNull();
    expect(await readStateFile(join(dir, 'missing-dir', 'state.json'), asState)).toBeNull();
  });

  it('writes 2-space JSON, reads it back, and leaves no temp file', async () => {
    await writeStateFile(path, { stage: 'downloading', offset: 4_194_304 });

    expect(await readFile(path, 'utf8')).toBe('{\n  "stage": "downloading",\n  "offset": 4194304\n}\n');
    expect(await readStateFile(path, asState)).toEqual({ stage: 'downloading', offset: 4_194_304 });
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('creates a missing directory', async () => {
    const nested = join(dir, 'var', 'lib', 'state.json');
    await writeStateFile(nested, { stage: 'idle', offset: 0 });
    expect(await readStateFile(nested, asState)).toEqual({ stage: 'idle', offset: 0 });
  });

  it('keeps the value of the last call when writes overlap', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => writeStateFile(path, { stage: 'downloading', offset: i })),
    );

    expect(await readStateFile(path, asState)).toEqual({ stage: 'downloading', offset: 19 });
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('removes temp files a crash left behind and keeps the last complete state', async () => {
    await writeStateFile(path, { stage: 'downloaded', offset: 10 });
    // A write cut off by a power loss: the temp file is half written, the state untouched.
    await writeFile(join(dir, 'state.json.tmp-4242-7'), '{"stage": "deplo');

    expect(await readStateFile(path, asState)).toEqual({ stage: 'downloaded', offset: 10 });
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('fails clearly on a file that is not JSON', async () => {
    await writeFile(path, '{"stage": "deplo');

    const error = await errorOf(readStateFile(path, asState));

    expect(error.code).toBe('INTERNAL');
    expect(error.message).toContain(path);
    expect(error.message).toContain('corrupt: not valid JSON');
    expect(error.retryable).toBe(false);
  });

  it('fails clearly on JSON the validator refuses', async () => {
    await writeFile(path, '{"stage": 3}');

    const error = await errorOf(readStateFile(path, asState));

    expect(error.code).toBe('INTERNAL');
    expect(error.message).toContain('not a valid state (stage is not a string)');
  });

  it('refuses a value that is not JSON', async () => {
    const error = await errorOf(writeStateFile(path, undefined));
    expect(error.code).toBe('INTERNAL');
    expect(await readdir(dir)).toEqual([]);
  });
});
