// The HTTP layer of the service on a real loopback port (src/http/api-server.ts on node:http): what
// a client sees for bodies that are not JSON, too large, of another type or with unknown fields,
// request ids, unknown routes, the OpenAPI document, /metrics, and requests that arrive while the
// service shuts down.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOtaConfig } from '../src/config.js';
import { DOWNLOAD_BODY, UPDATE_BODY, checkBody } from '../src/http/bodies.js';
import { startOtaUpdater, type RunningOtaUpdater } from '../src/main.js';
import { DEFAULT_UNPACK_LIMITS, unpackPackage } from '../src/unpack.js';
import { writeAppPackage } from './package-fixtures.js';

const run = promisify(execFile);
const SCRIPTS = fileURLToPath(new URL('../scripts', import.meta.url));
const OPENAPI = fileURLToPath(new URL('../openapi.json', import.meta.url));

let base: string;
let service: RunningOtaUpdater;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'ota-api-'));
  const root = join(base, 'root');
  const factory = await writeAppPackage(base, { version: '0.9.0', unit: 'ota-test-app.service', port: 1 });
  const staged = join(base, 'staging', '0.9.0');
  await unpackPackage(factory.path, staged, DEFAULT_UNPACK_LIMITS, { version: '0.9.0' });
  await run(join(SCRIPTS, 'create_factory_version.sh'), [root, staged]);
  await run(join(SCRIPTS, 'setup_symlinks.sh'), [root]);
  await mkdir(join(base, 'cwd'));
  service = await startOtaUpdater(
    loadOtaConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', OTA_ROOT: root }),
    { handleSignals: false },
  );
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await rm(base, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Record<string, unknown>;
}

/** One request with exactly these headers and body bytes (fetch would add its own content type). */
function send(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(`${service.address}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    // A server that answers before reading the whole body may reset the rest: the answer counts.
    req.on('error', reject);
    req.end(body);
  });
}

const JSON_HEADERS = { 'content-type': 'application/json' };

describe('the HTTP layer', () => {
  it('answers a body that is not JSON with 400 INVALID_JSON in the API envelope, echoing the request id', async () => {
    const reply = await send(
      'POST',
      '/api/v1.0/download',
      { ...JSON_HEADERS, 'x-request-id': 'req-42' },
      '{"version":',
    );
    expect(reply.status).toBe(400);
    expect(reply.headers['x-request-id']).toBe('req-42');
    expect(reply.json).toMatchObject({
      code: 400,
      data: null,
      error_code: 'INVALID_JSON',
      requestId: 'req-42',
    });
    expect(reply.json.msg).toMatch(/not valid JSON/);
    const empty = await send('POST', '/api/v1.0/update', { ...JSON_HEADERS, 'content-length': '0' });
    expect(empty.json).toMatchObject({ code: 400, error_code: 'INVALID_JSON' });
    const proto = await send(
      'POST',
      '/api/v1.0/update',
      JSON_HEADERS,
      '{"version":"1.0.0","__proto__":{"x":1}}',
    );
    expect(proto.json).toMatchObject({ code: 400, error_code: 'INVALID_JSON' });
  });

  it('refuses a body over 1 MiB with 413 and one of another type with 415', async () => {
    const big = JSON.stringify({ version: '1.0.0', padding: 'x'.repeat(1024 * 1024) });
    const tooLarge = await send('POST', '/api/v1.0/update', JSON_HEADERS, big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.json).toMatchObject({ code: 413, error_code: 'PAYLOAD_TOO_LARGE' });
    const xml = await send('POST', '/api/v1.0/update', { 'content-type': 'application/xml' }, '<version/>');
    expect(xml.status).toBe(415);
    expect(xml.json).toMatchObject({ code: 415, error_code: 'UNSUPPORTED_MEDIA_TYPE' });
  });

  it('names the field of a missing or mistyped value, and a missing body', async () => {
    const missing = await send('POST', '/api/v1.0/update', JSON_HEADERS, '{}');
    expect(missing.json).toMatchObject({ code: 400, error_code: 'VALIDATION_FAILED' });
    expect(missing.json.msg).toBe("body must have required property 'version'");
    const none = await send('POST', '/api/v1.0/update');
    expect(none.json).toMatchObject({
      code: 400,
      error_code: 'VALIDATION_FAILED',
      msg: 'body must be object',
    });
    const wrong = await send('POST', '/api/v1.0/update', JSON_HEADERS, '{"version":{"a":1}}');
    expect(wrong.json.msg).toBe('body/version must be string');
    // A well-formed version nothing was downloaded for: the updater's 404, after the checks.
    const unknown = await send('POST', '/api/v1.0/update', JSON_HEADERS, '{"version":"7.7.7","extra":true}');
    expect(unknown.json).toMatchObject({ code: 404, error_code: 'NOT_FOUND', data: null });
  });

  it('answers unknown routes with 404 in the shared error envelope, and a fresh request id', async () => {
    const reply = await send('GET', '/api/v1.0/nothing?token=secret');
    expect(reply.status).toBe(404);
    const id = reply.headers['x-request-id'];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(reply.json).toEqual({
      error: { code: 'NOT_FOUND', message: 'no route for GET /api/v1.0/nothing', requestId: id },
    });
    // An id with spaces or quotes is not copied into logs and headers.
    const bad = await send('GET', '/api/v1.0/progress', { 'x-request-id': 'a "quoted" id' });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('serves the checked-in OpenAPI document at /docs/json and a page pointing at it at /docs', async () => {
    const doc = await send('GET', '/docs/json');
    expect(doc.status).toBe(200);
    expect(doc.headers['content-type']).toMatch(/^application\/json/);
    expect(doc.text).toBe(readFileSync(OPENAPI, 'utf8'));
    const page = await send('GET', '/docs');
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.text).toContain('docs/json');
  });

  it('counts requests by route pattern in /metrics beside the memory and event-loop gauges', async () => {
    await send('GET', '/api/v1.0/progress');
    await send('GET', '/no/such/route');
    const reply = await send('GET', '/metrics');
    expect(reply.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const metrics = reply.text;
    expect(metrics).toMatch(
      /^http_requests_total\{method="GET",route="\/api\/v1\.0\/progress",status_code="200"\} \d+$/m,
    );
    expect(metrics).toMatch(/^http_requests_total\{method="GET",route="unmatched",status_code="404"\} \d+$/m);
    expect(metrics).toMatch(
      /^http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/api\/v1\.0\/progress",status_code="200"\} \d+$/m,
    );
    expect(metrics).toMatch(/^ota_memory_bytes\{kind="rss"\} \d+$/m);
    expect(metrics).toMatch(/^nodejs_heap_size_used_bytes \d+$/m);
    expect(metrics).toMatch(/^nodejs_eventloop_lag_p99_seconds [\d.e-]+$/m);
    expect(metrics).toMatch(/^ota_progress_reports_failed \d+$/m);
  });

  it('answers HEAD like GET without a body', async () => {
    const reply = await send('HEAD', '/api/v1.0/progress');
    expect(reply.status).toBe(200);
    expect(Number(reply.headers['content-length'])).toBeGreaterThan(0);
    expect(reply.text).toBe('');
  });
});

describe('request bodies', () => {
  it('are the bodies openapi.json documents', () => {
    const doc = JSON.parse(readFileSync(OPENAPI, 'utf8')) as {
      paths: Record<
        string,
        { post: { requestBody: { content: { 'application/json': { schema: unknown } } } } }
      >;
    };
    const schemaOf = (path: string) => doc.paths[path]?.post.requestBody.content['application/json'].schema;
    expect(schemaOf('/api/v1.0/download')).toEqual(JSON.parse(JSON.stringify(DOWNLOAD_BODY)));
    expect(schemaOf('/api/v1.0/update')).toEqual(JSON.parse(JSON.stringify(UPDATE_BODY)));
  });

  it('coerce scalars and drop unknown fields, as the API always did', () => {
    const body = {
      version: 2,
      package_url: 'http://h/p.zip',
      package_name: 'p.zip',
      package_size: '123',
      package_md5: 'a'.repeat(32),
      unknown: 1,
    };
    expect(checkBody(DOWNLOAD_BODY, body)).toEqual({
      ok: true,
      value: {
        version: '2',
        package_url: 'http://h/p.zip',
        package_name: 'p.zip',
        package_size: 123,
        package_md5: 'a'.repeat(32),
      },
    });
    const checks: [Record<string, unknown>, string][] = [
      [{ package_size: 1.5 }, 'body/package_size must be integer'],
      [{ package_size: 'big' }, 'body/package_size must be integer'],
      [{ package_size: 2 ** 53 }, 'body/package_size must be <= 9007199254740991'],
      [{ package_size: 0 }, 'body/package_size must be >= 1'],
      [{ package_name: '' }, 'body/package_name must NOT have fewer than 1 characters'],
      [
        { package_url: `http://h/${'x'.repeat(2048)}` },
        'body/package_url must NOT have more than 2048 characters',
      ],
      [{ package_md5: 'xyz' }, 'body/package_md5 must match pattern "^[0-9a-fA-F]{32}$"'],
      [{ package_md5: undefined }, "body must have required property 'package_md5'"],
    ];
    for (const [change, message] of checks) {
      const result = checkBody(DOWNLOAD_BODY, { ...body, ...change });
      expect({ change, result }).toMatchObject({ change, result: { ok: false, message } });
    }
  });
});

describe('configuration', () => {
  it('names every bad variable at once, hiding values of secret-like names', () => {
    let message = '';
    try {
      loadOtaConfig({
        PORT: 'abc',
        LOG_LEVEL: 'loud',
        DEVICE_API_URL: 'ftp://x',
        KEEP_LAST_PACKAGE: 'maybe',
        DOWNLOAD_RETRIES: '3.5',
        HEALTH_CONSECUTIVE_OK: '0',
      });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe(
      [
        'Invalid configuration:',
        '  PORT: must be an integer between 0 and 65535 (got "abc")',
        '  LOG_LEVEL: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent" (got "loud")',
        '  DEVICE_API_URL: must be a string matching /^https?:/// (got "ftp://x")',
        '  DOWNLOAD_RETRIES: must be an integer between 0 and 20 (got "3.5")',
        '  KEEP_LAST_PACKAGE: must be a boolean (true or false) (got "maybe")',
        '  HEALTH_CONSECUTIVE_OK: must be an integer at least 1 (got "0")',
      ].join('\n'),
    );
  });

  it('reads defaults for unset and empty variables, numbers and booleans from their text', () => {
    const config = loadOtaConfig({
      PORT: ' 8080 ',
      KEEP_LAST_PACKAGE: 'YES',
      LOG_FILE: '',
      DOWNLOAD_RETRIES: '1e1',
    });
    expect(config).toMatchObject({
      PORT: 8080,
      KEEP_LAST_PACKAGE: true,
      DOWNLOAD_RETRIES: 10,
      OTA_ROOT: '/opt/tope',
    });
    expect(config).not.toHaveProperty('LOG_FILE');
  });

  it('stops the built service with exit code 2 and the message, nothing else', async () => {
    const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
    const failure = await run(process.execPath, [cli, 'serve'], {
      cwd: join(base, 'cwd'),
      env: { PATH: process.env.PATH, PORT: '70000', OTA_PUBLIC_KEY_FILE: '' },
    }).then(
      () => null,
      (error: unknown) => error as { code: number; stderr: string; stdout: string },
    );
    expect(failure?.code).toBe(2);
    expect(failure?.stderr).toBe(
      'Invalid configuration:\n  PORT: must be an integer between 0 and 65535 (got "70000")\n',
    );
    expect(failure?.stdout).toBe('');
  });
});
