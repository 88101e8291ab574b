import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceApp } from './types.js';

/** Options of `registerStaticAssets`. */
export interface StaticAssetsOptions {
  /** Folder the package's build wrote the page into: `index.html` plus its assets. */
  root: string;
  /** URL path of the page; its files are served under `<path>` too. Default `/`. */
  path?: string;
  /** What to tell a visitor when the folder is missing (e.g. the build to run). */
  missingHint?: string;
}

/** One file held in memory with the headers it is served with. */
interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  cacheControl: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** `app-3f9c2a1b.js`: a name with a content hash never changes content, so browsers keep it. */
const HASHED_NAME = /-[0-9a-zA-Z_-]{8,}\.[a-z0-9]+$/;
const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

/**
 * The page's security headers: only its own scripts, styles and connections; never framed. Data
 * URLs for images are allowed for inline icons and canvas exports.
 */
const PAGE_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * Serves a page the package built (an operator console): every file of `root` read once at start,
 * with an ETag; hashed names cached for a year, everything else (index.html) revalidated each time,
 * so a new release shows at the next load. Routes are left out of the OpenAPI document. A missing
 * folder is not fatal: the page answers 503 with `missingHint` and the API keeps working.
 */
export async function registerStaticAssets(app: ServiceApp, options: StaticAssetsOptions): Promise<void> {
  const base = normalizeBase(options.path ?? '/');
  const assets = await loadAssets(options.root);
  const send = (request: FastifyRequest, reply: FastifyReply, asset: Asset): FastifyReply => {
    reply.header('etag', asset.etag).header('cache-control', asset.cacheControl);
    if (asset.type.startsWith('text/html')) reply.headers(PAGE_HEADERS);
    else reply.header('x-content-type-options', 'nosniff');
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    return reply.type(asset.type).send(asset.body);
  };
  const notBuilt = (reply: FastifyReply): FastifyReply =>
    reply
      .code(503)
      .type('text/plain; charset=utf-8')
      .send(`The console is not built here. ${options.missingHint ?? 'Run the package build.'}\n`);

  app.get(base, { schema: { hide: true } }, async (request, reply) => {
    const index = assets?.get('index.html');
    return index ? send(request, reply, index) : notBuilt(reply);
  });
  app.get(`${base}assets/*`, { schema: { hide: true } }, async (request, reply) => {
    const name = `assets/${(request.params as { '*': string })['*']}`;
    const asset = assets?.get(name);
    if (!asset) return reply.code(404).type('text/plain; charset=utf-8').send('Not found\n');
    return send(request, reply, asset);
  });
}

async function loadAssets(root: string): Promise<Map<string, Asset> | undefined> {
  let files: string[];
  try {
    files = await listFiles(root);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const assets = new Map<string, Asset>();
  for (const file of files) {
    const name = relative(root, file).split(sep).join('/');
    const body = await readFile(file);
    assets.set(name, {
      body,
      type: TYPES[extname(name)] ?? 'application/octet-stream',
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      cacheControl: HASHED_NAME.test(name) ? IMMUTABLE : REVALIDATE,
    });
  }
  return assets;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map(async (entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return listFiles(path);
      return entry.isFile() ? [path] : [];
    }),
  );
  return nested.flat();
}

function normalizeBase(path: string): string {
  const withLead = path.startsWith('/') ? path : `/${path}`;
  return withLead.endsWith('/') ? withLead : `${withLead}/`;
}
