// Names the caller may send. Anything that ends up in a path is a plain file name: no separators,
// no leading dot or dash (hidden files, options), no `..`.
import { str } from './validate.js';

/** A plain file name: letters, digits, `._+-`, not starting with `.` or `-`, at most 128 chars. */
export const PLAIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$/;

export const plainName = str({
  pattern: PLAIN_NAME,
  max: 128,
  hint: 'must be a plain file name (letters, digits, . _ + -; no path separators, not starting with . or -)',
});

/** A hex SHA-256 digest (upper case accepted, compared in lower case). */
export const sha256Hex = str({
  pattern: /^[0-9a-fA-F]{64}$/,
  max: 64,
  hint: 'must be a hex SHA-256 (64 characters)',
});

export const version = str({
  pattern: /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/,
  max: 128,
  hint: 'must be a version (letters, digits, . _ + -)',
});

/** True when `name` is a plain file name (see PLAIN_NAME). */
export function isPlainName(name: string): boolean {
  return PLAIN_NAME.test(name);
}
