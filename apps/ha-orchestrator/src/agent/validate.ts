// A small schema checker for the agent's config file and request arguments. The agent runs once
// per command on the node, so it does not load the HTTP stack (fastify, typebox's compiler): these
// combinators check plain JSON, refuse unknown fields, and name the offending field in every message.
import { UpgradeError, type ErrorCode } from '@upgrade/core';

/** Checks `value` found at `path` and returns it typed, or throws a SchemaError naming `path`. */
export type Check<T> = (value: unknown, path: string) => T;

export type Infer<C> = C extends Check<infer T> ? T : never;

export class SchemaError extends Error {
  override readonly name = 'SchemaError';
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path === '' ? 'value' : path}: ${problem}`);
  }
}

const describe = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;

export function str(
  options: { pattern?: RegExp; min?: number; max?: number; hint?: string } = {},
): Check<string> {
  const { pattern, min = 1, max = 4096, hint } = options;
  return (value, path) => {
    if (typeof value !== 'string') throw new SchemaError(path, `must be a string, got ${describe(value)}`);
    if (value.length < min)
      throw new SchemaError(path, min === 1 ? 'must not be empty' : `must be at least ${min} characters`);
    if (value.length > max) throw new SchemaError(path, `must be at most ${max} characters`);
    if (value.includes('\0')) throw new SchemaError(path, 'must not contain NUL');
    if (pattern !== undefined && !pattern.test(value))
      throw new SchemaError(path, hint ?? `must match ${String(pattern)}`);
    return value;
  };
}

export function int(options: { min?: number; max?: number } = {}): Check<number> {
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = options;
  return (value, path) => {
    if (typeof value !== 'number' || !Number.isInteger(value))
      throw new SchemaError(path, `must be an integer, got ${describe(value)}`);
    if (value < min || value > max) throw new SchemaError(path, `must be between ${min} and ${max}`);
    return value;
  };
}

export const bool: Check<boolean> = (value, path) => {
  if (typeof value !== 'boolean')
    throw new SchemaError(path, `must be true or false, got ${describe(value)}`);
  return value;
};

export function literal<const T extends readonly string[]>(...values: T): Check<T[number]> {
  return (value, path) => {
    if (typeof value !== 'string' || !values.includes(value))
      throw new SchemaError(path, `must be one of ${values.map((v) => `"${v}"`).join(', ')}`);
    return value;
  };
}

export function arr<T>(item: Check<T>, options: { min?: number; max?: number } = {}): Check<T[]> {
  const { min = 0, max = 10_000 } = options;
  return (value, path) => {
    if (!Array.isArray(value)) throw new SchemaError(path, `must be an array, got ${describe(value)}`);
    if (value.length < min) throw new SchemaError(path, `must have at least ${min} item(s)`);
    if (value.length > max) throw new SchemaError(path, `must have at most ${max} items`);
    return value.map((v: unknown, i) => item(v, `${path}[${i}]`));
  };
}

/** A JSON object whose keys are free-form names and whose values all pass `item`. */
export function record<T>(item: Check<T>, key: Check<string> = str({ max: 256 })): Check<Record<string, T>> {
  return (value, path) => {
    if (!isPlainObject(value)) throw new SchemaError(path, `must be an object, got ${describe(value)}`);
    const out: Record<string, T> = {};
    for (const [k, v] of Object.entries(value)) {
      key(k, `${path}.${k}`);
      out[k] = item(v, `${path}.${k}`);
    }
    return out;
  };
}

const OPTIONAL = Symbol('optional');
type Optional<T> = Check<T | undefined> & { [OPTIONAL]: true };

export function optional<T>(check: Check<T>): Optional<T> {
  const wrapped = ((value: unknown, path: string) =>
    value === undefined ? undefined : check(value, path)) as Optional<T>;
  wrapped[OPTIONAL] = true;
  return wrapped;
}

type Shape = Record<string, Check<unknown>>;
type RequiredKeys<S extends Shape> = { [K in keyof S]: S[K] extends Optional<unknown> ? never : K }[keyof S];
type OptionalKeys<S extends Shape> = Exclude<keyof S, RequiredKeys<S>>;
export type ObjectOf<S extends Shape> = { [K in RequiredKeys<S>]: Infer<S[K]> } & {
  [K in OptionalKeys<S>]?: Infer<S[K]>;
};

/** A JSON object with exactly these fields (optional ones may be absent); unknown fields are refused. */
export function obj<S extends Shape>(shape: S): Check<{ [K in keyof ObjectOf<S>]: ObjectOf<S>[K] }> {
  return (value, path) => {
    if (!isPlainObject(value)) throw new SchemaError(path, `must be an object, got ${describe(value)}`);
    for (const key of Object.keys(value))
      if (!Object.hasOwn(shape, key)) throw new SchemaError(join(path, key), 'unknown field');
    const out: Record<string, unknown> = {};
    for (const [key, check] of Object.entries(shape)) {
      const field = value[key];
      if (field === undefined && !(OPTIONAL in check)) throw new SchemaError(join(path, key), 'is required');
      const checked = check(field, join(path, key));
      if (checked !== undefined) out[key] = checked;
    }
    return out as { [K in keyof ObjectOf<S>]: ObjectOf<S>[K] };
  };
}

/** Runs `check` and turns a SchemaError into an UpgradeError with `code` and `what` in front. */
export function parseWith<T>(check: Check<T>, value: unknown, what: string, code: ErrorCode): T {
  try {
    return check(value, '');
  } catch (error) {
    if (error instanceof SchemaError)
      throw new UpgradeError(code, `${what}: ${error.message}`, { details: { field: error.path } });
    throw error;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}
