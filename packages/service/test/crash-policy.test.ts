import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { probeCrash, type ProvokedCrash } from '@upgrade/testkit';
import { describe, expect, it } from 'vitest';
import { installCrashPolicy } from '../src/index.js';

const fixture = join(import.meta.dirname, 'fixtures', 'cli.mjs');

describe('the crash policy in a real process', () => {
  const kinds: [ProvokedCrash, string, RegExp][] = [
    ['rejection', 'unhandledRejection', /^unhandled rejection: provoked unhandled rejection; exiting with 1/],
    ['exception', 'uncaughtException', /^uncaught exception: provoked uncaught exception; exiting with 1/],
  ];
  const commands: [string, (line: string) => boolean][] = [
    ['serve', (line) => line.includes('Server listening at')],
    ['watch', (line) => line === 'watching'],
  ];
  for (const [command, ready] of commands) {
    for (const [provoke, kind, msg] of kinds) {
      it(`${command}: an ${kind} is logged once as one JSON line with its stack, then exit 1`, async () => {
        const result = await probeCrash({ args: [fixture, command], ready, provoke });
        expect(result.code).toBe(1);
        const crashes = result.jsonLines.filter((line) => line.level === 60);
        expect(crashes).toHaveLength(1);
        const [crash] = crashes;
        expect(crash).toMatchObject({ service: 'fixture-cli', version: '9.9.9', kind });
        expect(crash?.msg).toMatch(msg);
        const err = crash?.err as { stack?: string; message?: string };
        expect(err.message).toMatch(/^provoked /);
        expect(err.stack).toContain('provoke-crash.mjs');
        // Nothing but JSON lines on stderr: no second report by Node's default handler.
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
      });
    }
  }
});

describe('installCrashPolicy', () => {
  it('writes one line for a rejection with a non-Error value and exits once', () => {
    const target = new EventEmitter();
    const lines: string[] = [];
    const exits: number[] = [];
    installCrashPolicy({
      service: 'unit',
      process: target as unknown as NodeJS.Process,
      write: (line) => lines.push(line),
      exit: (code) => exits.push(code),
    });
    target.emit('unhandledRejection', { reason: 'not an Error' });
    target.emit('uncaughtException', new Error('later'));
    expect(exits).toEqual([1]);
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0] ?? '') as { err: { type: string; message: string; stack: string } };
    expect(line.err).toMatchObject({ type: 'object', message: '{"reason":"not an Error"}' });
    expect(line.err.stack).toContain('crash-policy');
  });
});
