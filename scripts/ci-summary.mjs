// Reads the output of `pnpm check` (turbo prefixes every line with `<package>:<task>: `) and
// prints one line per package: what its test run counted and how long it took, or what failed.
// Usage: node scripts/ci-summary.mjs <log file>. Always exits 0: the gate's status is pnpm check's.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (file === undefined) {
  console.error('usage: node scripts/ci-summary.mjs <log file>');
  process.exit(2);
}
// eslint-disable-next-line no-control-regex
const ansi = /\x1b\[[0-9;]*m/g;
const lines = readFileSync(file, 'utf8').replace(ansi, '').split('\n');

/** @type {Map<string, { tasks: Map<string, string>, files?: string, tests?: string, duration?: string, problems: string[] }>} */
const packages = new Map();
const get = (name) => {
  let entry = packages.get(name);
  if (entry === undefined) {
    entry = { tasks: new Map(), problems: [] };
    packages.set(name, entry);
  }
  return entry;
};

for (const line of lines) {
  const match = /^(@[\w-]+\/[\w-]+):(\w+): ?(.*)$/.exec(line);
  if (match === null) continue;
  const [, name, task, text] = match;
  const entry = get(name.replace(/^@upgrade\//, ''));
  if (!entry.tasks.has(task)) entry.tasks.set(task, 'ok');
  if (/ERROR: command finished with error|ELIFECYCLE/.test(text)) entry.tasks.set(task, 'FAILED');
  if (task !== 'test') {
    if (/✖ \d+ problems?|error TS\d+/.test(text) && entry.problems.length < 3)
      entry.problems.push(text.trim());
    continue;
  }
  const files = /^\s*Test Files\s+(.*)$/.exec(text);
  if (files) entry.files = files[1].trim();
  const tests = /^\s*Tests\s+(.*)$/.exec(text);
  if (tests) entry.tests = tests[1].trim();
  const duration = /^\s*Duration\s+([\d.]+m?s)/.exec(text);
  if (duration) entry.duration = duration[1];
  const errors = /^\s*Errors\s+(.*)$/.exec(text);
  if (errors) entry.problems.push(`errors: ${errors[1].trim()}`);
  if (/Unhandled (Rejection|Error)/.test(text) && entry.problems.length < 3) entry.problems.push(text.trim());
  if (/ FAIL /.test(` ${text}`) && entry.problems.length < 3) entry.problems.push(text.trim());
}

const width = Math.max(0, ...[...packages.keys()].map((name) => name.length));
console.log('\n==> summary per package');
for (const [name, entry] of packages) {
  const tasks = [...entry.tasks].map(([task, status]) => `${task} ${status}`).join(', ');
  const tests =
    entry.tests === undefined
      ? ''
      : `; tests ${entry.tests}, files ${entry.files ?? '?'} in ${entry.duration ?? '?'}`;
  const problems = entry.problems.length === 0 ? '' : `; ${entry.problems.join(' | ')}`;
  console.log(`${name.padEnd(width)}  ${tasks}${tests}${problems}`);
}
if (packages.size === 0) console.log('(no package output found: the run stopped before turbo started)');
