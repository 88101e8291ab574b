// The boonlive RCU cloud behind the `VendorApi` port. Every vendor field name lives in this file;
// the contract it relies on is spec/vendor-api.openapi.json, checked on every answer at run time.
import { setMaxListeners } from 'node:events';
import { Agent, request } from 'undici';
import {
  UpgradeError,
  abortError,
  networkErrorCode,
  systemClock,
  type Clock,
  type ErrorCode,
  type HealthCheck,
} from '@upgrade/core';
import type { FirmwareFile, HostGroup, HostProgress, HostStatus, VendorApi } from '../ports.js';
import { loadVendorSchemas, locateVendorSpec, type VendorSchemaName } from './vendor-spec.js';

/**
 * The vendor cloud's production base URL, for documentation only: the base URL is always given
 * explicitly, so a blank setting can never reach production devices.
 */
export const PRODUCTION_VENDOR_BASE_URL = 'https://www.boonlive-rcu.com/api';

/**
 * Deviations from the spec the adapter reads through because their meaning is unambiguous: a host
 * listed twice with the same status, a host listed twice with different statuses (read as the
 * least final one), a progress given as text ("100%").
 */
export type VendorDeviation = 'duplicate_host' | 'conflicting_duplicate' | 'percent_text';

export const VENDOR_DEVIATIONS: readonly VendorDeviation[] = [
  'duplicate_host',
  'conflicting_duplicate',
  'percent_text',
];

/** Where retries and refusals are reported; pino's and fastify's loggers fit. */
export interface VendorApiLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

/** Options of {@link createVendorApi}; times in milliseconds. */
export interface VendorApiOptions {
  /** Required, no default (production is {@link PRODUCTION_VENDOR_BASE_URL}); the endpoints are appended: `<baseUrl>/Upgrade_V2`. */
  baseUrl: string;
  /** The API account, sent in every request body (the spec's `Credentials`). */
  username: string;
  password: string;
  /** TCP + TLS connect limit. Default 5 000. */
  connectTimeoutMs?: number;
  /**
   * Limit for one attempt, from dispatching the request to the answer's last byte; it includes
   * connecting, so keep it above `connectTimeoutMs` (a connect cut by it counts as a TIMEOUT, which
   * `Upgrade_V2` does not retry). Default 30 000.
   */
  responseTimeoutMs?: number;
  /** Extra attempts after a transient failure (5xx, reset, refused, timeout). Default 2. */
  retries?: number;
  /** Delay before the first retry, doubled for each further one. Default 1 000. */
  retryDelayMs?: number;
  /**
   * Also retry `Upgrade_V2` when the vendor may already have started the upgrade (500/502/504,
   * reset after sending, response timeout). Default false: a retry would start a second upgrade of
   * the same hosts under a UUID we never learn about.
   */
  retryUnsafeTrigger?: boolean;
  /** Concurrent connections to the vendor. Default 16. */
  connections?: number;
  /** Answers larger than this are a contract violation. Default 16 MiB. */
  maxResponseBytes?: number;
  /** Retry delays sleep on it; default the system clock. */
  clock?: Clock;
  logger?: VendorApiLogger;
  /** Called once per tolerated deviation in an answer (for a metrics counter). */
  onDeviation?: (kind: VendorDeviation) => void;
  /** The spec to validate against; default the package's `spec/vendor-api.openapi.json`. */
  specPath?: string;
}

/** HTTP attempts made since the client was created: `calls` includes `retries`. */
export interface VendorApiStats {
  calls: number;
  retries: number;
}

/** The port plus what the process that owns the client needs: counters, health and shutdown. */
export interface VendorApiClient extends VendorApi {
  /** A snapshot of the counters (vendor calls only; health probes are not counted). */
  readonly stats: VendorApiStats;
  /**
   * For `/healthz`: a progress query of a UUID no upgrade has must get the vendor's unknown-UUID
   * answer (the API works and takes the credentials); anything else is down. Non-critical by default (degraded, not down): a vendor outage is no reason for a supervisor
   * or load balancer to restart or drop this service, whose rounds already cope with it.
   */
  healthCheck(name?: string, options?: { critical?: boolean }): HealthCheck;
  /** Closes the connections; calls still in flight fail with ABORTED. */
  close(): Promise<void>;
}

// ---- the wire: vendor field names, only here ----

type Endpoint = 'Upgrade_V2' | 'QueryUpdateHostProgressBar';

interface WireEnvelope<T> {
  IsSuccess: boolean;
  Message: string | null;
  Data?: T | null;
}

interface WireHostProgress {
  HostNumber: string;
  Status: WireStatusCode;
  /** A number per the spec; text such as "100%" is tolerated. */
  Progress: number | string;
  ConfigVersion?: string | null;
  FirmwareVersion?: string | null;
  Message?: string | null;
}

type WireStatusCode = 0 | 1 | 2 | 3 | 4 | 5;

/** The spec's `HostStatusCode`: 0 waiting, 1 upgrading, 2 success, 3 failed, 4 timeout, 5 offline. */
const STATUS_BY_CODE: Readonly<Record<WireStatusCode, HostStatus>> = {
  0: 'pending',
  1: 'running',
  2: 'completed',
  3: 'failed',
  4: 'timeout',
  5: 'failed',
};

/** How the vendor words an unknown UUID (assumed, see the spec): the one message we interpret. */
const UNKNOWN_UUID = /not\s*exist|not\s*found|no\s*such|不存在|未找到/i;

const MESSAGE_LIMIT = 300;

/** The upgrade the health check asks about: no vendor upgrade has the nil-like UUID. */
const HEALTH_PROBE_UUID = '00000000-0000-4000-8000-000000000000';

// ---- the adapter ----

/**
 * The vendor API over undici: one connection pool, connect and response timeouts, bounded retries
 * of transient failures with a doubling delay on `clock`, answers validated against the spec.
 *
 * Errors (all UpgradeError): VENDOR_CONTRACT_VIOLATION (answer not JSON or not per spec), NOT_FOUND
 * (unknown uuid), VALIDATION_FAILED (vendor refused, other 4xx), UNAUTHORIZED (401/403),
 * UNAVAILABLE (5xx), UNREACHABLE (refused, reset, DNS), TIMEOUT (no answer in time), ABORTED.
 *
 * @example const vendor = createVendorApi({ baseUrl, username, password, responseTimeoutMs: 15_000 })
 */
export function createVendorApi(options: VendorApiOptions): VendorApiClient {
  const baseUrl = checkBaseUrl(options.baseUrl);
  const { username, password } = options;
  if (username === '' || password === '')
    throw new UpgradeError('CONFIG_INVALID', 'vendor credentials: user name and password must not be empty');
  const connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs ?? 5_000);
  const responseTimeoutMs = positive('responseTimeoutMs', options.responseTimeoutMs ?? 30_000);
  const retries = nonNegativeInteger('retries', options.retries ?? 2);
  const retryDelayMs = nonNegativeInteger('retryDelayMs', options.retryDelayMs ?? 1_000);
  const clock = options.clock ?? systemClock;
  const logger = options.logger;
  const onDeviation = options.onDeviation ?? (() => undefined);
  const schemas = loadVendorSchemas(options.specPath ?? locateVendorSpec(import.meta.url));

  const agent = new Agent({
    connect: { timeout: connectTimeoutMs },
    headersTimeout: responseTimeoutMs,
    bodyTimeout: responseTimeoutMs,
    connections: options.connections ?? 16,
    maxResponseSize: options.maxResponseBytes ?? 16 * 1024 * 1024,
  });
  const stats: VendorApiStats = { calls: 0, retries: 0 };
  // Aborts calls still in flight or sleeping between retries when the client closes. Every call in
  // flight listens on it, and a round polls 100 groups at once: no listener limit applies.
  const closing = new AbortController();
  setMaxListeners(0, closing.signal);

  const call = async <T>(
    endpoint: Endpoint,
    body: Record<string, unknown>,
    schema: { request: VendorSchemaName; response: VendorSchemaName },
    idempotent: boolean,
    callerSignal: AbortSignal | undefined,
    probe = false,
  ): Promise<WireEnvelope<T>> => {
    const wire = { UserName: username, Password: password, ...body };
    const invalid = schemas.check(schema.request, wire);
    // Checked before sending so a bad group names its field here instead of in a vendor 400.
    if (invalid !== null)
      throw new UpgradeError('VALIDATION_FAILED', `${endpoint} request not sent: ${invalid}`, {
        retryable: false,
      });
    const payload = JSON.stringify(wire);
    const { signal, unlink } = linkSignals(closing.signal, callerSignal);
    try {
      return await attempts<T>(endpoint, payload, schema.response, idempotent, signal, probe);
    } finally {
      unlink();
    }
  };

  const attempts = async <T>(
    endpoint: Endpoint,
    payload: string,
    schema: VendorSchemaName,
    idempotent: boolean,
    signal: AbortSignal,
    probe: boolean,
  ): Promise<WireEnvelope<T>> => {
    for (let attempt = 1; ; attempt++) {
      if (signal.aborted) throw abortError(signal);
      let failure: Failure;
      try {
        if (!probe) stats.calls++;
        return await attemptOnce<T>(endpoint, payload, schema, signal);
      } catch (error) {
        if (signal.aborted) throw abortError(signal);
        if (!(error instanceof Failure)) throw error;
        failure = error;
      }
      const retryAllowed =
        failure.retry === 'safe' ||
        (failure.retry === 'unsafe' && (idempotent || options.retryUnsafeTrigger === true));
      // A health probe answers for this moment: one attempt, the check's own timeout bounds it.
      if (!retryAllowed || attempt > retries || probe)
        throw finalError(endpoint, failure, attempt, retryAllowed);
      const delayMs = retryDelayMs * 2 ** (attempt - 1);
      stats.retries++;
      logger?.warn(
        { endpoint, attempt, delayMs, code: failure.code, reason: failure.reason },
        'vendor call failed, retrying',
      );
      await clock.sleep(delayMs, signal);
    }
  };

  const attemptOnce = async <T>(
    endpoint: Endpoint,
    payload: string,
    schema: VendorSchemaName,
    signal: AbortSignal,
  ): Promise<WireEnvelope<T>> => {
    // undici's headersTimeout / bodyTimeout run on its coarse timers (about half a second of
    // slack), so the attempt's deadline is kept here with a native timer; theirs stay as a backstop.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), responseTimeoutMs);
    timer.unref();
    const attempt = linkSignals(signal, deadline.signal);
    let status: number;
    let text: string;
    try {
      const response = await request(new URL(endpoint, baseUrl), {
        method: 'POST',
        dispatcher: agent,
        headers: {
          'content-type': 'application/json; charset=utf-8',
          accept: 'application/json',
          'user-agent': 'rcu-scheduler',
        },
        body: payload,
        signal: attempt.signal,
      });
      status = response.statusCode;
      if (status >= 500) {
        // The body of an overload answer is an HTML error page at best: never parsed, only drained
        // so the connection can be reused.
        await response.body.dump();
        throw new Failure(
          'UNAVAILABLE',
          `answered HTTP ${status}`,
          // 503 is answered before the request is processed (spec); other 5xx may come after.
          status === 503 ? 'safe' : 'unsafe',
        );
      }
      text = await response.body.text();
    } catch (error) {
      if (error instanceof Failure || signal.aborted) throw error;
      if (deadline.signal.aborted)
        throw new Failure('TIMEOUT', `no answer within ${responseTimeoutMs} ms`, 'unsafe', error);
      throw networkFailure(error, connectTimeoutMs, responseTimeoutMs);
    } finally {
      clearTimeout(timer);
      attempt.unlink();
    }
    if (status >= 400) throw clientErrorFailure(status, text);
    if (status < 200 || status >= 300)
      throw new Failure('VENDOR_CONTRACT_VIOLATION', `answered HTTP ${status}; check the base URL`, 'never');
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch (error) {
      throw new Failure(
        'VENDOR_CONTRACT_VIOLATION',
        `answer is not JSON (${error instanceof Error ? error.message : String(error)})`,
        'never',
      );
    }
    const invalid = schemas.check(schema, answer);
    if (invalid !== null)
      throw new Failure('VENDOR_CONTRACT_VIOLATION', `answer does not match the spec: ${invalid}`, 'never');
    return answer as WireEnvelope<T>;
  };

  return {
    get stats() {
      return { ...stats };
    },

    async triggerUpgrade({ group, file }: { group: HostGroup; file: FirmwareFile }, signal?: AbortSignal) {
      const answer = await call<{ UUID: string }>(
        'Upgrade_V2',
        {
          RoomTypeID: group.roomTypeId,
          HostList: group.hosts,
          FileName: file.filename,
          FileType: file.fileType,
        },
        { request: 'UpgradeV2Request', response: 'UpgradeV2Response' },
        false,
        signal,
      );
      if (!answer.IsSuccess || answer.Data == null) throw refusal('Upgrade_V2', answer.Message);
      return { uuid: answer.Data.UUID };
    },

    async queryProgress(uuid: string, signal?: AbortSignal) {
      const answer = await call<WireHostProgress[]>(
        'QueryUpdateHostProgressBar',
        { UUID: uuid },
        { request: 'QueryUpdateHostProgressBarRequest', response: 'QueryUpdateHostProgressBarResponse' },
        true,
        signal,
      );
      if (!answer.IsSuccess || answer.Data == null) {
        const message = trimMessage(answer.Message);
        if (message !== null && UNKNOWN_UUID.test(message))
          throw new UpgradeError('NOT_FOUND', `the vendor does not know upgrade ${uuid}: ${message}`, {
            details: { uuid },
          });
        throw refusal('QueryUpdateHostProgressBar', answer.Message);
      }
      return toHostProgress(answer.Data, uuid, {
        deviation: onDeviation,
        warn: (details, message) => logger?.warn(details, message),
      });
    },

    healthCheck(name = 'vendor-api', { critical = false } = {}) {
      return {
        name,
        critical,
        // Asks for the progress of an upgrade that cannot exist: the vendor's API must answer,
        // accept the credentials and give its unknown-uuid refusal, per the spec. Proves the API
        // itself works (not just that a web server answers, as a 405 page would), and starts or
        // touches no upgrade.
        check: async (signal) => {
          const answer = await call<WireHostProgress[]>(
            'QueryUpdateHostProgressBar',
            { UUID: HEALTH_PROBE_UUID },
            { request: 'QueryUpdateHostProgressBarRequest', response: 'QueryUpdateHostProgressBarResponse' },
            true,
            signal,
            true,
          );
          const message = trimMessage(answer.Message);
          if (answer.IsSuccess || (message !== null && UNKNOWN_UUID.test(message)))
            return 'QueryUpdateHostProgressBar answers';
          throw refusal('QueryUpdateHostProgressBar', answer.Message);
        },
      };
    },

    async close() {
      closing.abort(new UpgradeError('ABORTED', 'the vendor API client was closed'));
      await agent.destroy();
    },
  };
}

/** How final a vendor status is: a conflicting duplicate is read as its least final entry. */
const FINALITY: Readonly<Record<WireStatusCode, number>> = { 0: 0, 1: 1, 3: 2, 4: 2, 5: 2, 2: 3 };

/**
 * Maps the vendor's hosts to ours, reading through the deviations whose meaning is clear: a host
 * listed twice with the same status is one host; listed with different statuses it is the least
 * final of them (logged), so it is asked again rather than settled on a guess; "100%" is 100.
 */
function toHostProgress(
  entries: readonly WireHostProgress[],
  uuid: string,
  report: { deviation: (kind: VendorDeviation) => void; warn: VendorApiLogger['warn'] },
): HostProgress[] {
  const byHost = new Map<string, WireHostProgress[]>();
  for (const entry of entries) {
    const list = byHost.get(entry.HostNumber);
    if (list === undefined) byHost.set(entry.HostNumber, [entry]);
    else list.push(entry);
  }
  return [...byHost.entries()].map(([host, list]) => {
    let entry = list[0] as WireHostProgress;
    let agreeing: readonly WireHostProgress[] = list;
    if (list.length > 1) {
      const statuses = [...new Set(list.map((e) => e.Status))];
      if (statuses.length === 1) report.deviation('duplicate_host');
      else {
        report.deviation('conflicting_duplicate');
        for (const e of list) if (FINALITY[e.Status] < FINALITY[entry.Status]) entry = e;
        agreeing = [entry];
        report.warn(
          { endpoint: 'QueryUpdateHostProgressBar', uuid, host, statuses: list.map((e) => e.Status) },
          'vendor listed a host with conflicting statuses; reading the least final one',
        );
      }
    }
    let progress = entry.Progress;
    if (typeof progress === 'string') {
      report.deviation('percent_text');
      progress = Number.parseFloat(progress.replace('%', ''));
    }
    const status = STATUS_BY_CODE[entry.Status];
    const failed = status === 'failed' || status === 'timeout';
    return {
      host,
      status,
      progress,
      configVersion: firstPresent(agreeing, (e) => e.ConfigVersion),
      firmwareVersion: firstPresent(agreeing, (e) => e.FirmwareVersion),
      // The port keeps the vendor's words for failures only; "Upgrading" tells the flow nothing.
      message: failed ? (trimMessage(entry.Message) ?? (entry.Status === 5 ? 'host offline' : null)) : null,
    };
  });
}

/** The first non-blank value among duplicate entries. */
function firstPresent(
  list: readonly WireHostProgress[],
  pick: (entry: WireHostProgress) => string | null | undefined,
): string | null {
  for (const entry of list) {
    const value = blankToNull(pick(entry));
    if (value !== null) return value;
  }
  return null;
}

// ---- failures ----

/** Whether an attempt may be repeated: never, always, or only when repeating cannot double an effect. */
type RetryKind = 'never' | 'safe' | 'unsafe';

/** One failed attempt, classified; becomes an UpgradeError when no retry is left. */
class Failure extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly reason: string,
    readonly retry: RetryKind,
    override readonly cause?: unknown,
  ) {
    super(reason);
  }
}

function finalError(
  endpoint: Endpoint,
  failure: Failure,
  attempts: number,
  retryAllowed: boolean,
): UpgradeError {
  let message = `vendor ${endpoint}: ${failure.reason}`;
  if (attempts > 1) message += ` (${attempts} attempts)`;
  else if (failure.retry === 'unsafe' && !retryAllowed)
    message += '; not retried, the vendor may have started the upgrade: check its console before repeating';
  if (failure.code === 'UNAVAILABLE') message += '; the vendor cloud is overloaded or down, try again later';
  return new UpgradeError(failure.code, message, {
    cause: failure.cause,
    details: { endpoint, attempts },
    // A 4xx or contract violation stays wrong when repeated; transient codes keep their default.
    ...(failure.retry === 'never' ? { retryable: false } : {}),
  });
}

function clientErrorFailure(status: number, text: string): Failure {
  const vendorMessage = trimMessage(envelopeMessage(text));
  const said = vendorMessage === null ? '' : `: ${vendorMessage}`;
  if (status === 401 || status === 403)
    return new Failure(
      'UNAUTHORIZED',
      `rejected the credentials (HTTP ${status})${said}; check the vendor user name and password`,
      'never',
    );
  const hint = status === 404 ? '; check the vendor base URL' : '';
  return new Failure('VALIDATION_FAILED', `refused the request (HTTP ${status})${said}${hint}`, 'never');
}

function refusal(endpoint: Endpoint, message: string | null): UpgradeError {
  return new UpgradeError(
    'VALIDATION_FAILED',
    `vendor ${endpoint} refused: ${trimMessage(message) ?? '(no message)'}`,
    { retryable: false, details: { endpoint } },
  );
}

/** Classifies what undici or the socket threw; the codes are undici's and Node's. */
function networkFailure(error: unknown, connectTimeoutMs: number, responseTimeoutMs: number): Failure {
  const code = networkErrorCode(error);
  const text = error instanceof Error ? error.message : String(error);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new Failure('UNREACHABLE', `could not connect within ${connectTimeoutMs} ms`, 'safe', error);
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
      // Nothing was sent: safe to repeat even for Upgrade_V2.
      return new Failure('UNREACHABLE', `could not connect (${code})`, 'safe', error);
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new Failure('TIMEOUT', `no answer within ${responseTimeoutMs} ms`, 'unsafe', error);
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return new Failure('VENDOR_CONTRACT_VIOLATION', 'answer exceeds the size limit', 'never', error);
    default:
      break;
  }
  if (code !== undefined && /^(ERR_TLS|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_SSL)/.test(code))
    return new Failure('UNREACHABLE', `TLS failed (${code}: ${text})`, 'never', error);
  if (code !== undefined && code.startsWith('HPE_'))
    return new Failure('VENDOR_CONTRACT_VIOLATION', `answer is not valid HTTP (${code})`, 'never', error);
  // Reset, socket closed mid-answer, anything else: the request may have been processed.
  return new Failure('UNREACHABLE', `connection failed (${code ?? text})`, 'unsafe', error);
}

/**
 * One signal that aborts with whichever source aborts first; `unlink` drops the listeners. Hand-
 * rolled because AbortSignal.any leaks when one source is long-lived (nodejs/node#55351), as the
 * client's own signal is, and a poll loop makes thousands of calls.
 */
function linkSignals(...sources: (AbortSignal | undefined)[]): { signal: AbortSignal; unlink: () => void } {
  const present = sources.filter((s): s is AbortSignal => s !== undefined);
  const linked = new AbortController();
  const listeners = present.map((source) => {
    const forward = (): void => linked.abort(source.reason);
    if (source.aborted && !linked.signal.aborted) forward();
    source.addEventListener('abort', forward, { once: true });
    return { source, forward };
  });
  return {
    signal: linked.signal,
    unlink: () => listeners.forEach(({ source, forward }) => source.removeEventListener('abort', forward)),
  };
}

/** The `Message` of a failure envelope, when the text is one; 4xx bodies are not always JSON. */
function envelopeMessage(text: string): string | null {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null && 'Message' in parsed) {
      return typeof parsed.Message === 'string' ? parsed.Message : null;
    }
  } catch {
    // Not JSON: the status alone has to do.
  }
  return null;
}

/** The vendor's message on one line and short enough for a log column; empty becomes null. */
function trimMessage(message: string | null | undefined): string | null {
  if (message == null) return null;
  const oneLine = message.replace(/\s+/g, ' ').trim();
  if (oneLine === '') return null;
  return oneLine.length > MESSAGE_LIMIT ? `${oneLine.slice(0, MESSAGE_LIMIT - 1)}…` : oneLine;
}

function blankToNull(value: string | null | undefined): string | null {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? null : trimmed;
}

function checkBaseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UpgradeError('CONFIG_INVALID', `vendor base URL ${JSON.stringify(raw)} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new UpgradeError('CONFIG_INVALID', `vendor base URL must be http(s), is ${url.protocol}`);
  // A trailing slash makes `new URL('Upgrade_V2', base)` append to the path instead of replacing its last segment.
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new UpgradeError('CONFIG_INVALID', `vendor API ${name} must be a positive number, is ${value}`);
  return value;
}

function nonNegativeInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0)
    throw new UpgradeError('CONFIG_INVALID', `vendor API ${name} must be a whole number >= 0, is ${value}`);
  return value;
}
