import type { FastifyInstance } from 'fastify';

/** How a graceful close ended: `closed` exits 0; the others exit 1. */
export type ShutdownOutcome = 'closed' | 'timeout' | 'failed';

/** Deadline and last step of a graceful close. */
export interface CloseOptions {
  /**
   * In-flight requests and close hooks get this long. Default 10000 ms. Keep it under the supervisor's
   * kill timeout (systemd `TimeoutStopSec` 90 s; pm2 `kill_timeout` is 1.6 s unless raised).
   */
  shutdownTimeoutMs?: number;
  /** Runs after the server stopped and the app's onClose hooks ran: flush, release locks. */
  onClose?: () => Promise<void> | void;
}

/**
 * Stops accepting connections, lets in-flight requests finish, runs the app's onClose hooks (pools
 * close there), then `onClose`. Past the deadline, open connections are cut and `timeout` returned.
 * Never throws: a failing close hook is logged and reported as `failed`.
 */
export async function closeGracefully(
  app: FastifyInstance,
  options: CloseOptions = {},
): Promise<ShutdownOutcome> {
  const timeoutMs = options.shutdownTimeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  // server.close() only reaps sockets idle when it starts; one whose response finishes during the
  // drain would otherwise hold the close until the keep-alive timeout.
  const reaper = setInterval(() => app.server.closeIdleConnections(), 100);
  const closing = (async (): Promise<ShutdownOutcome> => {
    await app.close();
    await options.onClose?.();
    return 'closed';
  })().catch((error: unknown) => {
    app.log.error({ err: error }, 'shutdown: a close hook failed');
    return 'failed' as const;
  });
  try {
    const outcome = await Promise.race([closing, deadline]);
    if (outcome === 'timeout') {
      app.log.error({ timeoutMs }, 'shutdown: deadline passed with work in flight; cutting connections');
      app.server.closeAllConnections();
    }
    return outcome;
  } finally {
    clearTimeout(timer);
    clearInterval(reaper);
  }
}

/** Where signals come from; `process` in production, an EventEmitter in tests. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

/** Which signals trigger the close, and seams for tests. */
export interface SignalOptions extends CloseOptions {
  /** Default SIGTERM (systemd, pm2, docker) and SIGINT (Ctrl-C). */
  signals?: readonly NodeJS.Signals[];
  source?: SignalSource;
  /** Injected in tests; default `process.exit`. */
  exit?: (code: number) => void;
}

/**
 * On the first signal closes gracefully and exits 0 (1 past the deadline or on a failed hook); a
 * second signal exits 1 at once, for the operator who does not want to wait. Returns an uninstaller.
 */
export function exitOnSignals(app: FastifyInstance, options: SignalOptions = {}): () => void {
  const source = options.source ?? process;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  let shuttingDown = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      app.log.warn({ signal }, 'shutdown: second signal, exiting now');
      exit(1);
      return;
    }
    shuttingDown = true;
    app.log.info({ signal }, 'shutdown: signal received, draining');
    void closeGracefully(app, options).then((outcome) => {
      app.log.info({ outcome }, 'shutdown: done');
      exit(outcome === 'closed' ? 0 : 1);
    });
  };
  for (const signal of signals) source.on(signal, onSignal);
  return () => {
    for (const signal of signals) source.off(signal, onSignal);
  };
}

/** Where the service listens. */
export interface ListenOptions {
  port: number;
  /** Default `0.0.0.0`; `127.0.0.1` for services only a local agent talks to. */
  host?: string;
}

/**
 * `main.ts`'s last step: listens, then exits cleanly on SIGTERM/SIGINT (see `exitOnSignals`).
 * Resolves with the bound address once listening.
 */
export async function listenAndServe(
  app: FastifyInstance,
  listen: ListenOptions,
  options: SignalOptions = {},
): Promise<{ address: string; stop: () => void }> {
  const address = await app.listen({ port: listen.port, host: listen.host ?? '0.0.0.0' });
  const stop = exitOnSignals(app, options);
  return { address, stop };
}
