// `pnpm --filter @upgrade/ota-updater bench`: the benches one after the other, each in its own
// process (none shares a heap or an event loop with another), then one table of every figure
// against its goal. Benches print figures and never fail on time; this exits non-zero only when a
// bench crashed, or the power-loss bench found a broken invariant. Env: what the benches read (see
// their headers); POWER_LOSS_RUNS (default 60) for bench/power-loss.bench.ts, run when present.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { APP_DIR, ensureBuilt, fixed, machineLine, makeTempDir, printTable, type SummaryRow } from './lib.js';

interface Bench {
  name: string;
  file: string;
  env?: Record<string, string>;
  /** For a bench that prints its own report and tells by its exit code whether it met its goal. */
  exitGoal?: { figure: string; goal: string };
}

const benches: Bench[] = [
  { name: 'memory', file: 'memory.bench.ts' },
  { name: 'download', file: 'download.bench.ts' },
  { name: 'progress', file: 'progress.bench.ts' },
  { name: 'deploy', file: 'deploy.bench.ts' },
];
// More than the 50 runs of CI (the issue asks for more in `pnpm bench`); a run takes ~5 s on two busy
// cores, so this is most of the total. POWER_LOSS_RUNS=300 for the bench's own default.
const POWER_LOSS_RUNS = process.env.POWER_LOSS_RUNS ?? '60';
if (existsSync(join(APP_DIR, 'bench', 'power-loss.bench.ts')))
  benches.push({
    name: 'power-loss',
    file: 'power-loss.bench.ts',
    env: { POWER_LOSS_RUNS },
    exitGoal: {
      figure: `${POWER_LOSS_RUNS} SIGKILL runs`,
      goal: 'no invariant broken (exit 0)',
    },
  });

/** Runs one bench with its output on ours; resolves with its exit code and wall time. */
function runBench(bench: Bench, summaryFile: string): Promise<{ code: number; seconds: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', join(APP_DIR, 'bench', bench.file)], {
    cwd: APP_DIR,
    env: { ...process.env, ...bench.env, BENCH_SUMMARY_FILE: summaryFile },
    stdio: 'inherit',
  });
  return new Promise((resolve) => {
    child.once('exit', (code, signal) =>
      resolve({ code: code ?? (signal === null ? 1 : 128), seconds: (performance.now() - started) / 1000 }),
    );
  });
}

const tmp = await makeTempDir('ota-bench-');
const summaryFile = join(tmp.path, 'summary.jsonl');
const started = performance.now();
console.log(`ota-updater benches: ${benches.map((b) => b.name).join(', ')}`);
console.log(`machine: ${machineLine()}`);
await ensureBuilt();
const outcomes: { bench: Bench; code: number; seconds: number }[] = [];
try {
  for (const bench of benches) {
    console.log('');
    const outcome = await runBench(bench, summaryFile);
    outcomes.push({ bench, ...outcome });
  }
  const rows = existsSync(summaryFile)
    ? (await readFile(summaryFile, 'utf8'))
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as SummaryRow)
    : [];
  for (const o of outcomes) {
    const goal = o.bench.exitGoal;
    if (goal !== undefined)
      rows.push({
        bench: o.bench.name,
        figure: goal.figure,
        value: `exit code ${o.code} (its report above)`,
        goal: goal.goal,
        verdict: o.code === 0 ? 'ok' : 'FAILED',
      });
    else if (o.code !== 0)
      rows.push({
        bench: o.bench.name,
        figure: 'bench process',
        value: `exit code ${o.code}`,
        goal: 'exit 0',
        verdict: 'CRASHED',
      });
  }
  console.log('');
  console.log(
    `summary (${fixed((performance.now() - started) / 1000, 0)} s in all: ${outcomes.map((o) => `${o.bench.name} ${fixed(o.seconds, 0)} s`).join(', ')})`,
  );
  console.log(`machine: ${machineLine()}`);
  printTable(
    ['bench', 'figure', 'value', 'goal', 'verdict'],
    rows.map((r) => [r.bench, r.figure, r.value, r.goal, r.verdict]),
  );
  if (outcomes.some((o) => o.code !== 0)) process.exitCode = 1;
} finally {
  await tmp.remove();
}
