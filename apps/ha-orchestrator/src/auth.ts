// Who may call the API: the client address must be in the allow-list (API_ALLOWED_IPS, CIDR) and
// the request must carry one of the configured bearer tokens (API_TOKENS). `GET /health` is open to
// everyone (load balancers, keepalived check scripts); the Swagger UI under /docs and the console
// page (`/`, `/assets/*`) need an allowed address only, since a browser cannot send the bearer token
// for them (the console sends it with each API call it makes).
import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { UpgradeError } from '@upgrade/core';
import type { ServiceApp } from '@upgrade/service';

/** A configured token: `name` is what the audit trail records as the caller, never the secret. */
export interface ApiToken {
  name: string;
  token: string;
}

export interface AuthOptions {
  tokens: readonly ApiToken[];
  /** CIDR blocks (`10.0.0.0/8`, `::1/128`) or single addresses; empty allows every address. */
  allowedIps: readonly string[];
}

/** Paths that need neither token nor allowed address. */
const OPEN_PATHS = new Set(['/health', '/healthz']);
/** Paths that need an allowed address but no token. */
const DOCS_PREFIX = '/docs';
/** The console page and its files: a browser loads them before the token is entered; they hold no data. */
const isConsolePage = (path: string): boolean => path === '/' || path.startsWith('/assets/');

const CALLER = Symbol('ha-orchestrator.caller');

interface WithCaller {
  [CALLER]?: string;
}

/**
 * Parses `name:token` pairs (or bare tokens, named `token-1`, `token-2`, ...) from API_TOKENS.
 *
 * @example parseApiTokens('ops:3f9a...,ci:77c1...')
 */
export function parseApiTokens(value: string): ApiToken[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part, i) => {
      const colon = part.indexOf(':');
      return colon > 0
        ? { name: part.slice(0, colon), token: part.slice(colon + 1) }
        : { name: `token-${i + 1}`, token: part };
    });
}

/** Builds the allow-list; throws VALIDATION_FAILED naming the first entry that is not an address or CIDR. */
export function parseAllowList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const raw of entries) {
    const entry = raw.trim();
    const [address = '', bits] = entry.split('/');
    const family = isIP(address);
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32))
      throw new UpgradeError(
        'VALIDATION_FAILED',
        `"${entry}" is not an IP address or CIDR block (e.g. 10.0.0.0/8, 192.168.1.7, ::1/128)`,
      );
    list.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

/** Whether `ip` (as fastify reports it, IPv4-mapped IPv6 included) is in the list. */
export function isAllowed(list: BlockList, ip: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1] !== undefined) return list.check(mapped[1], 'ipv4') || list.check(ip, 'ipv6');
  const family = isIP(ip);
  if (family === 0) return false;
  return list.check(ip, family === 6 ? 'ipv6' : 'ipv4');
}

/**
 * Compares the presented token with every configured one in constant time (hashes of equal length,
 * no early exit), so neither a token's content nor its length leaks through response times.
 */
export function matchToken(tokens: readonly ApiToken[], presented: string): ApiToken | null {
  const digest = sha256(presented);
  let found: ApiToken | null = null;
  for (const candidate of tokens) {
    if (timingSafeEqual(digest, sha256(candidate.token)) && found === null) found = candidate;
  }
  return found;
}

/** The name of the token the request was accepted with, or null. */
export function callerOf(request: object): string | null {
  return (request as WithCaller)[CALLER] ?? null;
}

/** Adds the allow-list and token checks as the first onRequest hook of the app. */
export function registerAuth(app: ServiceApp, options: AuthOptions): void {
  const list = options.allowedIps.length === 0 ? null : parseAllowList(options.allowedIps);
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?', 1)[0] ?? '';
    if (OPEN_PATHS.has(path)) return;
    if (list !== null && !isAllowed(list, request.ip))
      throw new UpgradeError('FORBIDDEN', `address ${request.ip} is not in the API allow-list`);
    if (path === DOCS_PREFIX || path.startsWith(`${DOCS_PREFIX}/`) || isConsolePage(path)) return;
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match?.[1] === undefined) {
      reply.header('www-authenticate', 'Bearer');
      throw new UpgradeError('UNAUTHORIZED', 'send the API token as "Authorization: Bearer <token>"');
    }
    const token = matchToken(options.tokens, match[1]);
    if (token === null) {
      reply.header('www-authenticate', 'Bearer error="invalid_token"');
      throw new UpgradeError('UNAUTHORIZED', 'the API token is not valid');
    }
    (request as WithCaller)[CALLER] = token.name;
  });
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
