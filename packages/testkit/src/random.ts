import { randomBytes } from 'node:crypto';

/** Lowercase hex, safe inside SQL identifiers, Redis glob patterns and URLs without escaping. */
export function randomSuffix(bytes = 5): string {
  return randomBytes(bytes).toString('hex');
}
