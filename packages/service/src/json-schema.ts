import type { TSchema } from 'typebox';

/** A typebox schema seen as the plain JSON Schema object it is at run time. */
export type JsonSchema = Readonly<Record<string, unknown>>;

export type JsonType = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'null';

export function asJsonSchema(schema: TSchema): JsonSchema {
  return schema as JsonSchema;
}

/** Sub-schemas of a union (`anyOf`/`oneOf`), or none. */
export function unionMembers(schema: JsonSchema): JsonSchema[] {
  const members = schema.anyOf ?? schema.oneOf;
  return Array.isArray(members) ? members.filter(isJsonSchema) : [];
}

/**
 * Every JSON type a value may have to satisfy the schema, looking through unions and literals.
 * An empty set means the schema does not say (e.g. `Type.Unknown()`).
 */
export function acceptedTypes(schema: JsonSchema): Set<JsonType> {
  const types = new Set<JsonType>();
  const declared = schema.type;
  for (const t of Array.isArray(declared) ? declared : [declared]) {
    if (isJsonType(t)) types.add(t);
  }
  if ('const' in schema) types.add(typeOfValue(schema.const));
  if (Array.isArray(schema.enum)) for (const v of schema.enum) types.add(typeOfValue(v));
  for (const member of unionMembers(schema)) for (const t of acceptedTypes(member)) types.add(t);
  return types;
}

/** The allowed values when the schema is an enum or a union of literals, else undefined. */
export function allowedValues(schema: JsonSchema): unknown[] | undefined {
  if (Array.isArray(schema.enum)) return schema.enum as unknown[];
  if ('const' in schema) return [schema.const];
  const members = unionMembers(schema);
  if (members.length === 0) return undefined;
  const values: unknown[] = [];
  for (const m of members) {
    const inner = allowedValues(m);
    if (inner === undefined) return undefined;
    values.push(...inner);
  }
  return values;
}

function isJsonSchema(value: unknown): value is JsonSchema {
  return typeof value === 'object' && value !== null;
}

function isJsonType(value: unknown): value is JsonType {
  return (
    value === 'string' ||
    value === 'number' ||
    value === 'integer' ||
    value === 'boolean' ||
    value === 'object' ||
    value === 'array' ||
    value === 'null'
  );
}

function typeOfValue(value: unknown): JsonType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  switch (typeof value) {
    case 'number':
      return Number.isInteger(value) ? 'integer' : 'number';
    case 'boolean':
      return 'boolean';
    case 'object':
      return 'object';
    default:
      return 'string';
  }
}
