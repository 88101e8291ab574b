// The deadlines of a download, all on the injected clock: the whole download's limit and the
// caller's abort (one signal), and the stall watch of one response body.
import { UpgradeError, abortError, type Clock } from '@upgrade/core';

/** The signal every request and wait of one download listens to: the caller's abort or the deadline. */
export interface RunControl {
  readonly signal: AbortSignal;
  /** ABORTED or TIMEOUT, once the signal fired. */
  reason(): UpgradeError | null;
  dispose(): void;
}

/** Starts the download's deadline and links the caller's signal. */
export function startRun(outer: AbortSignal | undefined, clock: Clock, totalTimeoutMs: number): RunControl {
  const controller = new AbortController();
  const stop = new AbortController();
  const onOuter = (): void => {
    if (outer !== undefined) controller.abort(abortError(outer));
  };
  if (outer?.aborted === true) onOuter();
  else outer?.addEventListener('abort', onOuter, { once: true });
  clock.sleep(totalTimeoutMs, stop.signal).then(
    () =>
      controller.abort(
        new UpgradeError(
          'TIMEOUT',
          `download did not finish within ${totalTimeoutMs} ms; it can be resumed`,
          {
            details: { timeoutMs: totalTimeoutMs },
          },
        ),
      ),
    // Disposed: the download ended first.
    () => undefined,
  );
  return {
    signal: controller.signal,
    reason: () => (controller.signal.aborted ? abortError(controller.signal) : null),
    dispose: () => {
      stop.abort();
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

/** Watches one response body for silence. */
export interface StallWatch {
  /** A chunk arrived and the download is busy writing it: time spent there is not the server's silence. */
  hold(): void;
  /** Done with the chunk: the silence starts now. */
  release(): void;
  stop(): void;
}

/** Calls `onStall` once when neither bytes arrived nor disk work ran for `ms`. */
export function watchStall(clock: Clock, ms: number, onStall: () => void): StallWatch {
  let last = clock.now();
  let held = false;
  const stopper = new AbortController();
  void (async () => {
    for (;;) {
      const wait = held ? ms : last + ms - clock.now();
      if (wait <= 0) {
        onStall();
        return;
      }
      try {
        await clock.sleep(wait, stopper.signal);
      } catch {
        return;
      }
    }
  })();
  return {
    hold: () => {
      held = true;
    },
    release: () => {
      held = false;
      last = clock.now();
    },
    stop: () => stopper.abort(),
  };
}

/** Aborts `target` when `source` aborts, with the same reason; returns the unlink. */
export function follow(source: AbortSignal, target: AbortController): () => void {
  const forward = (): void => target.abort(source.reason);
  if (source.aborted) forward();
  else source.addEventListener('abort', forward, { once: true });
  return () => source.removeEventListener('abort', forward);
}
