// One request, one answer: parse, check the caller, validate, run the operation under its deadline,
// and turn whatever happened into an AgentResponse. Never throws.
import { UpgradeError, isUpgradeError } from '@upgrade/core';
import { checkCaller } from './caller.js';
import { opTimeoutCap, type AgentConfig } from './config.js';
import { createContext } from './context.js';
import { HANDLERS } from './dispatch.js';
import type { AgentOp, AgentResponse } from './protocol.js';
import { ARGS, TRANSPORT_ARGS, envelope, type TransportOp } from './schemas.js';
import { parseWith, type Check } from './validate.js';

export type AnyOp = AgentOp | TransportOp;

/** What the node logs about each request (one line on stderr). */
export interface RequestLog {
  requestId: string;
  op: string | null;
  ok: boolean;
  code?: string;
  durationMs: number;
  caller: string | null;
  /** The underlying error for INTERNAL answers; never sent to the caller. */
  error?: string;
}

export interface HandleOptions {
  env: NodeJS.ProcessEnv;
  log?: (entry: RequestLog) => void;
}

function isOp(op: string): op is AnyOp {
  return Object.hasOwn(ARGS, op) || Object.hasOwn(TRANSPORT_ARGS, op);
}

export async function handleRequest(
  input: string,
  config: AgentConfig,
  options: HandleOptions,
): Promise<AgentResponse> {
  const started = Date.now();
  const caller = options.env.SSH_CONNECTION?.trim().split(/\s+/)[0] ?? null;
  let requestId = '';
  let op: AnyOp | null = null;
  let internal: string | undefined;
  const answer = (response: AgentResponse): AgentResponse => {
    options.log?.({
      requestId,
      op,
      ok: response.ok,
      ...(response.ok ? {} : { code: response.error.code }),
      durationMs: response.durationMs,
      caller,
      ...(internal === undefined ? {} : { error: internal }),
    });
    return response;
  };
  try {
    let raw: unknown;
    try {
      raw = JSON.parse(input);
    } catch {
      throw new UpgradeError('VALIDATION_FAILED', 'request is not valid JSON');
    }
    if (typeof raw === 'object' && raw !== null && 'requestId' in raw && typeof raw.requestId === 'string')
      requestId = raw.requestId.slice(0, 128);
    checkCaller(config, options.env);
    const request = parseWith(envelope, raw, 'request', 'VALIDATION_FAILED');
    if (!isOp(request.op))
      throw new UpgradeError('VALIDATION_FAILED', `unknown operation "${request.op}"`, {
        details: { field: 'op' },
      });
    op = request.op;
    const check = (
      Object.hasOwn(ARGS, op) ? ARGS[op as AgentOp] : TRANSPORT_ARGS[op as TransportOp]
    ) as Check<unknown>;
    const args = parseWith(check, request.args, `${op} args`, 'VALIDATION_FAILED');
    const result = await runWithDeadline(
      config,
      op,
      args,
      Math.min(request.timeoutMs, opTimeoutCap(config, op)),
    );
    return answer({
      ok: true,
      requestId,
      op: op as AgentOp,
      result: result as never,
      durationMs: Date.now() - started,
    });
  } catch (error) {
    const failure = isUpgradeError(error)
      ? error
      : new UpgradeError(
          'INTERNAL',
          `internal error in ${op ?? 'request'} on ${config.nodeId}; see the agent log on the node`,
        );
    if (!isUpgradeError(error))
      internal = error instanceof Error ? (error.stack ?? error.message) : String(error);
    return answer({
      ok: false,
      requestId,
      op: op as AgentOp | null,
      error: { code: failure.code, message: failure.message, retryable: failure.retryable },
      durationMs: Date.now() - started,
    });
  }
}

async function runWithDeadline(
  config: AgentConfig,
  op: AnyOp,
  args: unknown,
  timeoutMs: number,
): Promise<unknown> {
  const controller = new AbortController();
  const timeout = new UpgradeError(
    'TIMEOUT',
    `${op} did not finish within ${timeoutMs} ms on ${config.nodeId}`,
    {
      details: { timeoutMs },
    },
  );
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      // Aborting kills every command the operation is running (their process groups).
      controller.abort(timeout);
      reject(timeout);
    }, timeoutMs);
  });
  const ctx = createContext(config, controller.signal, Date.now() + timeoutMs);
  const handler = HANDLERS[op] as (c: typeof ctx, a: unknown) => Promise<unknown>;
  try {
    return await Promise.race([handler(ctx, args), expired]);
  } finally {
    clearTimeout(timer);
  }
}
