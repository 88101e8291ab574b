import { describe, expect, it } from 'vitest';
import { openDatabase, redactUrl } from '../src/index.js';

describe('openDatabase', () => {
  it('needs a url or a dataDir', async () => {
    await expect(openDatabase({})).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(openDatabase({ url: '', dataDir: '' })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('connects lazily: opening a pool on a dead port succeeds, using it fails', async () => {
    const handle = await openDatabase({ url: 'postgres://postgres@127.0.0.1:1/x' });
    expect(handle.kind).toBe('postgres');
    await expect(handle.ping()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await handle.close();
    await expect(handle.close()).resolves.toBeUndefined();
  });
});

describe('redactUrl', () => {
  it('hides the password and nothing else', () => {
    expect(redactUrl('postgres://app:s3cret@db.internal:5432/rcu?sslmode=require')).toBe(
      'postgres://app:***@db.internal:5432/rcu?sslmode=require',
    );
    expect(redactUrl('postgres://app@db/rcu')).toBe('postgres://app@db/rcu');
    expect(redactUrl('not a url')).not.toContain('not a url');
  });
});
