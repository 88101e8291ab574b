import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, runCli, usageError, type CliSpec } from '../src/index.js';

const USAGE = 'usage: tool [command]';

/** Runs the CLI with captured output and exit code. */
async function cli(
  spec: Partial<CliSpec>,
  argv: string[],
  dotenvPath = '/nonexistent/.env',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let code: number | null = null;
  let stdout = '';
  let stderr = '';
  await runCli(
    { name: 'tool', usage: USAGE, commands: {}, ...spec },
    {
      argv,
      dotenvPath,
      crashPolicy: false,
      exit: (c) => (code = c),
      stdout: { write: (t: string) => (stdout += t) },
      stderr: { write: (t: string) => (stderr += t) },
    },
  );
  return { code, stdout, stderr };
}

describe('runCli', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs serve when no command is given, and passes the other arguments to the named command', async () => {
    const calls: string[][] = [];
    const commands = {
      serve: (a: string[]) => calls.push(['serve', ...a]),
      x: (a: string[]) => calls.push(['x', ...a]),
    };
    expect(await cli({ commands }, [])).toEqual({ code: null, stdout: '', stderr: '' });
    await cli({ commands }, ['x', '--y', '1']);
    expect(calls).toEqual([['serve'], ['x', '--y', '1']]);
  });

  it('prints the usage for help, --help and -h', async () => {
    for (const word of ['help', '--help', '-h'])
      expect(await cli({}, [word])).toEqual({ code: null, stdout: `${USAGE}\n`, stderr: '' });
  });

  it('an unknown command or a usage error: one line, the usage, exit 2, and the rest of the command not run', async () => {
    expect(await cli({}, ['nope'])).toEqual({
      code: 2,
      stdout: '',
      stderr: `tool: unknown command "nope"\n\n${USAGE}\n`,
    });
    expect(await cli({}, ['toString'])).toMatchObject({ code: 2 });
    let after = false;
    const bad = await cli(
      { commands: { go: () => ((after = usageError('--x needs a value')), undefined) } },
      ['go'],
    );
    expect(bad).toEqual({ code: 2, stdout: '', stderr: `tool: --x needs a value\n\n${USAGE}\n` });
    expect(after).toBe(false);
  });

  it('keeps runMain’s exits: a configuration error 2 with its message, a crash 1', async () => {
    const config = await cli(
      {
        commands: {
          serve: () => {
            throw new ConfigError([{ variable: 'PORT', message: 'bad' }]);
          },
        },
      },
      [],
    );
    expect(config.code).toBe(2);
    expect(config.stderr).toContain('PORT');
    const crash = await cli({ commands: { serve: () => Promise.reject(new Error('boom')) } }, []);
    expect(crash.code).toBe(1);
    expect(crash.stderr).toContain('fatal: Error: boom');
  });

  it('loads .env before the command runs, without overriding the environment', async () => {
    const path = join(dir, '.env');
    await writeFile(path, 'CLI_TEST_FROM_FILE=file\nCLI_TEST_SET=file\n');
    process.env.CLI_TEST_SET = 'env';
    let seen: (string | undefined)[] = [];
    await cli(
      { commands: { serve: () => (seen = [process.env.CLI_TEST_FROM_FILE, process.env.CLI_TEST_SET]) } },
      [],
      path,
    );
    expect(seen).toEqual(['file', 'env']);
    delete process.env.CLI_TEST_FROM_FILE;
    delete process.env.CLI_TEST_SET;
  });
});
