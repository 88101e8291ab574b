// known_hosts parsing: the forms OpenSSH writes (plain, [host]:port, hashed by ssh-keygen -H).
import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { hostLookupName, isPinnedKey, keysForHost, parseKnownHosts } from '../src/adapters/known-hosts.js';

const KEY_A = Buffer.from('key-a-blob').toString('base64');
const KEY_B = Buffer.from('key-b-blob').toString('base64');
const blob = (b64: string): Buffer => Buffer.from(b64, 'base64');

describe('known_hosts', () => {
  it('matches plain host names on port 22 and [host]:port elsewhere', () => {
    const entries = parseKnownHosts(
      [
        '# comment',
        '',
        `10.99.0.11,node-a ssh-ed25519 ${KEY_A} root@node-a`,
        `[10.99.0.12]:2222 ssh-ed25519 ${KEY_B}`,
        'garbage line',
      ].join('\n'),
    );
    expect(entries).toHaveLength(2);
    expect(isPinnedKey(entries, '10.99.0.11', 22, blob(KEY_A))).toBe(true);
    expect(isPinnedKey(entries, 'NODE-A', 22, blob(KEY_A))).toBe(true);
    expect(isPinnedKey(entries, '10.99.0.11', 22, blob(KEY_B))).toBe(false);
    expect(isPinnedKey(entries, '10.99.0.11', 2222, blob(KEY_A))).toBe(false);
    expect(isPinnedKey(entries, '10.99.0.12', 2222, blob(KEY_B))).toBe(true);
    expect(isPinnedKey(entries, '10.99.0.12', 22, blob(KEY_B))).toBe(false);
    expect(hostLookupName('h', 22)).toBe('h');
    expect(hostLookupName('h', 2200)).toBe('[h]:2200');
  });

  it('matches hashed |1| entries', () => {
    const salt = randomBytes(20);
    const hashed = (name: string): string =>
      `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
    const entries = parseKnownHosts(
      `${hashed('[127.0.0.1]:2022')} ssh-ed25519 ${KEY_A}\n${hashed('node-b')} ssh-ed25519 ${KEY_B}\n`,
    );
    expect(isPinnedKey(entries, '127.0.0.1', 2022, blob(KEY_A))).toBe(true);
    expect(isPinnedKey(entries, '127.0.0.1', 22, blob(KEY_A))).toBe(false);
    expect(isPinnedKey(entries, 'node-b', 22, blob(KEY_B))).toBe(true);
  });

  it.skipIf(!existsSync('/usr/bin/ssh-keygen'))('reads a file hashed by ssh-keygen -H', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ha-kh-'));
    try {
      const file = join(dir, 'known_hosts');
      await writeFile(file, `[10.99.0.11]:2222 ssh-ed25519 ${KEY_A}\n10.99.0.12 ssh-ed25519 ${KEY_B}\n`);
      await promisify(execFile)('ssh-keygen', ['-H', '-f', file]);
      const text = await readFile(file, 'utf8');
      expect(text).not.toContain('10.99.0.11');
      const entries = parseKnownHosts(text);
      expect(isPinnedKey(entries, '10.99.0.11', 2222, blob(KEY_A))).toBe(true);
      expect(isPinnedKey(entries, '10.99.0.12', 22, blob(KEY_B))).toBe(true);
      expect(isPinnedKey(entries, '10.99.0.12', 22, blob(KEY_A))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('honours wildcards, negation and @revoked, and skips @cert-authority', () => {
    const entries = parseKnownHosts(
      [
        `10.99.0.*,!10.99.0.66 ssh-ed25519 ${KEY_A}`,
        `@revoked * ssh-ed25519 ${KEY_B}`,
        `node-? ssh-ed25519 ${KEY_B}`,
        `@cert-authority * ssh-ed25519 ${KEY_A}`,
      ].join('\n'),
    );
    expect(isPinnedKey(entries, '10.99.0.11', 22, blob(KEY_A))).toBe(true);
    expect(isPinnedKey(entries, '10.99.0.66', 22, blob(KEY_A))).toBe(false);
    expect(isPinnedKey(entries, 'node-a', 22, blob(KEY_B))).toBe(false);
    expect(keysForHost(entries, 'node-a', 22)).toEqual({ pinned: [blob(KEY_B)], revoked: [blob(KEY_B)] });
  });
});
