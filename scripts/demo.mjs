#!/usr/bin/env node
// One command from a fresh clone: installs the pinned pnpm and the packages when missing, builds,
// then runs every service's own demo (embedded defaults plus its simulators) side by side.
// Flags: --once  each demo exits after its upgrade run instead of staying up to serve its /docs.
// Only Node built-ins here: this runs before anything is installed.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const pnpmVersion = rootPkg.packageManager.split('@')[1].split('+')[0];
const once = process.argv.includes('--once');

function run(cmd, args) {
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
}

function pnpmInstalled() {
  try {
    return execFileSync('pnpm', ['--version'], { encoding: 'utf8' }).trim() === pnpmVersion;
  } catch {
    return false;
  }
}

if (!pnpmInstalled()) {
  console.log(`installing pnpm ${pnpmVersion}`);
  run('npm', ['install', '-g', `pnpm@${pnpmVersion}`]);
}
if (!existsSync(join(root, 'node_modules', '.modules.yaml'))) run('pnpm', ['install', '--frozen-lockfile']);
run('pnpm', ['build']);

const appsDir = join(root, 'apps');
const demos = (existsSync(appsDir) ? readdirSync(appsDir) : [])
  .map((dir) => ({ dir, file: join(appsDir, dir, 'package.json') }))
  .filter(({ file }) => existsSync(file) && JSON.parse(readFileSync(file, 'utf8')).scripts?.demo)
  .sort((a, b) => a.dir.localeCompare(b.dir));

if (demos.length === 0) {
  console.log('no service ships a demo yet');
  process.exit(0);
}

// Each service with an operator console prints `<app> console: <url>` (and the ha-orchestrator its
// token on the next line); once every console has spoken, they are listed together.
const consoleApps = new Set(
  demos.filter(({ dir }) => existsSync(join(appsDir, dir, 'console'))).map(({ dir }) => dir),
);
const consoles = new Map();
const COLOUR_CODES = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
let consolesListed = false;
function noteConsole(line) {
  const plain = line.replace(COLOUR_CODES, '');
  const match = /^(\S+) console( token)?: (\S+)/.exec(plain);
  if (match === null || !consoleApps.has(match[1])) return;
  const entry = consoles.get(match[1]) ?? {};
  if (match[2]) entry.token = match[3];
  else entry.url = match[3];
  consoles.set(match[1], entry);
  const ready = [...consoleApps].every((app) => consoles.get(app)?.url !== undefined);
  if (!ready || consolesListed) return;
  consolesListed = true;
  // A token line follows its URL line: give it a moment to arrive.
  setTimeout(listConsoles, 1000).unref();
}
function listConsoles() {
  const rows = [...consoleApps].sort().map((app) => {
    const { url, token } = consoles.get(app);
    return `  ${app.padEnd(16)} ${url}${token === undefined ? '' : `   (token: ${token})`}`;
  });
  process.stdout.write(`\nOperator consoles (open in a browser):\n${rows.join('\n')}\n\n`);
}

/** Demo processes still running, each the leader of its own process group. */
const running = new Set();
const colours = ['\x1b[36m', '\x1b[35m', '\x1b[33m', '\x1b[32m'];
const children = demos.map(({ dir }, i) => {
  const prefix = `${colours[i % colours.length]}[${dir}]\x1b[0m `;
  // Its own process group: a stop reaches the demo itself, not only pnpm (which does not pass
  // SIGTERM on to the script it runs).
  const child = spawn('pnpm', ['--silent', 'run', 'demo', ...(once ? ['--once'] : [])], {
    cwd: join(appsDir, dir),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FORCE_COLOR: '1' },
    detached: true,
  });
  running.add(child);
  child.on('exit', () => running.delete(child));
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream.on('data', (chunk) => {
      const lines = (partial + chunk.toString()).split(/\r?\n|\r/);
      partial = lines.pop() ?? '';
      for (const line of lines) {
        process.stdout.write(prefix + line + '\n');
        noteConsole(line);
      }
    });
  }
  return new Promise((resolve) => child.on('close', (code) => resolve({ dir, code: code ?? 1, child })));
});

let stopping = false;
const stop = () => {
  stopping = true;
  console.log('\nstopping demos');
  for (const child of running) {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

const results = await Promise.all(children);
// Demos ended by a stop (Ctrl-C, SIGTERM) did not fail.
const failed = stopping ? [] : results.filter((r) => r.code !== 0);
for (const r of failed) console.error(`demo of ${r.dir} exited with code ${r.code}`);
process.exit(failed.length === 0 ? 0 : 1);
