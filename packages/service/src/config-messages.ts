import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { acceptedTypes, allowedValues, asJsonSchema, type JsonSchema } from './json-schema.js';

const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|KEY|CREDENTIAL|PRIVATE/i;
const MAX_SHOWN = 60;
const MAX_NESTED_ERRORS = 3;

/** Values of these variables never appear in messages or logs, even when they are wrong. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/**
 * Why a value does not fit its schema, in the words an operator reading a crash log needs:
 * `must be an integer between 1 and 65535 (got "abc")` for scalars, the first nested errors with
 * their paths for JSON values (`[0].hosts must be array`).
 */
export function describeMismatch(schema: TSchema, value: unknown, raw: string, secret: boolean): string {
  const json = asJsonSchema(schema);
  const expected = isScalar(value) ? expectation(json) : undefined;
  if (expected !== undefined) return `must be ${expected}${shown(raw, secret)}`;
  const errors = relevantErrors(schema, value);
  const listed = errors.slice(0, MAX_NESTED_ERRORS).map((e) => `${pathText(e.instancePath)}${e.message}`);
  const more = errors.length > MAX_NESTED_ERRORS ? ` (and ${errors.length - MAX_NESTED_ERRORS} more)` : '';
  const suffix = isScalar(value) ? shown(raw, secret) : '';
  return `${listed.join('; ')}${more}${suffix}`;
}

/** ` (got "abc")`, shortened, with URL passwords masked; nothing at all for secrets. */
export function shown(raw: string, secret: boolean): string {
  if (secret) return ' (value hidden)';
  const masked = maskUrlPassword(raw);
  const short = masked.length > MAX_SHOWN ? `${masked.slice(0, MAX_SHOWN)}...` : masked;
  return ` (got ${JSON.stringify(short)})`;
}

/** `postgres://app:hunter2@db/x` -> `postgres://app:***@db/x`: URLs are not named like secrets but carry them. */
function maskUrlPassword(raw: string): string {
  return raw.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@\s]*:)[^/@\s]*@/i, '$1***@');
}

function expectation(schema: JsonSchema): string | undefined {
  const allowed = allowedValues(schema);
  if (allowed !== undefined) return `one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`;
  const types = acceptedTypes(schema);
  if (types.size !== 1) return undefined;
  if (types.has('integer')) return `an integer${range(schema)}`;
  if (types.has('number')) return `a number${range(schema)}`;
  if (types.has('boolean')) return 'a boolean (true or false)';
  if (types.has('string')) return stringExpectation(schema);
  return undefined;
}

function range(schema: JsonSchema): string {
  const min = numberOr(schema.minimum);
  const max = numberOr(schema.maximum);
  const xmin = numberOr(schema.exclusiveMinimum);
  const xmax = numberOr(schema.exclusiveMaximum);
  const parts: string[] = [];
  if (min !== undefined && max !== undefined) return ` between ${min} and ${max}`;
  if (min !== undefined) parts.push(`at least ${min}`);
  if (xmin !== undefined) parts.push(`greater than ${xmin}`);
  if (max !== undefined) parts.push(`at most ${max}`);
  if (xmax !== undefined) parts.push(`less than ${xmax}`);
  return parts.length === 0 ? '' : ` ${parts.join(' and ')}`;
}

function stringExpectation(schema: JsonSchema): string {
  if (typeof schema.format === 'string') return `a valid ${schema.format}`;
  if (typeof schema.pattern === 'string') return `a string matching /${schema.pattern}/`;
  const min = numberOr(schema.minLength);
  const max = numberOr(schema.maxLength);
  if (min !== undefined && max !== undefined) return `a string of ${min} to ${max} characters`;
  if (min !== undefined) return `a string of at least ${min} characters`;
  if (max !== undefined) return `a string of at most ${max} characters`;
  return 'a string';
}

interface ErrorLine {
  keyword: string;
  instancePath: string;
  message: string;
}

/** Where a union failed, its members' errors only repeat it: keep the union's own line. */
function relevantErrors(schema: TSchema, value: unknown): ErrorLine[] {
  const errors: ErrorLine[] = Value.Errors(schema, value);
  const unionPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  return errors.filter((e) => e.keyword === 'anyOf' || !unionPaths.has(e.instancePath));
}

/** `/0/hosts` -> `[0].hosts `, the way a reader of the JSON value would name it. */
function pathText(pointer: string): string {
  if (pointer === '') return '';
  const text = pointer
    .split('/')
    .slice(1)
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : i === 0 ? part : `.${part}`))
    .join('');
  return `${text} `;
}

function isScalar(value: unknown): boolean {
  return value === null || typeof value !== 'object';
}

function numberOr(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}
