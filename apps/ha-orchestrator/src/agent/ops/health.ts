// health: the database (select 1 and its role), each service's port, keepalived, and the node's
// HTTP /health. Each check has a stable detail; raw errors stay on the node.
import { connect } from 'node:net';
import type { AgentContext } from '../context.js';
import { isInRecovery } from '../database.js';
import type { CheckResult, DatabaseRole, ResultOf } from '../protocol.js';
import { fetchHealth } from './http-health.js';
import { vrrpState } from './keepalived.js';

/** One check never takes longer than this, so a hung part cannot eat the whole deadline. */
const CHECK_LIMIT_MS = 10_000;

export async function health(ctx: AgentContext): Promise<ResultOf<'health'>> {
  const limit = (): number => Math.min(CHECK_LIMIT_MS, ctx.remaining());
  const [database, ports, keepalived, http] = await Promise.all([
    databaseCheck(ctx),
    Promise.all(
      ctx.config.services.map(async (service) => ({
        service: service.name,
        port: service.port,
        ...(await portCheck(service.port, limit())),
      })),
    ),
    keepalivedCheck(ctx),
    httpCheck(ctx, limit()),
  ]);
  const ok = database.ok && ports.every((p) => p.ok) && keepalived.ok && http.ok;
  return {
    ok,
    version: http.version,
    database,
    ports,
    keepalived,
    http: { ok: http.ok, durationMs: http.durationMs, status: http.status, ...detail(http.detail) },
  };
}

function detail(text: string | undefined | null): { detail?: string } {
  return text === undefined || text === null ? {} : { detail: text };
}

async function databaseCheck(ctx: AgentContext): Promise<CheckResult & { role: DatabaseRole }> {
  const started = Date.now();
  try {
    const standby = await isInRecovery(ctx);
    return {
      ok: true,
      durationMs: Date.now() - started,
      role: standby ? 'standby' : 'primary',
      detail: standby ? 'standby (in recovery)' : 'primary',
    };
  } catch {
    return {
      ok: false,
      durationMs: Date.now() - started,
      role: 'unknown',
      detail: 'database did not answer select 1',
    };
  }
}

function portCheck(port: number, timeoutMs: number): Promise<CheckResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const finish = (ok: boolean, text: string): void => {
      socket.destroy();
      resolve({ ok, durationMs: Date.now() - started, detail: text });
    };
    socket.setTimeout(timeoutMs, () => finish(false, `no connection within ${timeoutMs} ms`));
    socket.once('connect', () => finish(true, 'accepting connections'));
    socket.once('error', () => finish(false, 'connection refused'));
  });
}

async function keepalivedCheck(ctx: AgentContext): Promise<ResultOf<'health'>['keepalived']> {
  const started = Date.now();
  try {
    const { state, holdsVip, detail: text } = await vrrpState(ctx);
    const ok = state === 'MASTER' || state === 'BACKUP';
    return { ok, durationMs: Date.now() - started, state, holdsVip, detail: text };
  } catch {
    return {
      ok: false,
      durationMs: Date.now() - started,
      state: 'UNKNOWN',
      holdsVip: false,
      detail: 'keepalived state not readable',
    };
  }
}

async function httpCheck(
  ctx: AgentContext,
  timeoutMs: number,
): Promise<{
  ok: boolean;
  durationMs: number;
  status: number | null;
  version: string | null;
  detail: string | null;
}> {
  const started = Date.now();
  const result = await fetchHealth(ctx.config.http.healthUrl, timeoutMs, ctx.signal);
  const ok = result.status !== null && result.status >= 200 && result.status < 300;
  return {
    ok,
    durationMs: Date.now() - started,
    status: result.status,
    version: result.version,
    detail: result.detail ?? (ok ? `HTTP ${result.status}` : null),
  };
}
