import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '../src/passwords.js';
import { hashToken, newToken } from '../src/tokens.js';

// Low cost parameters keep the test fast; the format and the check are what is under test.
const FAST = { N: 1024, r: 8, p: 1 };

describe('passwords', () => {
  it('hashes with a per-password salt and its parameters, and verifies', async () => {
    const a = await hashPassword('correct horse', FAST);
    const b = await hashPassword('correct horse', FAST);
    expect(a).toMatch(/^scrypt\$1024\$8\$1\$[^$]+\$[^$]+$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('correct horse!', a)).toBe(false);
    expect(await verifyPassword('correct horse', 'sha256$abc')).toBe(false);
    expect(await verifyPassword('x', 'scrypt$0$8$1$c2FsdA==$a2V5')).toBe(false);
  });

  it('uses the default cost when none is given', async () => {
    const hash = await hashPassword('pw');
    expect(hash.startsWith('scrypt$32768$8$1$')).toBe(true);
    expect(await verifyPassword('pw', hash)).toBe(true);
  });
});

describe('tokens', () => {
  it('gives a random raw token and its SHA-256 hex hash', () => {
    const a = newToken();
    expect(a.raw).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hashToken(a.raw)).toBe(a.hash);
    expect(newToken().raw).not.toBe(a.raw);
  });
});
