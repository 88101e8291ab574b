// Tokens are random bytes shown to their holder once; only their SHA-256 is stored, so a leaked
// table grants nothing. SHA-256 (not a slow hash) suffices because the input has 256 random bits.
import { createHash, randomBytes } from 'node:crypto';

/** Random bytes per token: 256 bits, beyond guessing. */
const TOKEN_BYTES = 32;

/** A fresh token: `raw` for its holder (base64url), `hash` for the store. */
export function newToken(): { raw: string; hash: string } {
  const raw = randomBytes(TOKEN_BYTES).toString('base64url');
  return { raw, hash: hashToken(raw) };
}

/** The lowercase SHA-256 hex digest stored as `token_hash`. */
export function hashToken(raw: string): string {
  return createHash('sha256').update(raw, 'utf8').digest('hex');
}
