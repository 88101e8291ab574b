// Input checked as it arrives, before fastify's validation coerces it and before any query:
// a JSON body's values must have the types the route's schema declares (the validator would turn
// 5 into "5", true into "true" and "x" into ["x"]), and no text anywhere (path, query string,
// body) may hold a NUL or a lone UTF-16 surrogate: PostgreSQL refuses the first (22021) and
// stores the second as U+FFFD, so what is read back would differ from what was sent.
import { UpgradeError } from '@upgrade/core';
import type { ServiceApp } from '@upgrade/service';

/** A JSON Schema as TypeBox builds it, the parts read here. */
interface Schema {
  type?: string | string[];
  $ref?: string;
  $id?: string;
  anyOf?: Schema[];
  const?: unknown;
  items?: Schema;
  properties?: Record<string, Schema>;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

type Location = 'params' | 'querystring' | 'body';

function invalid(location: Location, path: string[], message: string): UpgradeError {
  const field = path.length === 0 ? location : path.join('.');
  return new UpgradeError('VALIDATION_FAILED', `${field} ${message}`, {
    details: { fields: [{ location, field, message }] },
  });
}

/** The first NUL or lone surrogate in any string of `value`, as a VALIDATION_FAILED. */
function checkText(value: unknown, location: Location, path: string[]): UpgradeError | undefined {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return invalid(location, path, 'must not contain NUL characters');
    if (LONE_SURROGATE.test(value)) {
      return invalid(location, path, 'must be valid Unicode text (it holds a lone surrogate)');
    }
    return undefined;
  }
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = checkText(item, location, [...path, String(i)]);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const found = checkText(item, location, [...path, key]);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

const JSON_TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  null: 'null',
  array: 'an array',
  object: 'an object',
};

function hasJsonType(value: unknown, type: string): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'integer':
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    case 'null':
      return value === null;
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    default:
      return true;
  }
}

/** The declared type of `value` is checked, nested values too; ranges and formats are the validator's. */
function checkTypes(
  value: unknown,
  schema: Schema | undefined,
  lookup: (id: string) => Schema | undefined,
  path: string[],
): UpgradeError | undefined {
  if (schema === undefined || value === undefined) return undefined;
  if (schema.$ref !== undefined) return checkTypes(value, lookup(schema.$ref), lookup, path);
  if (schema.anyOf !== undefined) {
    const failures = schema.anyOf.map((branch) => checkTypes(value, branch, lookup, path));
    return failures.every((failure) => failure !== undefined) ? failures[0] : undefined;
  }
  const types =
    schema.type === undefined
      ? schema.const === undefined
        ? []
        : [schema.const === null ? 'null' : typeof schema.const]
      : [schema.type].flat();
  if (types.length > 0 && !types.some((type) => hasJsonType(value, type))) {
    const expected = types.map((type) => JSON_TYPE_NAMES[type] ?? type).join(' or ');
    return invalid('body', path, `must be ${expected}`);
  }
  if (Array.isArray(value) && schema.items !== undefined) {
    for (const [i, item] of value.entries()) {
      const found = checkTypes(item, schema.items, lookup, [...path, String(i)]);
      if (found !== undefined) return found;
    }
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && schema.properties) {
    for (const [key, property] of Object.entries(schema.properties)) {
      const found = checkTypes((value as Record<string, unknown>)[key], property, lookup, [...path, key]);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** Adds the checks to every route with a schema; `shared` are the schemas routes reference by `$id`. */
export function registerStrictInput(app: ServiceApp, shared: readonly Schema[]): void {
  const byId = new Map(shared.flatMap((schema) => (schema.$id === undefined ? [] : [[schema.$id, schema]])));
  const lookup = (id: string): Schema | undefined => byId.get(id.replace(/^#/, '').replace(/#$/, ''));
  app.addHook('preValidation', async (request) => {
    const schema = request.routeOptions.schema as
      { params?: Schema; querystring?: Schema; body?: Schema } | undefined;
    if (schema === undefined) return;
    const parts: [Location, unknown, Schema | undefined][] = [
      ['params', request.params, schema.params],
      ['querystring', request.query, schema.querystring],
      ['body', request.body, schema.body],
    ];
    for (const [location, value, partSchema] of parts) {
      if (partSchema === undefined || Buffer.isBuffer(value)) continue;
      const found =
        checkText(value, location, []) ??
        (location === 'body' ? checkTypes(value, partSchema, lookup, []) : undefined);
      if (found !== undefined) throw found;
    }
  });
}
