// A whole rolling upgrade through ha-orchestrator's REST API on the two-node lab, at advert_int 1 and
// 0.1: wall time from trigger to COMPLETE, what a client hitting the VIP every 20 ms on fresh
// connections sees (failed requests x interval, longest gap between successful answers), the VIP
// switch as the orchestrator recorded it, and the downtime the task recorded.
//   pnpm --filter @upgrade/tests bench            (LAB_BENCH_UPGRADES=n upgrades per setting, default 2)
import { readPair, resetLab } from '../lab/cluster.js';
import { checkLab, standInJar, startLab, stopLab, type LabOptions } from '../lab/lab.js';
import { formatLoadReport, startLoad } from '../lab/load.js';
import { startOrchestrator, type UpgradeParameters } from '../lab/orchestrator.js';
import { buildSignedPackage, createSigningKeys } from '../lab/package.js';

interface UpgradeFigures {
  wallMs: number;
  failed: number;
  sent: number;
  longestGapMs: number;
  vipSwitchMs: number;
  recordedDowntimeMs: number;
}

const UPGRADES = Number(process.env.LAB_BENCH_UPGRADES ?? 2);
const INTERVAL_MS = 20;
/** The scenarios' parameters: health checks every 300 ms, 2 healthy answers in a row. */
const UPGRADE: UpgradeParameters = {
  healthRetryIntervalMs: 300,
  healthyChecksRequired: 2,
  healthRetries: 2,
  healthCheckTimeoutMs: 8_000,
  vipSwitchTimeoutMs: 10_000,
  vipSwitchRetries: 1,
  replicationTimeoutMs: 15_000,
  upgradeTimeoutMs: 120_000,
};

const median = (values: number[]): number => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function benchAdvertInt(advertInt: 1 | 0.1): Promise<UpgradeFigures[]> {
  const options: LabOptions = { advertInt, syncIntervalS: 1, fresh: true };
  const lab = await startLab(options);
  const keys = createSigningKeys();
  const orchestrator = await startOrchestrator({ lab, keys, upgrade: UPGRADE });
  const figures: UpgradeFigures[] = [];
  try {
    for (let i = 0; i < UPGRADES; i++) {
      await resetLab(lab);
      const version = `2.0.${i}`;
      const pkg = buildSignedPackage({ version, jar: standInJar(version) }, keys);
      const load = startLoad({ url: `${lab.vipUrl}/`, intervalMs: INTERVAL_MS, timeoutMs: 1000 });
      const started = performance.now();
      const trigger = await orchestrator.trigger(pkg);
      if (trigger.status !== 201) throw new Error(`trigger answered ${trigger.status}`);
      const final = await orchestrator.waitFinal(trigger.body.task_id, 180_000);
      const wallMs = performance.now() - started;
      const report = await load.stop();
      if (final.state !== 'COMPLETE')
        throw new Error(`upgrade ended ${final.state}: ${final.last_message ?? ''}`);
      const pair = await readPair(lab);
      if (pair.apps['node-a'].version !== version || pair.apps['node-b'].version !== version)
        throw new Error(`nodes report ${pair.apps['node-a'].version} / ${pair.apps['node-b'].version}`);
      const vipStep = final.finished_steps.find((s) => s.step === 'vip.switch');
      const upgrade: UpgradeFigures = {
        wallMs,
        failed: report.failed,
        sent: report.sent,
        longestGapMs: report.longestGapMs,
        vipSwitchMs: vipStep?.duration_ms ?? Number.NaN,
        recordedDowntimeMs: final.downtime_ms ?? Number.NaN,
      };
      figures.push(upgrade);
      console.log(
        `  advert_int ${advertInt} upgrade ${i + 1} -> ${version}: ${Math.round(wallMs)} ms, ` +
          `vip.switch step ${upgrade.vipSwitchMs} ms, recorded downtime ${upgrade.recordedDowntimeMs} ms; ` +
          formatLoadReport(report),
      );
    }
  } finally {
    await orchestrator.stop();
    await stopLab(options);
  }
  return figures;
}

const availability = await checkLab();
if (!availability.ok) {
  console.log(`lab upgrade bench skipped: ${availability.reason}`);
} else {
  const rows: string[][] = [
    [
      'advert_int',
      'upgrades',
      'wall time (median)',
      'failed requests',
      'failed x 20 ms',
      'longest client gap (max)',
      'VIP switch step (median)',
      'recorded downtime (median)',
    ],
  ];
  for (const advertInt of [1, 0.1] as const) {
    const figures = await benchAdvertInt(advertInt);
    const failed = figures.map((f) => f.failed);
    rows.push([
      String(advertInt),
      String(figures.length),
      `${(median(figures.map((f) => f.wallMs)) / 1000).toFixed(1)} s`,
      failed.join('/'),
      `${Math.max(...failed) * INTERVAL_MS} ms`,
      `${Math.max(...figures.map((f) => f.longestGapMs))} ms`,
      `${Math.round(median(figures.map((f) => f.vipSwitchMs)))} ms`,
      `${Math.round(median(figures.map((f) => f.recordedDowntimeMs)))} ms`,
    ]);
  }
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length))) ?? [];
  const line = (r: string[]): string => `| ${r.map((c, col) => c.padEnd(widths[col] ?? 0)).join(' | ')} |`;
  console.log(
    `\nrolling upgrade through the orchestrator API (load: GET every ${INTERVAL_MS} ms through the VIP, new connection each):`,
  );
  console.log(line(rows[0] ?? []));
  console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
  for (const r of rows.slice(1)) console.log(line(r));
}
