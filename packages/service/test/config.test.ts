import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUpgradeError } from '@upgrade/core';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadDotenv, runMain, Type } from '../src/index.js';

const Env = Type.Object({
  PORT: Type.Integer({ default: 3000, minimum: 1, maximum: 65535 }),
  HOST: Type.String({ default: '0.0.0.0' }),
  DEBUG: Type.Boolean({ default: false }),
  SUCCESS_RATIO: Type.Number({ default: 0.9, minimum: 0, maximum: 1 }),
  MODE: Type.Union([Type.Literal('poll'), Type.Literal('push')], { default: 'poll' }),
  DATABASE_URL: Type.Optional(Type.String({ format: 'uri' })),
  VENDOR_URL: Type.String({ format: 'uri' }),
  VENDOR_GROUPS: Type.Array(
    Type.Object({
      roomTypeId: Type.Integer(),
      hosts: Type.Array(Type.String(), { minItems: 1 }),
      retries: Type.Integer({ default: 2 }),
    }),
    { default: [] },
  ),
  ALLOWED_IPS: Type.Array(Type.String(), { default: [] }),
  API_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
});

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies defaults and leaves optional variables out', () => {
    const config = loadConfig(Env, { VENDOR_URL: 'https://vendor.example/api' });
    expect(config).toEqual({
      PORT: 3000,
      HOST: '0.0.0.0',
      DEBUG: false,
      SUCCESS_RATIO: 0.9,
      MODE: 'poll',
      VENDOR_URL: 'https://vendor.example/api',
      VENDOR_GROUPS: [],
      ALLOWED_IPS: [],
    });
  });

  it('coerces numbers and booleans from strings and counts an empty value as unset', () => {
    const config = loadConfig(Env, {
      VENDOR_URL: 'https://vendor.example',
      PORT: ' 8080 ',
      DEBUG: 'yes',
      SUCCESS_RATIO: '0.75',
      MODE: 'push',
      HOST: '',
    });
    expect(config).toMatchObject({
      PORT: 8080,
      DEBUG: true,
      SUCCESS_RATIO: 0.75,
      MODE: 'push',
      HOST: '0.0.0.0',
    });
    expect(loadConfig(Env, { VENDOR_URL: 'https://v.example', DEBUG: 'OFF' }).DEBUG).toBe(false);
  });

  it('reads JSON values, applying nested defaults, and comma lists of scalars', () => {
    const config = loadConfig(Env, {
      VENDOR_URL: 'https://vendor.example',
      VENDOR_GROUPS:
        '[{"roomTypeId": 7, "hosts": ["h1", "h2"]}, {"roomTypeId": 8, "hosts": ["h3"], "retries": 5}]',
      ALLOWED_IPS: '10.0.0.1, 10.0.0.2',
    });
    expect(config.VENDOR_GROUPS).toEqual([
      { roomTypeId: 7, hosts: ['h1', 'h2'], retries: 2 },
      { roomTypeId: 8, hosts: ['h3'], retries: 5 },
    ]);
    expect(config.ALLOWED_IPS).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(loadConfig(Env, { VENDOR_URL: 'https://v.example', ALLOWED_IPS: '["a,b"]' }).ALLOWED_IPS).toEqual([
      'a,b',
    ]);
  });

  it('names every bad variable in one readable error', () => {
    const error = configError(() =>
      loadConfig(Env, {
        PORT: 'abc',
        DEBUG: 'maybe',
        MODE: 'pull',
        DATABASE_URL: 'not a url',
        VENDOR_GROUPS: '[{"roomTypeId": "x", "hosts": []}]',
        ALLOWED_IPS: '["unterminated',
      }),
    );
    expect(error.message.split('\n')).toEqual([
      'Invalid configuration:',
      '  PORT: must be an integer between 1 and 65535 (got "abc")',
      '  DEBUG: must be a boolean (true or false) (got "maybe")',
      '  MODE: must be one of "poll", "push" (got "pull")',
      '  DATABASE_URL: must be a valid uri (got "not a url")',
      '  VENDOR_URL: is required but not set',
      '  VENDOR_GROUPS: [0].roomTypeId must be integer; [0].hosts must not have fewer than 1 items',
      expect.stringMatching(/^ {2}ALLOWED_IPS: not valid JSON \(.+\)$/),
    ]);
    expect(isUpgradeError(error, 'CONFIG_INVALID')).toBe(true);
    expect(error.issues.map((i) => i.variable)).toEqual([
      'PORT',
      'DEBUG',
      'MODE',
      'DATABASE_URL',
      'VENDOR_URL',
      'VENDOR_GROUPS',
      'ALLOWED_IPS',
    ]);
  });

  it('refuses numbers that would silently change meaning', () => {
    for (const port of ['3000.5', '0x10', '1e3x', '80 80']) {
      const error = configError(() => loadConfig(Env, { VENDOR_URL: 'https://v.example', PORT: port }));
      expect(error.message).toContain(
        `PORT: must be an integer between 1 and 65535 (got ${JSON.stringify(port)})`,
      );
    }
  });

  it('never echoes values of variables named like secrets, nor passwords inside URLs', () => {
    const Secrets = Type.Object({
      API_TOKEN: Type.String({ minLength: 16 }),
      SIGNING_KEYS: Type.Array(Type.String()),
      DB_PASSWORD: Type.String({ pattern: '^[^ ]+$' }),
      DATABASE_URL: Type.String({ pattern: '^postgresql://' }),
    });
    const error = configError(() =>
      loadConfig(Secrets, {
        API_TOKEN: 'hunter2',
        SIGNING_KEYS: '[hunter3',
        DB_PASSWORD: 'hunter 4',
        DATABASE_URL: 'postgres://app:hunter5@db:5432/x',
      }),
    );
    expect(error.message.split('\n')).toEqual([
      'Invalid configuration:',
      '  API_TOKEN: must be a string of at least 16 characters (value hidden)',
      '  SIGNING_KEYS: not valid JSON',
      '  DB_PASSWORD: must be a string matching /^[^ ]+$/ (value hidden)',
      '  DATABASE_URL: must be a string matching /^postgresql:/// (got "postgres://app:***@db:5432/x")',
    ]);
    expect(error.message).not.toMatch(/hunter/);
    expect(JSON.stringify(error.details)).not.toMatch(/hunter/);
  });
});

describe('loadDotenv', () => {
  it('sets variables from the file without overriding those already set', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dotenv-'));
    const file = join(dir, '.env');
    writeFileSync(file, 'PORT=4000\nVENDOR_URL="https://from-file.example"\n# a comment\nDEBUG=true\n');
    const env: Record<string, string | undefined> = { PORT: '5000' };
    expect(loadDotenv(file, env).sort()).toEqual(['DEBUG', 'VENDOR_URL']);
    expect(env).toEqual({ PORT: '5000', VENDOR_URL: 'https://from-file.example', DEBUG: 'true' });
    expect(loadConfig(Env, env)).toMatchObject({ PORT: 5000, DEBUG: true });
  });

  it('does nothing when the file does not exist', () => {
    const env = {};
    expect(loadDotenv(join(tmpdir(), 'no-such-dir-x', '.env'), env)).toEqual([]);
    expect(env).toEqual({});
  });
});

describe('runMain', () => {
  function harness(): {
    exit: (code: number) => void;
    stderr: { write(t: string): void };
    codes: number[];
    err: string[];
  } {
    const codes: number[] = [];
    const err: string[] = [];
    return { exit: (c) => void codes.push(c), stderr: { write: (t) => void err.push(t) }, codes, err };
  }

  it('prints a config error alone and exits 2', async () => {
    const h = harness();
    await runMain(() => loadConfig(Env, { PORT: 'abc', VENDOR_URL: 'https://v.example' }), h);
    expect(h.codes).toEqual([2]);
    expect(h.err.join('')).toBe(
      'Invalid configuration:\n  PORT: must be an integer between 1 and 65535 (got "abc")\n',
    );
  });

  it('exits 1 with the stack for any other start-up failure, and not at all on success', async () => {
    const h = harness();
    await runMain(() => Promise.reject(new Error('port in use')), h);
    expect(h.codes).toEqual([1]);
    expect(h.err.join('')).toMatch(/^fatal: Error: port in use\n\s+at /);
    const ok = harness();
    await runMain(() => Promise.resolve(), ok);
    expect(ok.codes).toEqual([]);
  });
});
