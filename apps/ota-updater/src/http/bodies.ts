// The request bodies of the API as JSON Schema, and their check. The same objects document the
// routes in openapi.json (src/http/api-description.ts), so the check cannot drift from the
// description. The check is a few lines over this fixed subset (object, string, integer) instead of
// a schema compiler loaded at start (ajv + typebox: ~24 MiB of a 50 MiB budget), and does what
// the API did under fastify's defaults: scalars coerced the way ajv's `coerceTypes` does (`"12"` is
// the integer 12, `12` the string "12"), properties not in the schema dropped, the first problem
// reported as `body/<field> <what>`.

/** The subset of JSON Schema the bodies use. */
export interface FieldSchema {
  readonly type: 'string' | 'integer';
  readonly pattern?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly description?: string;
}

export interface BodySchema {
  readonly type: 'object';
  readonly required: readonly string[];
  readonly properties: Readonly<Record<string, FieldSchema>>;
  readonly additionalProperties: false;
}

const Version: FieldSchema = {
  type: 'string',
  pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$',
  description: 'e.g. 2.4.1',
};

/** POST /api/v1.0/download */
export const DOWNLOAD_BODY = {
  type: 'object',
  required: ['version', 'package_url', 'package_name', 'package_size', 'package_md5'],
  properties: {
    version: Version,
    package_url: {
      type: 'string',
      pattern: '^https?://',
      maxLength: 2048,
      description: 'http(s) URL with a host',
    },
    package_name: { type: 'string', minLength: 1, maxLength: 255 },
    package_size: {
      type: 'integer',
      minimum: 1,
      maximum: Number.MAX_SAFE_INTEGER,
      description: 'bytes, a whole number up to 2^53 - 1',
    },
    package_md5: { type: 'string', pattern: '^[0-9a-fA-F]{32}$', description: 'hex MD5 of the package' },
    package_sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
    signature: { type: 'string', description: 'base64 ed25519 signature over the SHA-256 digest' },
  },
  additionalProperties: false,
} as const satisfies BodySchema;

/** POST /api/v1.0/update */
export const UPDATE_BODY = {
  type: 'object',
  required: ['version'],
  properties: { version: Version },
  additionalProperties: false,
} as const satisfies BodySchema;

/** A checked body: the schema's properties, typed. */
export type BodyOf<S extends BodySchema> = {
  -readonly [K in keyof S['properties'] as K extends S['required'][number] ? K : never]: TypeOf<
    S['properties'][K]
  >;
} & {
  -readonly [K in keyof S['properties'] as K extends S['required'][number] ? never : K]?: TypeOf<
    S['properties'][K]
  >;
};
type TypeOf<F> = F extends { type: 'integer' } ? number : string;

export type CheckedBody<S extends BodySchema> =
  { ok: true; value: BodyOf<S> } | { ok: false; field: string; message: string };

const patterns = new Map<string, RegExp>();
const regexOf = (source: string): RegExp => {
  let re = patterns.get(source);
  if (re === undefined) {
    re = new RegExp(source, 'u');
    patterns.set(source, re);
  }
  return re;
};

/** Checks a parsed JSON body against its schema; the message names the first bad field. */
export function checkBody<S extends BodySchema>(schema: S, body: unknown): CheckedBody<S> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return { ok: false, field: 'body', message: 'body must be object' };
  const input = body as Record<string, unknown>;
  for (const name of schema.required) {
    if (input[name] === undefined)
      return { ok: false, field: name, message: `body must have required property '${name}'` };
  }
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(schema.properties)) {
    if (!Object.hasOwn(input, name) || input[name] === undefined) continue;
    const checked = checkField(field, input[name]);
    if (typeof checked === 'string') return { ok: false, field: name, message: `body/${name} ${checked}` };
    out[name] = checked.value;
  }
  return { ok: true, value: out as BodyOf<S> };
}

/** The (coerced) value, or what is wrong with it. */
function checkField(schema: FieldSchema, raw: unknown): { value: unknown } | string {
  // ajv's coerceTypes 'array': a one-element array stands for its element.
  const value = Array.isArray(raw) && raw.length === 1 ? (raw[0] as unknown) : raw;
  if (schema.type === 'integer') {
    const n = toInteger(value);
    if (n === null) return 'must be integer';
    if (schema.maximum !== undefined && n > schema.maximum) return `must be <= ${schema.maximum}`;
    if (schema.minimum !== undefined && n < schema.minimum) return `must be >= ${schema.minimum}`;
    return { value: n };
  }
  const s = toText(value);
  if (s === null) return 'must be string';
  // Lengths in code points, as JSON Schema counts them.
  const length = schema.maxLength === undefined && schema.minLength === undefined ? 0 : [...s].length;
  if (schema.maxLength !== undefined && length > schema.maxLength)
    return `must NOT have more than ${schema.maxLength} characters`;
  if (schema.minLength !== undefined && length < schema.minLength)
    return `must NOT have fewer than ${schema.minLength} characters`;
  if (schema.pattern !== undefined && !regexOf(schema.pattern).test(s))
    return `must match pattern "${schema.pattern}"`;
  return { value: s };
}

function toInteger(value: unknown): number | null {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'boolean') n = value ? 1 : 0;
  else if (value === null) n = 0;
  else if (typeof value === 'string' && value !== '' && Number.isFinite(Number(value))) n = Number(value);
  else return null;
  return Number.isFinite(n) && n % 1 === 0 ? n : null;
}

function toText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return '';
  return null;
}
