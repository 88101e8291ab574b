// Progress reports to the printer's device API (port 9080), the sink behind core's progress
// reporter. Every post has a hard deadline and a failure is thrown for the reporter to count: the
// update never waits on, or fails because of, the device API.
//
// Wire format: `POST <url>`, `content-type: application/json`, body the same `data` GET
// /api/v1.0/progress answers (seed 004):
//   { "stage": "downloading", "progress": 42, "message": "downloading 1.2.0", "error": null, "error_code": null }
// `stage` is one of OTA_STAGES, `progress` an integer 0-100, `error` null or the message for
// people, `error_code` null or its stable name (MD5_MISMATCH...). Any 2xx is an acknowledgement;
// the answer's body is ignored.
import { UpgradeError, isUpgradeError, type ProgressSink, type ProgressUpdate } from '@upgrade/core';
import { discardBody, sendRequest } from '../http-client.js';
import type { OtaStage } from '../ports.js';
import { errorLogFields } from '../log-fields.js';
import { toWireProgress } from '../progress-wire.js';

/** Where the device API takes progress reports unless configured otherwise. */
export const DEFAULT_DEVICE_API_PROGRESS_URL = 'http://127.0.0.1:9080/api/v1.0/ota/progress';

/** The part of a pino-like logger the reporter writes to. */
export interface DeviceApiLogger {
  warn(details: Record<string, unknown>, message: string): void;
  info(details: Record<string, unknown>, message: string): void;
}

/** Options of {@link createDeviceApiReporter}. */
export interface DeviceApiReporterOptions {
  /** Default {@link DEFAULT_DEVICE_API_PROGRESS_URL}. */
  url?: string;
  /** Limit of one post, connect to last byte of the answer. Default 2 000 ms. */
  timeoutMs?: number;
  /** Told when reports start failing and when they work again, not about every failure. */
  logger?: DeviceApiLogger;
}

/** A progress sink (pass it to `createProgressReporter`) that can be closed at shutdown. */
export interface DeviceApiReporter extends ProgressSink<OtaStage> {
  (update: ProgressUpdate<OtaStage>): Promise<void>;
  close(): Promise<void>;
}

/**
 * Posts each update to the device API. Rejects (UpgradeError) on a non-2xx answer (UNAVAILABLE),
 * no answer within `timeoutMs` (TIMEOUT) or no connection (UNREACHABLE).
 *
 * @example const reporter = createProgressReporter(createDeviceApiReporter({ logger }), { onError })
 */
export function createDeviceApiReporter(options: DeviceApiReporterOptions = {}): DeviceApiReporter {
  const url = checkUrl(options.url ?? DEFAULT_DEVICE_API_PROGRESS_URL);
  const timeoutMs = options.timeoutMs ?? 2_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new UpgradeError(
      'CONFIG_INVALID',
      `device API timeout must be a positive number of ms, is ${timeoutMs}`,
    );
  let failing = false;
  // Posts still running, aborted by close() so a shutdown never waits on the device API.
  const inFlight = new Set<AbortController>();

  const post = async (update: ProgressUpdate<OtaStage>): Promise<void> => {
    const body = toWireProgress({
      stage: update.stage,
      progress: update.progress,
      message: update.message,
      error: update.error ?? null,
    });
    // One deadline for the whole post, connect to the answer's last byte.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    timer.unref();
    inFlight.add(deadline);
    try {
      const answer = await sendRequest(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'ota-updater' },
        body: JSON.stringify(body),
        signal: deadline.signal,
        connectTimeoutMs: timeoutMs,
        headersTimeoutMs: timeoutMs,
      });
      await discardBody(answer, 16 * 1024);
      if (answer.status < 200 || answer.status >= 300)
        throw new UpgradeError(
          'UNAVAILABLE',
          `device API answered HTTP ${answer.status} to a progress report`,
          {
            details: { status: answer.status },
          },
        );
    } catch (error) {
      throw failure(error, deadline.signal.aborted, url, timeoutMs);
    } finally {
      clearTimeout(timer);
      inFlight.delete(deadline);
    }
  };

  const sink = async (update: ProgressUpdate<OtaStage>): Promise<void> => {
    try {
      await post(update);
    } catch (error) {
      if (!failing)
        options.logger?.warn(
          { url: url.href, ...errorLogFields(error) },
          'device API progress report failed; further failures are counted, not logged',
        );
      failing = true;
      throw error;
    }
    if (failing) options.logger?.info({ url: url.href }, 'device API accepts progress reports again');
    failing = false;
  };

  return Object.assign(sink, {
    close: async () => {
      for (const post of inFlight) post.abort();
    },
  });
}

function failure(error: unknown, timedOut: boolean, url: URL, timeoutMs: number): UpgradeError {
  if (timedOut)
    return new UpgradeError('TIMEOUT', `device API at ${url.host} did not answer within ${timeoutMs} ms`, {
      cause: error,
      details: { timeoutMs },
    });
  if (isUpgradeError(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const reason = typeof code === 'string' ? code : error instanceof Error ? error.message : String(error);
  return new UpgradeError('UNREACHABLE', `device API at ${url.host} is unreachable (${reason})`, {
    cause: error,
  });
}

function checkUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UpgradeError('CONFIG_INVALID', `device API URL ${JSON.stringify(raw)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UpgradeError('CONFIG_INVALID', `device API URL must be http(s), is ${url.protocol}`);
  return url;
}
