// `pnpm bench` for the power-loss safety of ota-updater: the harness of test/power-loss.test.ts with
// many more runs. Each run kills the built service (SIGKILL) at a random point of a download or a
// deploy, checks the device right after, restarts the service and checks it again once it settled
// (see test/power-loss-harness.ts). Prints one line per run, then: runs, kill points by stage,
// outcomes, invariant violations (must be 0; each one is printed with its seed and the service
// logs) and time per run. Exit code 1 when any run broke an invariant.
//
// Env: POWER_LOSS_RUNS (default 300), POWER_LOSS_CONCURRENCY (devices side by side, default 2),
// POWER_LOSS_SEED (session seed, default random), POWER_LOSS_REPLAY (one run seed, printed with a
// failure), POWER_LOSS_PACKAGE_MIB, POWER_LOSS_THROTTLE_MIB (package size and server speed),
// POWER_LOSS_DEBUG=1 (where each run spends its time). Needs dist/: pnpm build first.
import { randomInt } from 'node:crypto';
import { isBuildFresh } from '../test/service-process.js';
import { createPowerLossHarness, describeRun, formatReport } from '../test/power-loss-harness.js';

const MiB = 1024 * 1024;
const env = (name: string): number | undefined =>
  process.env[name] === undefined || process.env[name] === '' ? undefined : Number(process.env[name]);

const runs = env('POWER_LOSS_RUNS') ?? 300;
const concurrency = env('POWER_LOSS_CONCURRENCY') ?? 2;
const sessionSeed = env('POWER_LOSS_SEED') ?? randomInt(2 ** 32);
const replay = env('POWER_LOSS_REPLAY');
const packageMiB = env('POWER_LOSS_PACKAGE_MIB');
const throttleMiB = env('POWER_LOSS_THROTTLE_MIB');

if (!(await isBuildFresh()))
  console.warn(
    'warning: dist/cli.js is missing or older than src/; run pnpm --filter @upgrade/ota-updater build',
  );

console.log(
  `ota-updater power-loss bench: ${replay === undefined ? `${runs} runs, session seed ${sessionSeed}` : `replay of run seed ${replay}`}, ${concurrency} devices side by side`,
);
const harness = await createPowerLossHarness({
  concurrency,
  ...(packageMiB === undefined ? {} : { packageBytes: Math.round(packageMiB * MiB) }),
  ...(throttleMiB === undefined ? {} : { throttleBytesPerSec: Math.round(throttleMiB * MiB) }),
  log: (line) => console.log(line),
});
try {
  const report = await harness.runMany({
    count: runs,
    sessionSeed,
    ...(replay === undefined ? {} : { replay }),
    onRun: (result) => console.log(describeRun(result)),
  });
  console.log(`\n${formatReport(report)}`);
  if (report.runs.some((r) => r.violations.length > 0)) process.exitCode = 1;
} finally {
  await harness.close();
}
