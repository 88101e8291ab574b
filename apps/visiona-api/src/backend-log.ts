// The log lines the backends (pg pool, Redis clients) write on their own, outside any request:
// a connection lost or back, a subscription that failed. The backends open before the app and
// its logger exist, so they write to a logger that forwards once the app attaches its own.

/** The part of a pino logger the backends write to. */
export interface BackendLogger {
  info(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
}

/** A BackendLogger that holds lines until `attach`, then forwards them. */
export interface LateLogger extends BackendLogger {
  attach(target: BackendLogger): void;
}

/** Lines held before `attach`; more are counted, not kept. */
const MAX_HELD = 100;

export function createLateLogger(): LateLogger {
  let target: BackendLogger | undefined;
  const held: ['info' | 'warn', Record<string, unknown>, string][] = [];
  let dropped = 0;
  const write = (level: 'info' | 'warn', details: Record<string, unknown>, message: string): void => {
    if (target !== undefined) {
      target[level](details, message);
    } else if (held.length < MAX_HELD) {
      held.push([level, details, message]);
    } else {
      dropped += 1;
    }
  };
  return {
    info: (details, message) => write('info', details, message),
    warn: (details, message) => write('warn', details, message),
    attach: (next) => {
      target = next;
      for (const [level, details, message] of held.splice(0)) next[level](details, message);
      if (dropped > 0) next.warn({ dropped }, 'backend log lines dropped before the logger was ready');
      dropped = 0;
    },
  };
}
