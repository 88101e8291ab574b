/** What a long-running job tells its watchers. */
export interface ProgressUpdate<Stage extends string = string> {
  stage: Stage;
  /** 0-100. */
  progress: number;
  message: string;
  /** Set when the job failed: a stable code and a human message. */
  error?: { code: string; message: string } | null;
}

/** Where updates go: a device API, a database row, a terminal. May be slow or fail. */
export type ProgressSink<Stage extends string = string> = (
  update: ProgressUpdate<Stage>,
) => Promise<void> | void;

export interface ProgressReporter<Stage extends string = string> {
  /** Offers an update; sent when the stage changed, an error is set, or progress moved by the step. */
  report(update: ProgressUpdate<Stage>): void;
  /** The last update offered, sent or not: what a `GET /progress` should show. */
  readonly latest: ProgressUpdate<Stage> | undefined;
  readonly stats: { offered: number; sent: number; failed: number };
  /** Resolves when every queued send has settled. */
  flush(): Promise<void>;
}

export interface ProgressReporterOptions {
  /** Minimum progress change between two sends within a stage. Default 5 points. */
  step?: number;
  /** Receives each sink failure (for logs); the failure is counted and otherwise ignored. */
  onError?(error: unknown, update: ProgressUpdate): void;
}

/**
 * Wraps a sink with the throttle every service shares: a send on each stage change, on errors,
 * at 100 %, and every `step` points in between. Sends never block the caller and sink failures
 * never reach it: progress is a courtesy to watchers, the work goes on without them.
 */
export function createProgressReporter<Stage extends string = string>(
  sink: ProgressSink<Stage>,
  options: ProgressReporterOptions = {},
): ProgressReporter<Stage> {
  const step = options.step ?? 5;
  const stats = { offered: 0, sent: 0, failed: 0 };
  // Sends go out one at a time, in order, so a watcher never sees progress go backwards. While the
  // sink is busy, queued updates of the same stage collapse into the newest: a slow sink costs
  // memory bounded by the number of stages, never by the number of ticks.
  const queue: ProgressUpdate<Stage>[] = [];
  let draining: Promise<void> | undefined;
  let latest: ProgressUpdate<Stage> | undefined;
  let lastSent: ProgressUpdate<Stage> | undefined;

  const shouldSend = (u: ProgressUpdate<Stage>): boolean =>
    lastSent === undefined ||
    u.stage !== lastSent.stage ||
    (u.error != null && lastSent.error == null) ||
    (u.progress >= 100 && lastSent.progress < 100) ||
    Math.abs(u.progress - lastSent.progress) >= step;

  const deliver = async (u: ProgressUpdate<Stage>): Promise<void> => {
    try {
      await sink(u);
      stats.sent++;
    } catch (error) {
      stats.failed++;
      options.onError?.(error, u);
    }
  };

  const drain = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) await deliver(next);
    draining = undefined;
  };

  const enqueue = (u: ProgressUpdate<Stage>): void => {
    lastSent = u;
    const tail = queue.at(-1);
    if (tail !== undefined && tail.stage === u.stage && tail.error == null) queue[queue.length - 1] = u;
    else queue.push(u);
    draining ??= drain();
  };

  return {
    report(update) {
      stats.offered++;
      const u = { ...update, progress: clampProgress(update.progress) };
      latest = u;
      if (shouldSend(u)) enqueue(u);
    },
    get latest() {
      return latest;
    },
    stats,
    async flush() {
      while (draining !== undefined) await draining;
    },
  };
}

function clampProgress(value: number): number {
  if (!Number.isFinite(value)) return 0;
  return Math.min(100, Math.max(0, Math.round(value * 10) / 10));
}
