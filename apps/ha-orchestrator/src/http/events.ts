// GET /api/v1/upgrade/events: what the console shows live, as server-sent events. One feed per app
// reads the stores while at least one page listens (every 500 ms: the task followed, its steps and
// any new log lines; the pair every 5 s through the same probe as /health) and sends each change to
// every open stream; a stream that connects first gets the whole picture as `snapshot`.
//
// The task followed is the one running, else the newest one, so a page opened after an upgrade
// still shows how it ended.
import { describeError } from '@upgrade/core';
import { Type, errorResponses, openEventStream, type ServiceApp, type Static } from '@upgrade/service';
import {
  DEFAULT_LOG_SOURCE,
  type AuditTrail,
  type HaState,
  type LogRecord,
  type TaskStore,
  type UpgradeTask,
} from '../ports.js';
import { callerOf } from '../auth.js';
import { pairHealth, type HealthDeps } from './health.js';
import { pathOf, type ApiRequestLog } from './request-log.js';
import { toProgress, toTaskView } from './routes.js';
import type { LogView } from './schemas.js';

export interface EventsDeps {
  tasks: Pick<TaskStore, 'active' | 'list'>;
  audit: Pick<AuditTrail, 'logs' | 'steps'>;
  health: HealthDeps;
  /** A stream skips the request log's hooks (its reply is taken over), so it records itself when it ends. */
  requestLog: ApiRequestLog;
  now: () => number;
  /** How often the task store is read while a page listens. Default 500 ms. */
  taskIntervalMs?: number;
  /** How often the pair is probed while a page listens. Default 5000 ms. */
  pairIntervalMs?: number;
}

type LogLine = Static<typeof LogView>;
type Progress = ReturnType<typeof toProgress>;
type PairReport = Awaited<ReturnType<typeof pairHealth>>;

/** The log lines a page is sent at most when it connects or a new task is followed. */
const LOG_TAIL = 200;
/** Page size when the whole log of a task is read for its state transitions. */
const LOG_PAGE = 100;

interface Followed {
  task: Progress;
  /** Each state the task entered, in order (from its transitions in the log). */
  visited: HaState[];
  logs: LogLine[];
  logTotal: number;
  /** What the last `task` event was built from, to send only changes. */
  key: string;
}

export interface ConsoleSnapshot {
  task: Progress | null;
  visited: HaState[];
  logs: LogLine[];
  log_total: number;
  pair: PairReport | null;
}

interface Subscriber {
  send(event: string, data: unknown): void;
}

interface Logger {
  warn(o: object, m: string): void;
}

/** The shared reader behind every open event stream. */
export function createConsoleFeed(deps: EventsDeps, log: Logger) {
  const subscribers = new Set<Subscriber>();
  let followed: Followed | null = null;
  let pair: PairReport | null = null;
  let taskTimer: NodeJS.Timeout | undefined;
  let pairTimer: NodeJS.Timeout | undefined;
  let first: Promise<void> | null = null;
  // A stop and a new start may come while a read of the old run is still in flight: its timer
  // chain ends when it sees another generation.
  let generation = 0;

  const broadcast = (event: string, data: unknown): void => {
    for (const s of subscribers) s.send(event, data);
  };

  const snapshot = (): ConsoleSnapshot => ({
    task: followed?.task ?? null,
    visited: followed?.visited ?? [],
    logs: followed?.logs ?? [],
    log_total: followed?.logTotal ?? 0,
    pair,
  });

  async function currentTask(): Promise<UpgradeTask | null> {
    return (await deps.tasks.active()) ?? (await deps.tasks.list({ limit: 1, offset: 0 })).items[0] ?? null;
  }

  async function progressOf(task: UpgradeTask): Promise<{ task: Progress; key: string }> {
    const steps = await deps.audit.steps(task.id);
    const view = toTaskView(task);
    return { task: toProgress(task, steps, deps.now()), key: `${JSON.stringify(view)}|${steps.length}` };
  }

  /** The whole log once, oldest first: the states entered, the last lines and the count. */
  async function load(task: UpgradeTask): Promise<Followed> {
    const lines: LogRecord[] = [];
    let total = 0;
    for (let offset = 0; ; offset += LOG_PAGE) {
      const page = await deps.audit.logs(task.id, { limit: LOG_PAGE, offset });
      total = page.total;
      lines.push(...page.items);
      if (page.items.length < LOG_PAGE || lines.length >= page.total) break;
    }
    lines.reverse();
    // Every task starts in IDLE; the log records each move out of it.
    const visited = lines.reduce<HaState[]>(
      (states, l) => (l.toState === null ? states : withState(states, l.toState)),
      ['IDLE'],
    );
    const { task: view, key } = await progressOf(task);
    return {
      task: view,
      visited: withState(visited, task.state),
      logs: lines.slice(-LOG_TAIL).map(toLogLine),
      logTotal: total,
      key,
    };
  }

  async function readTask(): Promise<void> {
    const task = await currentTask();
    if (task === null) return;
    if (followed === null || followed.task.task_id !== task.id) {
      followed = await load(task);
      broadcast('snapshot', snapshot());
      return;
    }
    const current = followed;
    const { total } = await deps.audit.logs(task.id, { limit: 1, offset: 0 });
    if (total > current.logTotal) {
      // Lines may be written between the two reads: the new ones are counted by the second
      // read's own total (a little room is left for them).
      const fresh = await deps.audit.logs(task.id, {
        limit: Math.min(total - current.logTotal + 20, LOG_TAIL),
        offset: 0,
      });
      const lines = fresh.items
        .slice(0, Math.max(0, fresh.total - current.logTotal))
        .reverse()
        .map(toLogLine);
      current.logTotal = fresh.total;
      current.logs = [...current.logs, ...lines].slice(-LOG_TAIL);
      for (const l of lines)
        if (l.to_state !== null) current.visited = withState(current.visited, l.to_state);
      broadcast('log', { task_id: task.id, lines, total: current.logTotal });
    }
    const { task: view, key } = await progressOf(task);
    if (key !== current.key) {
      current.task = view;
      current.key = key;
      current.visited = withState(current.visited, task.state);
      broadcast('task', { task: view, visited: current.visited });
    }
  }

  async function readPair(): Promise<void> {
    pair = await pairHealth(deps.health, (name, err) =>
      log.warn({ check: name, err: describeError(err) }, 'health check failed'),
    );
    broadcast('pair', pair);
  }

  // Reads in flight, so a closing app waits for them before its database goes.
  const inFlight = new Set<Promise<void>>();
  const guard = (what: string, fn: () => Promise<void>) => (): Promise<void> => {
    const read = fn()
      .catch((error: unknown) =>
        log.warn({ err: describeError(error) }, `console feed: reading ${what} failed`),
      )
      .finally(() => inFlight.delete(read));
    inFlight.add(read);
    return read;
  };
  const tickTask = guard('the task', readTask);
  const tickPair = guard('the pair', readPair);

  function loop(fn: () => Promise<void>, ms: number, own: number, set: (t: NodeJS.Timeout) => void): void {
    const next = (): void => {
      if (own !== generation) return;
      const timer = setTimeout(() => void fn().then(next), ms);
      timer.unref();
      set(timer);
    };
    next();
  }

  function start(): Promise<void> {
    const own = ++generation;
    void tickPair().then(() =>
      loop(tickPair, deps.pairIntervalMs ?? 5_000, own, (t) => {
        pairTimer = t;
      }),
    );
    return tickTask().then(() =>
      loop(tickTask, deps.taskIntervalMs ?? 500, own, (t) => {
        taskTimer = t;
      }),
    );
  }

  function stop(): void {
    generation += 1;
    clearTimeout(taskTimer);
    clearTimeout(pairTimer);
    first = null;
    followed = null;
  }

  return {
    /** Adds a listener; it gets the snapshot once the first read is done, then every change. */
    async subscribe(subscriber: Subscriber): Promise<() => void> {
      first ??= start();
      await first;
      subscribers.add(subscriber);
      subscriber.send('snapshot', snapshot());
      return () => {
        subscribers.delete(subscriber);
        if (subscribers.size === 0) stop();
      };
    },
    /** Stops reading and waits for the reads under way. */
    async close(): Promise<void> {
      stop();
      await Promise.all(inFlight);
    },
  };
}

function withState(visited: readonly HaState[], state: HaState): HaState[] {
  return visited.at(-1) === state ? [...visited] : [...visited, state];
}

function toLogLine(l: LogRecord): LogLine {
  return {
    at: l.at.toISOString(),
    level: l.level,
    source: l.source ?? DEFAULT_LOG_SOURCE,
    message: l.message,
    from_state: l.fromState,
    to_state: l.toState,
    details: l.details ?? null,
  };
}

const EVENTS_DESCRIPTION =
  'Server-sent events (text/event-stream), each `data:` line one JSON object. `snapshot` first ' +
  '(`{task, visited, logs, log_total, pair}`: the task followed as GET /progress/{id} gives it or null, the ' +
  'states it entered in order, its last 200 log lines oldest first, its log line count, the pair as GET /health ' +
  'gives it or null before the first probe), and again whenever another task is followed; then `task` ' +
  '(`{task, visited}`) when the task changes, `log` (`{task_id, lines, total}`) with new log lines oldest first, ' +
  '`pair` (the /health report) every 5 s. The task followed is the one not final, else the newest. A comment ' +
  'line every 15 s keeps the connection open. Read it with fetch (the bearer token is a header), not EventSource.';

/**
 * Adds the route to `app` itself, not in a plugin: event streams belong to the app (its close ends
 * them), and a plugin's instance is not the app.
 */
export function registerEventRoutes(app: ServiceApp, deps: EventsDeps): void {
  const feed = createConsoleFeed(deps, app.log);
  app.addHook('onClose', () => feed.close());
  app.get(
    '/api/v1/upgrade/events',
    {
      schema: {
        summary: 'The running (or last) task, its new log lines and the pair, live, as server-sent events',
        description: EVENTS_DESCRIPTION,
        tags: ['upgrade'],
        response: {
          200: {
            description: 'an event stream that stays open',
            content: { 'text/event-stream': { schema: Type.String() } },
          },
          ...errorResponses(401, 403),
        },
      },
    },
    async (request, reply) => {
      const opened = deps.now();
      let events = 0;
      const stream = openEventStream(app, request, reply);
      stream.onClose(() => {
        const path = pathOf(request);
        deps.requestLog
          .record({
            at: new Date(deps.now()),
            requestId: request.id,
            method: request.method,
            route: request.routeOptions.url ?? path,
            path,
            status: 200,
            durationMs: deps.now() - opened,
            clientIp: request.ip,
            caller: callerOf(request),
            userAgent: request.headers['user-agent'] ?? null,
            requestBody: null,
            responseBody: { stream: true, events },
          })
          .catch((error: unknown) =>
            request.log.warn({ err: describeError(error) }, 'could not write the API request log'),
          );
      });
      const unsubscribe = await feed.subscribe({
        send: (event, data) => {
          if (stream.send(event, data)) events += 1;
        },
      });
      stream.onClose(unsubscribe);
      return reply;
    },
  );
}
