// OpenSSH known_hosts, enough to pin node host keys: plain and hashed (`|1|salt|hash`) host
// fields, `[host]:port` for non-22 ports, `*`/`?` wildcards, `!` negation and `@revoked` lines.
// `@cert-authority` lines are skipped: nodes are pinned by their own keys, not by a CA.
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface KnownHostEntry {
  marker: 'revoked' | null;
  /** Host patterns as written (comma-separated in the file), or one hashed pattern. */
  patterns: string[];
  keyType: string;
  /** The public key blob (base64-decoded), compared byte for byte with the server's. */
  key: Buffer;
}

/** Parses known_hosts text; malformed lines are skipped, as ssh does. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'] = null;
    if (fields[0]?.startsWith('@')) {
      const name = fields.shift();
      if (name === '@revoked') marker = 'revoked';
      else continue;
    }
    const [hosts, keyType, keyText] = fields;
    if (hosts === undefined || keyType === undefined || keyText === undefined) continue;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(keyText)) continue;
    entries.push({ marker, patterns: hosts.split(','), keyType, key: Buffer.from(keyText, 'base64') });
  }
  return entries;
}

/** The name ssh looks up: `host` on port 22, else `[host]:port`. */
export function hostLookupName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Keys pinned for host:port, and keys revoked for it (or revoked everywhere). */
export function keysForHost(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
): { pinned: Buffer[]; revoked: Buffer[] } {
  const name = hostLookupName(host, port);
  const pinned: Buffer[] = [];
  const revoked: Buffer[] = [];
  for (const entry of entries) {
    if (!matchesHost(entry.patterns, name)) continue;
    (entry.marker === 'revoked' ? revoked : pinned).push(entry.key);
  }
  return { pinned, revoked };
}

/** Whether the server's key blob is pinned for host:port and not revoked. */
export function isPinnedKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  key: Buffer,
): boolean {
  const { pinned, revoked } = keysForHost(entries, host, port);
  if (revoked.some((k) => k.equals(key))) return false;
  return pinned.some((k) => k.equals(key));
}

function matchesHost(patterns: readonly string[], name: string): boolean {
  let matched = false;
  for (const pattern of patterns) {
    if (pattern.startsWith('|1|')) {
      if (matchesHashed(pattern, name)) matched = true;
      continue;
    }
    const negated = pattern.startsWith('!');
    const body = negated ? pattern.slice(1) : pattern;
    if (globMatch(body.toLowerCase(), name.toLowerCase())) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`. */
function matchesHashed(pattern: string, name: string): boolean {
  const [, , saltText, hashText] = pattern.split('|');
  if (saltText === undefined || hashText === undefined) return false;
  const expected = Buffer.from(hashText, 'base64');
  const actual = createHmac('sha1', Buffer.from(saltText, 'base64')).update(name).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function globMatch(pattern: string, text: string): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`).test(text);
}
