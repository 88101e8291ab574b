import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import {
  createService,
  errorResponses,
  formatOpenApi,
  generateOpenApi,
  Type,
  writeOpenApi,
  type ServiceApp,
} from '../src/index.js';
import { listenLocal } from './helpers.js';

const Device = Type.Object({ id: Type.String({ format: 'uuid' }), serial: Type.String() }, { $id: 'Device' });

function addDeviceRoutes(app: ServiceApp): void {
  app.addSchema(Device);
  app.get(
    '/devices/:id',
    {
      schema: {
        tags: ['devices'],
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 200: Type.Ref('Device'), ...errorResponses(404) },
      },
    },
    (request) => ({ id: request.params.id, serial: 'SN-1' }),
  );
}

function addUploadRoute(app: ServiceApp): void {
  app.post(
    '/api/v1.0/download',
    {
      schema: {
        body: Type.Object({
          version: Type.String(),
          package_url: Type.String({ format: 'uri' }),
          package_size: Type.Integer({ minimum: 1 }),
        }),
        response: { 202: Type.Object({ code: Type.Integer() }), ...errorResponses(409, 400) },
      },
    },
    async (_request, reply) => reply.code(202).send({ code: 0 }),
  );
}

async function build(order: 'devices-first' | 'upload-first'): Promise<ServiceApp> {
  const app = await createService({
    name: 'ota-updater',
    version: '1.4.0',
    logger: false,
    metrics: { defaultMetrics: false },
    openapi: { description: 'OTA updater API', servers: [{ url: 'http://127.0.0.1:12315' }] },
  });
  if (order === 'devices-first') {
    addDeviceRoutes(app);
    addUploadRoute(app);
  } else {
    addUploadRoute(app);
    addDeviceRoutes(app);
  }
  return app;
}

describe('OpenAPI', () => {
  it('is an OpenAPI 3.1.0 document holding the route schemas and the shared error envelope', async () => {
    const app = await build('devices-first');
    const doc = await generateOpenApi(app);
    expect(Object.keys(doc).slice(0, 5)).toEqual(['openapi', 'info', 'servers', 'paths', 'components']);
    expect(doc).toMatchObject({
      openapi: '3.1.0',
      info: { title: 'ota-updater', version: '1.4.0', description: 'OTA updater API' },
      servers: [{ url: 'http://127.0.0.1:12315' }],
    });
    const upload = (doc.paths as Record<string, Record<string, Record<string, unknown>>>)[
      '/api/v1.0/download'
    ];
    expect(upload?.post).toMatchObject({
      requestBody: {
        content: {
          'application/json': {
            schema: {
              required: ['version', 'package_url', 'package_size'],
              properties: { package_size: { type: 'integer', minimum: 1 } },
            },
          },
        },
      },
      responses: {
        '400': {
          content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorResponse' } } },
        },
      },
    });
    expect(Object.keys(upload?.post?.responses as object)).toEqual(['202', '400', '409']);
    expect(doc.components).toMatchObject({
      schemas: { Device: { required: ['id', 'serial'] }, ErrorResponse: {}, HealthReport: {} },
    });
    expect(Object.keys(doc.paths as object)).toEqual(['/api/v1.0/download', '/devices/{id}', '/healthz']);
    await app.close();
  });

  it('comes out byte-identical whatever the route registration order', async () => {
    const a = await build('devices-first');
    const b = await build('upload-first');
    const text = formatOpenApi(await generateOpenApi(a));
    expect(formatOpenApi(await generateOpenApi(b))).toBe(text);
    expect(formatOpenApi(await generateOpenApi(a))).toBe(text);

    const file = join(mkdtempSync(join(tmpdir(), 'openapi-')), 'openapi.json');
    await writeOpenApi(a, file);
    expect(readFileSync(file, 'utf8')).toBe(text);
    await Promise.all([a.close(), b.close()]);
  });

  it('serves Swagger UI at /docs', async () => {
    const app = await build('devices-first');
    const base = await listenLocal(app);
    // fetch follows the UI's redirect to its index page, as a browser would.
    const page = await fetch(`${base}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toContain('swagger-ui');
    const json = await request(`${base}/docs/json`);
    expect(await json.body.json()).toMatchObject({ openapi: '3.1.0' });
    await app.close();
  });
});
