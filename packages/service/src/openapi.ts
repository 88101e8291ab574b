import { writeFile } from 'node:fs/promises';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

/** What the OpenAPI document says about the service, and where Swagger UI lives. */
export interface OpenApiOptions {
  /** Default: the service name. */
  title?: string;
  description?: string;
  servers?: { url: string; description?: string }[];
  /** Where Swagger UI is served; `false` serves none (the document is still generated). Default `/docs`. */
  docsPath?: string | false;
}

/** An OpenAPI 3.1 document as plain JSON. */
export type OpenApiDocument = Record<string, unknown>;

const METHOD_ORDER = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const TOP_LEVEL_ORDER = ['openapi', 'info', 'servers', 'tags', 'paths', 'components'];

/**
 * Collects route schemas into an OpenAPI 3.1 document and serves Swagger UI. Shared schemas added
 * with `app.addSchema({ $id })` become `#/components/schemas/<$id>`, so `Type.Ref('ErrorResponse')`
 * reads as a named component instead of `def-0`.
 */
export async function registerOpenApi(
  app: FastifyInstance,
  info: { title: string; version: string },
  options: OpenApiOptions = {},
): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: options.title ?? info.title,
        version: info.version,
        ...(options.description === undefined ? {} : { description: options.description }),
      },
      ...(options.servers === undefined ? {} : { servers: options.servers }),
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
  });
  const docsPath = options.docsPath ?? '/docs';
  if (docsPath !== false) await app.register(fastifySwaggerUi, { routePrefix: docsPath });
}

/**
 * The app's OpenAPI document with a stable order (paths, methods, statuses, components sorted), so
 * the checked-in `openapi.json` only changes when the API does.
 */
export async function generateOpenApi(app: FastifyInstance): Promise<OpenApiDocument> {
  await app.ready();
  const doc = JSON.parse(JSON.stringify(app.swagger())) as OpenApiDocument;
  return normalizeOpenApi(doc);
}

/** The document as written to disk: two-space JSON with a final newline. */
export function formatOpenApi(doc: OpenApiDocument): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Writes the app's OpenAPI document to `file` (the checked-in `openapi.json`). */
export async function writeOpenApi(app: FastifyInstance, file: string): Promise<void> {
  await writeFile(file, formatOpenApi(await generateOpenApi(app)));
}

function normalizeOpenApi(doc: OpenApiDocument): OpenApiDocument {
  const out = sortKeys(doc, (v) => v, topLevelRank);
  if (isRecord(doc.paths)) {
    out.paths = sortKeys(doc.paths, (path) =>
      isRecord(path) ? sortKeys(path, sortOperation, methodRank) : path,
    );
  }
  if (isRecord(doc.components)) {
    out.components = sortKeys(doc.components, (section) => (isRecord(section) ? sortKeys(section) : section));
  }
  return out;
}

function sortOperation(operation: unknown): unknown {
  if (!isRecord(operation) || !isRecord(operation.responses)) return operation;
  return { ...operation, responses: sortKeys(operation.responses) };
}

function sortKeys(
  record: Record<string, unknown>,
  map: (value: unknown) => unknown = (v) => v,
  rank: (key: string) => string = (k) => k,
): Record<string, unknown> {
  const keys = Object.keys(record).sort((a, b) => compare(rank(a), rank(b)));
  return Object.fromEntries(keys.map((k) => [k, map(record[k])]));
}

/** The order a reader scans the document in: what it is, then the API, then the shared schemas. */
function topLevelRank(key: string): string {
  const i = TOP_LEVEL_ORDER.indexOf(key);
  return i === -1 ? `1${key}` : `0${i}`;
}

/** HTTP methods in their usual reading order; other keys (`parameters`, `summary`) first. */
function methodRank(key: string): string {
  const i = METHOD_ORDER.indexOf(key);
  return i === -1 ? `0${key}` : `1${i}`;
}

/** Code-point order, independent of the machine's locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
