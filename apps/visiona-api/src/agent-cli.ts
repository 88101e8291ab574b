#!/usr/bin/env node
// visiona-agent pair | run | help: the reference device agent as a program. `pair` trades a pairing
// code for a session token and keeps it in a file only its owner can read; `run` keeps the tunnel
// to the API and serves GET /health, /deps and /info until stopped.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isUpgradeError } from '@upgrade/core';
import { runCli, usageError } from '@upgrade/service';
import { pairAgent, startReferenceAgent, type AgentLogger } from './agent/index.js';

const NAME = 'visiona-agent';
const DEFAULT_TOKEN_FILE = 'visiona-agent.token';

const USAGE = `usage: visiona-agent <command> [options]

commands:
  pair --code <code> --serial <serial> [--name <name>]
        redeem a pairing code (issued by POST /api/devices/pairing-tokens): prints the device id and
        writes the session token to the token file, readable by its owner only
  run   keep the tunnel to the API and serve GET /health, /deps and /info until SIGINT or SIGTERM;
        reconnects on its own; exits 1 when the API refuses the token (pair again)
  help  this text

options:
  --api <url>           the API's base URL, e.g. https://visiona.example.com (or VISIONA_API_URL)
  --token-file <path>   where the session token is kept (or VISIONA_AGENT_TOKEN_FILE;
                        default ./${DEFAULT_TOKEN_FILE})`;

const OPTIONS = {
  api: { type: 'string' },
  'token-file': { type: 'string' },
  code: { type: 'string' },
  serial: { type: 'string' },
  name: { type: 'string' },
} as const;

type Parsed = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true }>>['values'];

function parse(args: string[]): Parsed {
  try {
    return parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    usageError(error instanceof Error ? error.message : String(error));
  }
}

function apiUrlOf(values: Parsed): string {
  const api = values.api ?? process.env.VISIONA_API_URL;
  if (api === undefined || api === '') usageError('--api (or VISIONA_API_URL) is required');
  let url: URL;
  try {
    url = new URL(api);
  } catch {
    usageError(`--api must be an http(s) URL, got "${api}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    usageError(`--api must be an http(s) URL, got "${api}"`);
  }
  return url.href;
}

function tokenFileOf(values: Parsed): string {
  return values['token-file'] ?? process.env.VISIONA_AGENT_TOKEN_FILE ?? DEFAULT_TOKEN_FILE;
}

function required(values: Parsed, key: 'code' | 'serial'): string {
  const value = values[key];
  if (value === undefined || value === '') usageError(`pair needs --${key}`);
  return value;
}

/** One JSON line per event on stdout; the session token is never among the fields. */
const jsonLogger: AgentLogger = {
  info: (fields, message) => writeLine('info', fields, message),
  warn: (fields, message) => writeLine('warn', fields, message),
};

function writeLine(level: string, fields: object, message: string): void {
  process.stdout.write(
    `${JSON.stringify({ level, time: new Date().toISOString(), msg: message, ...fields })}\n`,
  );
}

/** A refused, unreachable or malformed answer ends the command with exit 1 and one readable line. */
function fail(message: string): void {
  process.stderr.write(`${NAME}: ${message}\n`);
  process.exitCode = 1;
}

async function pair(args: string[]): Promise<void> {
  const values = parse(args);
  const apiUrl = apiUrlOf(values);
  const tokenFile = tokenFileOf(values);
  try {
    const paired = await pairAgent({
      apiUrl,
      pairingCode: required(values, 'code'),
      serial: required(values, 'serial'),
      ...(values.name === undefined ? {} : { name: values.name }),
    });
    writeFileSync(tokenFile, `${paired.sessionToken}\n`, { mode: 0o600 });
    process.stdout.write(`paired device ${paired.device.id}; session token written to ${tokenFile}\n`);
  } catch (error) {
    if (!isUpgradeError(error)) throw error;
    fail(`pairing failed (${error.code}): ${error.message}`);
  }
}

async function run(args: string[]): Promise<void> {
  const values = parse(args);
  const apiUrl = apiUrlOf(values);
  const tokenFile = tokenFileOf(values);
  let sessionToken: string;
  try {
    sessionToken = readFileSync(tokenFile, 'utf8').trim();
  } catch {
    fail(`cannot read the session token from ${tokenFile}: pair first (visiona-agent pair)`);
    return;
  }
  if (sessionToken === '') {
    fail(`${tokenFile} holds no session token: pair again (visiona-agent pair)`);
    return;
  }
  const agent = startReferenceAgent({ apiUrl, sessionToken, logger: jsonLogger });
  const stop = (): void => void agent.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const reason = await agent.stopped;
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  if (reason === 'unauthorized') fail('the API refused the session token: pair the device again');
  else if (reason === 'replaced') fail('another agent of this device connected: this one stopped');
}

await runCli({
  name: NAME,
  usage: USAGE,
  defaultCommand: 'help',
  commands: { pair, run },
});
