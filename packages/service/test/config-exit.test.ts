import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const fixture = join(import.meta.dirname, 'fixtures', 'config-exit.mjs');

function run(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [fixture],
      { env: { PATH: process.env.PATH ?? '', ...env } },
      (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : (error.code as number | null), stdout, stderr });
      },
    );
  });
}

describe('a service process with bad configuration', () => {
  it('exits 2 with one readable message naming every bad variable', async () => {
    const result = await run({ PORT: 'abc', VENDOR_GROUPS: '{oops', VENDOR_TOKEN: 'hunter2' });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const lines = result.stderr.split('\n');
    expect(lines).toEqual([
      'Invalid configuration:',
      '  PORT: must be an integer between 1 and 65535 (got "abc")',
      expect.stringMatching(/^ {2}VENDOR_GROUPS: not valid JSON/),
      '  VENDOR_TOKEN: must be a string of at least 16 characters (value hidden)',
      '',
    ]);
    expect(result.stderr).not.toContain('hunter2');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('starts with a good configuration', async () => {
    const result = await run({
      VENDOR_GROUPS: '[{"roomTypeId": 1, "hosts": ["a"]}]',
      VENDOR_TOKEN: 'x'.repeat(16),
    });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout)).toEqual({
      PORT: 3000,
      VENDOR_GROUPS: [{ roomTypeId: 1, hosts: ['a'] }],
      VENDOR_TOKEN: 'x'.repeat(16),
    });
  });
});
