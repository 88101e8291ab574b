// The service's HTTP API on node:http: the five device routes in the `{code, msg, data}` envelope
// of seed 004, GET /healthz, GET /metrics and the OpenAPI document (/docs/json, read from
// openapi.json when asked). The kit's fastify stack (with ajv, typebox, pino, prom-client and
// Swagger UI) held ~25 MiB of the device's 50 MiB budget for these few routes; this is the same
// contract in one file: request ids (`x-request-id`, echoed), bodies read up to 1 MiB and checked
// before anything starts, one error mapping, request log lines, and a graceful close. Routes of the
// API answer errors as `{code, msg, data: null, error_code, requestId}`; the rest (unknown routes,
// /healthz, /metrics) in the kit's `{error: {code, message, requestId}}` envelope, as before.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  createServer,
  STATUS_CODES,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { UpgradeError, healthHttpStatus, isUpgradeError, runChecks, type HealthCheck } from '@upgrade/core';
import { isValidVersion } from '../manifest.js';
import { errorLogFields } from '../log-fields.js';
import type { Logger } from '../log.js';
import type { DownloadRequest } from '../ports.js';
import { toWireProgress } from '../progress-wire.js';
import type { Updater } from '../updater.js';
import { DOWNLOAD_BODY, UPDATE_BODY, checkBody, type BodyOf } from './bodies.js';
import { METRICS_CONTENT_TYPE, UNMATCHED_ROUTE, type ServiceMetrics } from './metrics.js';

/** The header a request id arrives in and is echoed back in. */
export const REQUEST_ID_HEADER = 'x-request-id';
/** Ids a proxy or caller may set: bounded, without spaces or quotes (they go into every log line). */
const ACCEPTED_ID = /^[\w.:@/+=-]{1,128}$/;
/** Largest accepted request body (fastify's default, which the API had). */
const BODY_LIMIT = 1024 * 1024;
const JSON_TYPE = 'application/json; charset=utf-8';

export interface ApiDeps {
  updater: Updater;
  log: Logger;
  metrics: ServiceMetrics;
  healthChecks: readonly HealthCheck[];
  /** The checked-in openapi.json, served at /docs/json. */
  openapiPath: string;
  /** Per health check attempt. Default 2000 ms. */
  healthTimeoutMs?: number;
}

/** A failure the HTTP layer itself detects (bad JSON, too large), with its stable code. */
class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What a route answers. */
interface Answer {
  status: number;
  /** JSON body, or the exact text with `type`. */
  body: unknown;
  type?: string;
}

interface Route {
  /** The route pattern, for metrics. */
  path: string;
  /** Errors in the API's `{code, msg, data}` envelope (else the kit's). */
  envelope: 'api' | 'kit';
  /** Probes and pollers: no request log lines (errors still log). */
  quiet: boolean;
  /** Reads a JSON body first. */
  body: boolean;
  run(request: { body: unknown; log: Logger }): Promise<Answer>;
}

export interface ApiServer {
  readonly server: Server;
  /** Listens; resolves with `http://host:port`. */
  listen(port: number, host: string): Promise<string>;
  /**
   * Stops accepting, answers requests still arriving on open connections with 503 + `Connection:
   * close`, waits for those in flight up to `timeoutMs`, then cuts what is left.
   */
  close(timeoutMs: number): Promise<'closed' | 'timeout'>;
}

/** The API on a node:http server that does not listen yet. */
export function createApiServer(deps: ApiDeps): ApiServer {
  const routes = apiRoutes(deps);
  let draining = false;
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // Only a failure to write the answer gets here; the socket is the one thing left to end.
      deps.log.error(errorLogFields(error), 'could not answer a request');
      res.destroy();
    });
  });
  // Node's defaults, spelled out: a slow client cannot hold a request open for ever.
  server.requestTimeout = 300_000;
  server.headersTimeout = 60_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const header = req.headers[REQUEST_ID_HEADER];
    const id = typeof header === 'string' && ACCEPTED_ID.test(header) ? header : randomUUID();
    res.setHeader(REQUEST_ID_HEADER, id);
    const method = req.method ?? 'GET';
    // The query string is left out of routing and messages: it can carry tokens.
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const route = routes.get(`${method === 'HEAD' ? 'GET' : method} ${path}`);
    const log = deps.log.child({ reqId: id });
    const quiet = route?.quiet === true;
    if (!quiet) {
      const { remoteAddress, remotePort } = req.socket;
      log.info(
        { req: { method, url: req.url, host: req.headers.host, remoteAddress, remotePort } },
        'incoming request',
      );
    }
    res.once('finish', () => {
      const ms = performance.now() - started;
      deps.metrics.observe(method, route?.path ?? UNMATCHED_ROUTE, res.statusCode, ms / 1000);
      if (!quiet) log.info({ res: { statusCode: res.statusCode }, responseTime: ms }, 'request completed');
    });

    let answer: Answer;
    if (draining) {
      log.info({}, 'refused: shutting down');
      answer = errorAnswer(new UpgradeError('UNAVAILABLE', 'shutting down'), id, 'kit', log);
    } else if (route === undefined) {
      const error = new UpgradeError('NOT_FOUND', `no route for ${method} ${path}`);
      answer = errorAnswer(error, id, 'kit', log);
    } else {
      try {
        const body = route.body ? await readJsonBody(req) : undefined;
        answer = await route.run({ body, log });
      } catch (error) {
        answer = errorAnswer(error, id, route.envelope, log);
        // A body left unread (too large) would be parsed as the next request.
        if (error instanceof HttpProblem) res.setHeader('connection', 'close');
      }
    }
    if (draining) res.setHeader('connection', 'close');
    const text = answer.type === undefined ? JSON.stringify(answer.body) : String(answer.body);
    res.writeHead(answer.status, {
      'content-type': answer.type ?? JSON_TYPE,
      'content-length': Buffer.byteLength(text),
    });
    res.end(method === 'HEAD' ? undefined : text);
  }

  return {
    server,
    listen: (port, host) =>
      new Promise<string>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address();
          const bound = typeof address === 'object' && address !== null ? address.port : port;
          resolve(`http://${host.includes(':') ? `[${host}]` : host}:${bound}`);
        });
      }),
    async close(timeoutMs) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // close() only ends sockets idle when it starts; one whose answer finishes during the drain
      // would otherwise hold the close until its keep-alive timeout.
      server.closeIdleConnections();
      const reaper = setInterval(() => server.closeIdleConnections(), 100);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      try {
        const outcome = await Promise.race([closed.then(() => 'closed' as const), deadline]);
        if (outcome === 'timeout') server.closeAllConnections();
        return outcome;
      } finally {
        clearInterval(reaper);
        clearTimeout(timer);
      }
    },
  };
}

function apiRoutes(deps: ApiDeps): Map<string, Route> {
  const { updater } = deps;
  const list: (Route & { method: 'GET' | 'POST' })[] = [
    {
      method: 'POST',
      path: '/api/v1.0/download',
      envelope: 'api',
      quiet: false,
      body: true,
      async run({ body }) {
        const request = checkDownloadBody(checked(DOWNLOAD_BODY, body));
        const outcome = await updater.startDownload(request);
        if (outcome === 'current')
          return {
            status: 200,
            body: {
              code: 200,
              msg: 'this release is already installed and running; nothing to do',
              data: { version: request.version, stage: 'success' },
            },
          };
        return {
          status: 202,
          body: {
            code: 202,
            msg: 'download started',
            data: { version: request.version, stage: 'downloading' },
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/api/v1.0/update',
      envelope: 'api',
      quiet: false,
      body: true,
      async run({ body }) {
        const { version } = checked(UPDATE_BODY, body);
        checkVersion(version);
        await updater.startUpdate(version);
        return {
          status: 202,
          body: { code: 202, msg: 'update started', data: { version, stage: 'deploying' } },
        };
      },
    },
    {
      method: 'POST',
      path: '/api/v1.0/cancel',
      envelope: 'api',
      quiet: false,
      body: true,
      async run() {
        await updater.cancel();
        return {
          status: 200,
          body: { code: 200, msg: 'cancelled', data: toWireProgress(updater.progress()) },
        };
      },
    },
    {
      method: 'GET',
      path: '/api/v1.0/progress',
      envelope: 'api',
      quiet: true,
      body: false,
      run: () =>
        Promise.resolve({
          status: 200,
          body: { code: 200, msg: 'success', data: toWireProgress(updater.progress()) },
        }),
    },
    {
      method: 'GET',
      path: '/api/v1.0/versions',
      envelope: 'api',
      quiet: false,
      body: false,
      async run() {
        let links;
        try {
          links = await updater.versions();
        } catch (error) {
          if (isUpgradeError(error)) throw error;
          throw new UpgradeError('INTERNAL', 'could not read the installed versions', { cause: error });
        }
        const { current, previous, factory, others } = links;
        return {
          status: 200,
          body: { code: 200, msg: 'success', data: { current, previous, factory, others } },
        };
      },
    },
    {
      method: 'GET',
      path: '/healthz',
      envelope: 'kit',
      quiet: true,
      body: false,
      async run({ log }) {
        const report = await runChecks(deps.healthChecks, {
          timeout: deps.healthTimeoutMs ?? 2000,
          retries: 0,
          onError: (name, error) =>
            log.warn({ check: name, ...errorLogFields(error) }, 'health check failed'),
        });
        return { status: healthHttpStatus(report.status), body: report };
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      envelope: 'kit',
      quiet: true,
      body: false,
      async run() {
        return { status: 200, body: await deps.metrics.render(), type: METRICS_CONTENT_TYPE };
      },
    },
    {
      method: 'GET',
      path: '/docs/json',
      envelope: 'kit',
      quiet: false,
      body: false,
      // Read when asked, not held: nobody on the printer reads it, a developer's browser might.
      async run() {
        return { status: 200, body: await readFile(deps.openapiPath, 'utf8'), type: JSON_TYPE };
      },
    },
    {
      method: 'GET',
      path: '/docs',
      envelope: 'kit',
      quiet: false,
      body: false,
      run: () => Promise.resolve({ status: 200, body: DOCS_PAGE, type: 'text/html; charset=utf-8' }),
    },
  ];
  return new Map(list.map((r) => [`${r.method} ${r.path}`, r]));
}

const DOCS_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>ota-updater API</title></head>
<body><h1>ota-updater API</h1>
<p>The OpenAPI 3.1 description of this service is at <a href="docs/json">docs/json</a>
(<code>openapi.json</code> in the app directory); open it in any OpenAPI viewer.</p>
</body></html>
`;

/** The body checked against its schema; 400 VALIDATION_FAILED naming the first bad field. */
function checked<S extends typeof DOWNLOAD_BODY | typeof UPDATE_BODY>(schema: S, body: unknown): BodyOf<S> {
  const result = checkBody(schema, body);
  if (!result.ok)
    throw new UpgradeError('VALIDATION_FAILED', result.message, { details: { field: result.field } });
  return result.value;
}

/** What the schema cannot say: a URL with a host, a version name the snapshot layout can use. */
function checkDownloadBody(body: BodyOf<typeof DOWNLOAD_BODY>): DownloadRequest {
  checkVersion(body.version);
  let url: URL | null = null;
  try {
    url = new URL(body.package_url);
  } catch {
    // reported below
  }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '')
    throw invalidField(
      'package_url',
      'must be an http or https URL with a host, e.g. https://cdn.example.com/1.2.0.zip',
    );
  return {
    version: body.version,
    packageUrl: body.package_url,
    packageName: body.package_name,
    packageSize: body.package_size,
    packageMd5: body.package_md5.toLowerCase(),
    ...(body.package_sha256 === undefined ? {} : { packageSha256: body.package_sha256.toLowerCase() }),
    ...(body.signature === undefined ? {} : { signature: body.signature }),
  };
}

function checkVersion(version: string): void {
  if (!isValidVersion(version))
    throw invalidField(
      'version',
      `"${version}" is reserved or not a version: use letters, digits, '.', '_', '+' or '-' (e.g. 1.2.3), not current, previous or factory`,
    );
}

function invalidField(field: string, why: string): UpgradeError {
  return new UpgradeError('VALIDATION_FAILED', `${field} ${why}`, { details: { field } });
}

/**
 * The request's JSON body as fastify's parser gave it to the routes: undefined without a body,
 * 415 for a body that is neither JSON nor text, 413 past 1 MiB, 400 INVALID_JSON for an empty or
 * malformed JSON body (or one with `__proto__` / `constructor.prototype` keys).
 */
async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const length = req.headers['content-length'];
  const hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase() ?? '';
  const json = type === 'application/json' || type.endsWith('+json');
  if (!hasBody) {
    if (json && length === '0')
      throw new HttpProblem(
        400,
        'INVALID_JSON',
        "Body cannot be empty when content-type is set to 'application/json'",
      );
    return undefined;
  }
  if (!json && type !== 'text/plain')
    throw new HttpProblem(415, 'UNSUPPORTED_MEDIA_TYPE', `Unsupported Media Type: ${type || 'none'}`);
  if (length !== undefined && Number(length) > BODY_LIMIT)
    throw new HttpProblem(413, 'PAYLOAD_TOO_LARGE', 'Request body is too large');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > BODY_LIMIT) throw new HttpProblem(413, 'PAYLOAD_TOO_LARGE', 'Request body is too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!json) return text;
  if (text.trim() === '')
    throw new HttpProblem(
      400,
      'INVALID_JSON',
      "Body cannot be empty when content-type is set to 'application/json'",
    );
  try {
    return JSON.parse(text, refuseProtoKeys) as unknown;
  } catch {
    throw new HttpProblem(
      400,
      'INVALID_JSON',
      "Body is not valid JSON but content-type is set to 'application/json'",
    );
  }
}

function refuseProtoKeys(key: string, value: unknown): unknown {
  if (
    key === '__proto__' ||
    (key === 'constructor' && typeof value === 'object' && value !== null && 'prototype' in value)
  )
    throw new SyntaxError('forbidden key');
  return value;
}

/**
 * One mapping of every failure: 4xx keep their message (written for the client), 5xx get the
 * status' generic text, whatever the error said (internal messages hold paths and hosts); the
 * real error goes to the log as code + reason.
 */
function errorAnswer(error: unknown, requestId: string, envelope: 'api' | 'kit', log: Logger): Answer {
  let status: number;
  let code: string;
  let message: string;
  if (error instanceof HttpProblem) {
    ({ status, code, message } = error);
  } else if (isUpgradeError(error)) {
    status = error.status >= 400 && error.status <= 599 ? error.status : 500;
    code = error.code;
    message = error.message;
  } else {
    status = 500;
    code = 'INTERNAL';
    message = '';
  }
  if (status >= 500) {
    message = STATUS_CODES[status] ?? 'Internal Server Error';
    log.error({ ...errorLogFields(error), code }, 'request failed');
  } else if (envelope === 'kit') {
    log.info({ code, reason: message }, 'request rejected');
  }
  const body =
    envelope === 'api'
      ? { code: status, msg: message, data: null, error_code: code, requestId }
      : { error: { code, message, requestId } };
  return { status, body };
}
