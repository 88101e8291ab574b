import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isConfigError } from '@upgrade/service';
import { afterAll, describe, expect, it } from 'vitest';
import { isAllowed, matchToken, parseAllowList, parseApiTokens } from '../src/auth.js';
import { loadHaConfig } from '../src/config.js';
import { writeConfigEnv } from './config-env.js';

const dir = mkdtempSync(join(tmpdir(), 'ha-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = writeConfigEnv(dir);

function problems(over: Record<string, string | undefined>): string {
  try {
    loadHaConfig({ ...env, ...over });
  } catch (error) {
    if (isConfigError(error)) return error.message;
    throw error;
  }
  throw new Error('expected a configuration error');
}

describe('configuration', () => {
  it('loads a complete environment with the documented defaults', () => {
    const config = loadHaConfig(env);
    expect(config).toMatchObject({
      PORT: 8090,
      HOST: '0.0.0.0',
      MIGRATE_ON_START: true,
      API_ALLOWED_IPS: ['127.0.0.1/32', '::1/128'],
      tokens: [{ name: 'ops', token: expect.any(String) as unknown }],
      workDir: `${env.DATA_DIR}/work`,
    });
    expect(config.HA_NODES.map((n) => n.id)).toEqual(['node-a', 'node-b']);
    expect(config.privateKeys.get('node-a')?.toString()).toContain('OPENSSH PRIVATE KEY');
    expect(config.knownHosts).toContain('ssh-ed25519');
  });

  it('names every bad variable at once and never echoes a token', () => {
    const message = problems({
      PORT: 'eighty',
      HA_NODES: JSON.stringify([{ id: 'a' }]),
      VIP: undefined,
    });
    expect(message).toContain('PORT');
    expect(message).toContain('HA_NODES');
    expect(message).toContain('VIP');
    const tokens = problems({ API_TOKENS: 'ops:short-secret,ops:another-long-secret' });
    expect(tokens).toContain('shorter than 16 characters');
    expect(tokens).toContain('names a token twice');
    expect(tokens).not.toContain('short-secret');
  });

  it('refuses missing files, a bad allow-list, duplicate node ids and no signing keys', () => {
    const nodes = JSON.parse(env.HA_NODES as string) as { id: string; privateKeyFile: string }[];
    expect(problems({ SSH_KNOWN_HOSTS_FILE: join(dir, 'missing') })).toContain('SSH_KNOWN_HOSTS_FILE');
    expect(problems({ API_ALLOWED_IPS: '10.0.0.0/33' })).toContain('API_ALLOWED_IPS');
    expect(problems({ HA_NODES: JSON.stringify(nodes.map((n) => ({ ...n, id: 'same' }))) })).toContain(
      'same id',
    );
    expect(
      problems({
        HA_NODES: JSON.stringify(nodes.map((n, i) => (i === 1 ? { ...n, privateKeyFile: '/nope' } : n))),
      }),
    ).toContain('/nope');
    expect(problems({ SIGNING_PUBLIC_KEYS_DIR: undefined })).toContain('SIGNING_PUBLIC_KEYS');
  });
});

describe('tokens and the allow-list', () => {
  it('parses named and bare tokens and matches them exactly', () => {
    const tokens = parseApiTokens('ops:aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb');
    expect(tokens).toEqual([
      { name: 'ops', token: 'aaaaaaaaaaaaaaaa' },
      { name: 'token-2', token: 'bbbbbbbbbbbbbbbb' },
    ]);
    expect(matchToken(tokens, 'bbbbbbbbbbbbbbbb')?.name).toBe('token-2');
    expect(matchToken(tokens, 'aaaaaaaaaaaaaaa')).toBeNull();
    expect(matchToken(tokens, '')).toBeNull();
  });

  it('checks IPv4, IPv4-mapped IPv6 and IPv6 addresses against CIDR blocks', () => {
    const list = parseAllowList(['10.20.0.0/16', '192.168.1.7', 'fd00::/8']);
    expect(isAllowed(list, '10.20.255.1')).toBe(true);
    expect(isAllowed(list, '::ffff:10.20.0.9')).toBe(true);
    expect(isAllowed(list, '10.21.0.1')).toBe(false);
    expect(isAllowed(list, '192.168.1.7')).toBe(true);
    expect(isAllowed(list, '192.168.1.8')).toBe(false);
    expect(isAllowed(list, 'fd12::1')).toBe(true);
    expect(isAllowed(list, '::1')).toBe(false);
    expect(isAllowed(list, 'garbage')).toBe(false);
  });
});
