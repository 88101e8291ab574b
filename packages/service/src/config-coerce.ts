import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { acceptedTypes, asJsonSchema, type JsonSchema } from './json-schema.js';

/** A typed value read from one env string, or why it could not be read. */
export type Coerced = { ok: true; value: unknown } | { ok: false; reason: string; detail?: string };

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/**
 * Reads an env string as the type the schema wants: numbers and booleans from their text, objects and
 * arrays from JSON (arrays of scalars also from `a,b,c`), nested defaults applied. Stricter than
 * typebox's `Value.Convert`, which truncates `3.5` to an integer 3 and reads `0x10` as 16: a typo in
 * production config must fail, not change meaning.
 *
 * When no reading satisfies the schema, the most specific one is returned so the error talks about
 * the intended type (`must be an integer`), not about strings.
 */
export function coerceEnvValue(schema: TSchema, raw: string): Coerced {
  const candidates = readings(asJsonSchema(schema), raw);
  for (const candidate of candidates) {
    if (!candidate.ok) continue;
    const value = withDefaults(schema, candidate.value);
    if (Value.Check(schema, value)) return { ok: true, value };
  }
  const first = candidates[0] ?? { ok: true, value: raw };
  return first.ok ? { ok: true, value: withDefaults(schema, first.value) } : first;
}

function readings(schema: JsonSchema, raw: string): Coerced[] {
  const types = acceptedTypes(schema);
  const text = raw.trim();
  const out: Coerced[] = [];
  if ((types.has('number') || types.has('integer')) && NUMBER.test(text)) {
    out.push({ ok: true, value: Number(text) });
  }
  if (types.has('boolean')) {
    const lower = text.toLowerCase();
    if (TRUE.has(lower)) out.push({ ok: true, value: true });
    else if (FALSE.has(lower)) out.push({ ok: true, value: false });
  }
  if (types.has('null') && text === 'null') out.push({ ok: true, value: null });
  if (types.has('array') && !text.startsWith('[') && isScalarList(schema)) {
    out.push(readList(schema, text));
  } else if (types.has('object') || types.has('array')) {
    out.push(readJson(text));
  }
  if (types.size === 0 || types.has('string')) out.push({ ok: true, value: raw });
  return out;
}

function readJson(text: string): Coerced {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return {
      ok: false,
      reason: 'not valid JSON',
      detail: error instanceof Error ? error.message : undefined,
    };
  }
}

/** `10.0.0.1, 10.0.0.2` for a list of scalars: the form operators type by hand. */
function readList(schema: JsonSchema, text: string): Coerced {
  const items = schema.items as TSchema;
  if (text === '') return { ok: true, value: [] };
  const values: unknown[] = [];
  for (const piece of text.split(',')) {
    const item = coerceEnvValue(items, piece.trim());
    if (!item.ok) return item;
    values.push(item.value);
  }
  return { ok: true, value: values };
}

function isScalarList(schema: JsonSchema): boolean {
  const items = schema.items;
  if (typeof items !== 'object' || items === null || Array.isArray(items)) return false;
  const types = acceptedTypes(items as JsonSchema);
  return types.size > 0 && !types.has('object') && !types.has('array');
}

function withDefaults(schema: TSchema, value: unknown): unknown {
  return Value.Default(schema, Value.Clone(value));
}
