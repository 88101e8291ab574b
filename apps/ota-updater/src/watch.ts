// `ota-updater watch`: follows GET /api/v1.0/progress and draws a progress bar until the update ends.
import { systemClock, type Clock } from '@upgrade/core';

const FINAL = new Set(['success', 'rolled_back', 'failed', 'downloaded', 'idle']);

interface ProgressBody {
  data: {
    stage: string;
    progress: number;
    message: string;
    error: string | null;
    error_code?: string | null;
  };
}

/**
 * Polls the service until its stage is final; returns the exit code: 0 success/downloaded/idle,
 * 1 failed or rolled back, 3 when the service cannot be reached.
 */
export async function watchProgress(options: {
  url: string;
  intervalMs: number;
  out: { write(text: string): unknown; isTTY?: boolean };
  clock?: Clock;
}): Promise<number> {
  const clock = options.clock ?? systemClock;
  let last = '';
  let seenActive = false;
  for (;;) {
    let body: ProgressBody;
    try {
      const res = await fetch(new URL('/api/v1.0/progress', options.url), {
        signal: AbortSignal.timeout(5_000),
      });
      body = (await res.json()) as ProgressBody;
    } catch (error) {
      options.out.write(
        `\ncannot reach ${options.url}: ${error instanceof Error ? error.message : String(error)}\n`,
      );
      return 3;
    }
    const { stage, progress, message, error, error_code: code } = body.data;
    const line = `${stage.padEnd(12)} ${bar(progress)} ${progress.toFixed(0).padStart(3)}%  ${message}`;
    if (line !== last) {
      options.out.write(options.out.isTTY === true ? `\r\x1b[2K${line}` : `${line}\n`);
      last = line;
    }
    if (!FINAL.has(stage)) seenActive = true;
    // A watch started before the request may see `idle` first: wait for the update to begin.
    if (FINAL.has(stage) && (seenActive || stage !== 'idle')) {
      if (options.out.isTTY === true) options.out.write('\n');
      if (error !== null) options.out.write(`${code ?? 'ERROR'}: ${error}\n`);
      return stage === 'failed' || stage === 'rolled_back' ? 1 : 0;
    }
    await clock.sleep(options.intervalMs);
  }
}

function bar(progress: number, width = 30): string {
  const full = Math.max(0, Math.min(width, Math.round((progress / 100) * width)));
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}
