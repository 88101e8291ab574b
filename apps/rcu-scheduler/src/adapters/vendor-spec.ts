// The vendor spec (spec/vendor-api.openapi.json) as run-time validators. The adapter checks every
// answer with them, the simulator every request, and spec:validate the fixtures, so the three can
// never disagree about what the vendor sends.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/** File name of the vendor spec inside the package's `spec/` folder. */
export const VENDOR_SPEC_FILE = 'vendor-api.openapi.json';

/** Base URI the spec is registered under, so `#/components/schemas/X` refs resolve inside it. */
export const VENDOR_SPEC_ID = 'https://rcu-scheduler.invalid/spec/vendor-api.openapi.json';

/** The component schemas the adapter and the simulator validate against. */
export type VendorSchemaName =
  | 'UpgradeV2Request'
  | 'UpgradeV2Response'
  | 'QueryUpdateHostProgressBarRequest'
  | 'QueryUpdateHostProgressBarResponse'
  | 'FailureEnvelope';

/** OpenAPI's top-level fields: known to ajv so strict mode accepts the document as a schema container. */
const OPENAPI_KEYWORDS = [
  'openapi',
  'info',
  'jsonSchemaDialect',
  'servers',
  'paths',
  'webhooks',
  'components',
  'security',
  'tags',
  'externalDocs',
];

/**
 * Finds `spec/vendor-api.openapi.json` by walking up from this module. The module sits two levels
 * below the package root in `src/adapters/` (tsx, vitest) and one level below in the tsup bundle
 * (`dist/cli.js`), so a fixed relative path would only work for one of them.
 */
export function locateVendorSpec(from: string | URL = import.meta.url): string {
  let dir = dirname(typeof from === 'string' && !from.startsWith('file:') ? from : fileURLToPath(from));
  for (let level = 0; level < 4; level++) {
    const candidate = join(dir, 'spec', VENDOR_SPEC_FILE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(
    `vendor spec ${VENDOR_SPEC_FILE} not found in a spec/ folder above ${String(from)}; ship spec/ with the package`,
  );
}

/** An ajv for the spec: JSON Schema 2020-12, formats, strict, OpenAPI's fields tolerated at the top. */
export function createSpecAjv(options: { strictRequired?: boolean } = {}): Ajv2020 {
  const ajv = new Ajv2020({
    strict: true,
    allowUnionTypes: true,
    allErrors: false,
    // spec:lint: a required property the schema does not define is a typo.
    strictRequired: options.strictRequired ?? false,
  });
  // ajv-formats is CommonJS with `exports.default`; under NodeNext the default import is the module.
  addFormats.default(ajv);
  ajv.addVocabulary(OPENAPI_KEYWORDS);
  return ajv;
}

/** Checks values against the spec's component schemas. */
export interface VendorSchemas {
  /** Null when `value` matches `#/components/schemas/<name>`, else a short reason naming the field. */
  check(name: string, value: unknown): string | null;
  /** Whether the spec declares the component schema. */
  has(name: string): boolean;
}

/**
 * Compiles the component schemas of an OpenAPI document (parsed JSON). Throws ajv's error when a
 * schema does not compile (dangling `$ref`, unknown keyword), since nothing can be checked then.
 */
export function compileVendorSchemas(spec: unknown, ajv: Ajv2020 = createSpecAjv()): VendorSchemas {
  if (typeof spec !== 'object' || spec === null) throw new Error('the vendor spec is not a JSON object');
  ajv.addSchema(spec, VENDOR_SPEC_ID);
  const names = Object.keys((spec as { components?: { schemas?: object } }).components?.schemas ?? {});
  // Compile every schema now: a broken one should fail at start-up, not at the first vendor answer.
  const validators = new Map(
    names.map((name) => {
      const validate = ajv.getSchema(`${VENDOR_SPEC_ID}#/components/schemas/${name}`);
      if (validate === undefined) throw new Error(`schema ${name} could not be compiled`);
      return [name, validate] as const;
    }),
  );
  return {
    has: (name) => validators.has(name),
    check: (name, value) => {
      const validate = validators.get(name);
      if (validate === undefined) return `the spec has no schema ${name}`;
      return validate(value) ? null : describeSchemaErrors(validate.errors ?? []);
    },
  };
}

const cache = new Map<string, VendorSchemas>();

/** The spec's validators, read and compiled once per process and path. */
export function loadVendorSchemas(specPath: string = locateVendorSpec()): VendorSchemas {
  let schemas = cache.get(specPath);
  if (schemas === undefined) {
    schemas = compileVendorSchemas(JSON.parse(readFileSync(specPath, 'utf8')) as unknown);
    cache.set(specPath, schemas);
  }
  return schemas;
}

/**
 * One line from ajv's errors, naming the field: `Data/3/Status must be equal to one of the allowed
 * values (0, 1, 2, 3, 4, 5)`. `if` errors only repeat the branch that failed, so they are skipped.
 */
export function describeSchemaErrors(errors: readonly ErrorObject[]): string {
  const relevant = errors.filter((e) => e.keyword !== 'if');
  const first = relevant[0] ?? errors[0];
  if (first === undefined) return 'does not match the schema';
  const field = first.instancePath === '' ? '(body)' : first.instancePath.slice(1);
  const params = first.params as Record<string, unknown>;
  let detail = '';
  if (Array.isArray(params.allowedValues)) detail = ` (${params.allowedValues.map(String).join(', ')})`;
  else if (typeof params.unevaluatedProperty === 'string') detail = `: ${params.unevaluatedProperty}`;
  else if (typeof params.additionalProperty === 'string') detail = `: ${params.additionalProperty}`;
  return `${field} ${first.message ?? 'is invalid'}${detail}`;
}
