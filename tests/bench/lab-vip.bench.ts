// VIP switch in the two-node lab: how long a planned switch (priority swap + SIGHUP) takes and what
// a client hitting the VIP every 20 ms on fresh connections sees, at advert_int 1 and 0.1.
//   pnpm --filter @upgrade/tests bench            (LAB_BENCH_SWAPS=n swaps per setting, default 4)
import { checkLab, startLab, stopLab, type LabNodeId, type LabOptions } from '../lab/lab.js';
import { formatLoadReport, startLoad } from '../lab/load.js';

interface SwapFigures {
  vipMs: number;
  clientMs: number;
  failed: number;
  longestGapMs: number;
}

const SWAPS = Number(process.env.LAB_BENCH_SWAPS ?? 4);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]): number => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function benchAdvertInt(advertInt: 1 | 0.1): Promise<SwapFigures[]> {
  const options: LabOptions = { advertInt, postgres: false, syncIntervalS: 5, fresh: true };
  const lab = await startLab(options);
  const figures: SwapFigures[] = [];
  try {
    let holder: LabNodeId = 'node-a';
    for (let i = 0; i < SWAPS; i++) {
      const target: LabNodeId = holder === 'node-a' ? 'node-b' : 'node-a';
      const load = startLoad({ url: `${lab.vipUrl}/`, intervalMs: 20, timeoutMs: 1000 });
      await sleep(300);
      const swapAt = load.elapsed();
      await lab.setPriorities({ [holder]: 100, [target]: 150 });
      const vipMs = await lab.waitForVip(target, 15_000);
      const clientAt = await load.waitForNode(target, 5000);
      await sleep(300);
      const report = await load.stop();
      const swap = {
        vipMs,
        clientMs: clientAt - swapAt,
        failed: report.failed,
        longestGapMs: report.longestGapMs,
      };
      figures.push(swap);
      console.log(
        `  advert_int ${advertInt} swap ${i + 1} ${holder} -> ${target}: VIP moved in ${Math.round(vipMs)} ms, ` +
          `clients on ${target} after ${Math.round(swap.clientMs)} ms; ${formatLoadReport(report)}`,
      );
      holder = target;
      await sleep(advertInt * 1000);
    }
  } finally {
    await stopLab(options);
  }
  return figures;
}

const availability = await checkLab();
if (!availability.ok) {
  console.log(`lab VIP bench skipped: ${availability.reason}`);
} else {
  const rows: string[] = [];
  for (const advertInt of [1, 0.1] as const) {
    const figures = await benchAdvertInt(advertInt);
    const vip = figures.map((f) => f.vipMs);
    const gap = figures.map((f) => f.longestGapMs);
    rows.push(
      `advert_int ${advertInt}: ${figures.length} swaps, VIP switch median ${Math.round(median(vip))} ms ` +
        `(max ${Math.round(Math.max(...vip))}), client gap median ${Math.round(median(gap))} ms ` +
        `(max ${Math.max(...gap)}), failed requests ${figures.map((f) => f.failed).join('/')}`,
    );
  }
  console.log('\nplanned VIP switch (priority swap + SIGHUP), load: GET every 20 ms, new connection each:');
  for (const row of rows) console.log(`  ${row}`);
}
