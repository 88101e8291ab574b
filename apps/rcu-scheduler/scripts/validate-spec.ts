// The vendor spec and its fixtures. The spec is the only written-down vendor contract, so a
// dangling $ref or a fixture that drifted from it must fail CI, not a round. `pnpm spec:validate`
// runs these checks and those of the flow spec and the configuration (flow-spec.ts).
//
// The command is scripts/spec-validate.ts.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import {
  VENDOR_SPEC_ID,
  createSpecAjv,
  describeSchemaErrors,
  type VendorSchemaName,
} from '../src/adapters/vendor-spec.js';

/** One check and its outcome; `detail` says what was checked or why it failed. */
export interface SpecCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/** All checks of one run; `ok` when every check passed. */
export interface SpecReport {
  ok: boolean;
  checks: SpecCheck[];
}

/** Where the spec and its fixtures are; defaults to the package's `spec/` folder. */
export interface ValidateSpecOptions {
  specPath?: string;
  fixturesDir?: string;
  /** Default true; false checks the document alone (spec:lint). */
  fixtures?: boolean;
}

/** The schemas the adapter and the simulator validate against: the spec must declare them. */
const USED_SCHEMAS: readonly VendorSchemaName[] = [
  'UpgradeV2Request',
  'UpgradeV2Response',
  'QueryUpdateHostProgressBarRequest',
  'QueryUpdateHostProgressBarResponse',
  'FailureEnvelope',
];

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const DIALECT_2020 = 'https://json-schema.org/draft/2020-12/schema';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Checks that the spec is a structurally valid OpenAPI 3.1 document whose every `$ref` resolves
 * and every component schema compiles (ajv, JSON Schema 2020-12, formats), and that each fixture
 * listed in `fixtures/index.json` matches the schema it declares. Never throws for a bad spec: the
 * reasons are in the report.
 */
export function validateSpec(options: ValidateSpecOptions = {}): SpecReport {
  const specPath =
    options.specPath ?? fileURLToPath(new URL('../spec/vendor-api.openapi.json', import.meta.url));
  const fixturesDir = options.fixturesDir ?? join(specPath, '..', 'fixtures');
  const checks: SpecCheck[] = [];
  const pass = (name: string, detail: string): void => void checks.push({ name, ok: true, detail });
  const fail = (name: string, detail: string): void => void checks.push({ name, ok: false, detail });
  const report = (): SpecReport => ({ ok: checks.every((c) => c.ok), checks });

  const spec = readJson(specPath);
  if (!spec.ok) {
    fail('spec parses', `${specPath}: ${spec.error}`);
    return report();
  }
  if (!isObject(spec.value)) {
    fail('spec parses', `${specPath}: not a JSON object`);
    return report();
  }
  const doc = spec.value;
  pass('spec parses', basename(specPath));

  checkTopLevel(doc, pass, fail);
  checkOperations(doc, pass, fail);
  checkRefs(doc, pass, fail);

  const schemas = isObject(doc.components) && isObject(doc.components.schemas) ? doc.components.schemas : {};
  const missing = USED_SCHEMAS.filter((name) => !(name in schemas));
  if (missing.length === 0) pass('schemas used by the adapter', USED_SCHEMAS.join(', '));
  else fail('schemas used by the adapter', `missing in components.schemas: ${missing.join(', ')}`);

  const validators = compileSchemas(doc, Object.keys(schemas), pass, fail);
  if (options.fixtures !== false) checkFixtures(fixturesDir, schemas, validators, pass, fail);
  return report();
}

export type Note = (name: string, detail: string) => void;

export function checkTopLevel(doc: Json, pass: Note, fail: Note): void {
  const problems: string[] = [];
  if (typeof doc.openapi !== 'string' || !/^3\.1\.\d+$/.test(doc.openapi))
    problems.push(`openapi must be "3.1.x", is ${JSON.stringify(doc.openapi)}`);
  if (!isObject(doc.info)) problems.push('info is missing');
  else {
    if (typeof doc.info.title !== 'string' || doc.info.title === '') problems.push('info.title is missing');
    if (typeof doc.info.version !== 'string' || doc.info.version === '')
      problems.push('info.version is missing');
  }
  if (doc.paths === undefined && doc.components === undefined && doc.webhooks === undefined)
    problems.push('one of paths, components, webhooks is required');
  if (doc.jsonSchemaDialect !== undefined && doc.jsonSchemaDialect !== DIALECT_2020)
    problems.push(`jsonSchemaDialect must be ${DIALECT_2020}`);
  if (doc.servers !== undefined && !Array.isArray(doc.servers)) problems.push('servers must be an array');
  if (problems.length === 0) pass('openapi 3.1 top level', `openapi ${String(doc.openapi)}, info, paths`);
  else fail('openapi 3.1 top level', problems.join('; '));
}

function checkOperations(doc: Json, pass: Note, fail: Note): void {
  if (!isObject(doc.paths)) {
    fail('operations', 'paths must be an object');
    return;
  }
  const problems: string[] = [];
  const ids = new Set<string>();
  let count = 0;
  for (const [path, item] of Object.entries(doc.paths)) {
    if (!path.startsWith('/')) problems.push(`path ${path} must start with /`);
    if (!isObject(item)) {
      problems.push(`${path} must be an object`);
      continue;
    }
    for (const method of HTTP_METHODS) {
      const op = item[method];
      if (op === undefined) continue;
      count++;
      const where = `${method.toUpperCase()} ${path}`;
      if (!isObject(op)) {
        problems.push(`${where} must be an object`);
        continue;
      }
      if (typeof op.operationId === 'string') {
        if (ids.has(op.operationId)) problems.push(`operationId ${op.operationId} is used twice`);
        ids.add(op.operationId);
      }
      if (!isObject(op.responses) || Object.keys(op.responses).length === 0)
        problems.push(`${where} has no responses`);
      else
        for (const code of Object.keys(op.responses))
          if (!/^(default|[1-5](\d\d|XX))$/.test(code))
            problems.push(`${where} response key ${code} is invalid`);
    }
  }
  if (count === 0) problems.push('no operations');
  if (problems.length === 0) pass('operations', `${count} operations: ${[...ids].join(', ')}`);
  else fail('operations', problems.join('; '));
}

/** Every `$ref` must be local (`#/...`) and point at something: the spec is self-contained. */
function checkRefs(doc: Json, pass: Note, fail: Note): void {
  const problems: string[] = [];
  let count = 0;
  const walk = (node: unknown, at: string): void => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => walk(child, `${at}/${i}`));
      return;
    }
    if (!isObject(node)) return;
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') {
        count++;
        if (!value.startsWith('#'))
          problems.push(`${at}: external $ref ${value} (keep the spec self-contained)`);
        else if (resolvePointer(doc, value.slice(1)) === undefined)
          problems.push(`${at}: $ref ${value} resolves to nothing`);
      } else {
        walk(value, `${at}/${key}`);
      }
    }
  };
  walk(doc, '#');
  if (problems.length === 0) pass('$refs resolve', `${count} $refs`);
  else fail('$refs resolve', problems.join('; '));
}

export function resolvePointer(doc: unknown, pointer: string): unknown {
  if (pointer === '') return doc;
  if (!pointer.startsWith('/')) return undefined;
  let node: unknown = doc;
  for (const raw of pointer.slice(1).split('/')) {
    const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(node)) node = node[Number(key)];
    else if (isObject(node) && Object.hasOwn(node, key)) node = node[key];
    else return undefined;
  }
  return node;
}

/** Compiled one by one so a broken schema is named, and fixtures of the sound ones still checked. */
function compileSchemas(doc: Json, names: string[], pass: Note, fail: Note): Map<string, ValidateFunction> {
  const validators = new Map<string, ValidateFunction>();
  const ajv = createSpecAjv();
  try {
    ajv.addSchema(doc, VENDOR_SPEC_ID);
  } catch (error) {
    fail('schemas compile', errorText(error));
    return validators;
  }
  for (const name of names) {
    try {
      const validate = ajv.getSchema(`${VENDOR_SPEC_ID}#/components/schemas/${name}`);
      if (validate === undefined) fail(`schema ${name} compiles`, 'ajv could not resolve it');
      else validators.set(name, validate);
    } catch (error) {
      fail(`schema ${name} compiles`, errorText(error));
    }
  }
  if (validators.size === names.length)
    pass('schemas compile', `${names.length} component schemas (JSON Schema 2020-12, strict, formats)`);
  return validators;
}

function checkFixtures(
  dir: string,
  schemas: Json,
  validators: ReadonlyMap<string, ValidateFunction>,
  pass: Note,
  fail: Note,
): void {
  const indexPath = join(dir, 'index.json');
  const index = readJson(indexPath);
  if (!index.ok) {
    fail('fixture index', `${indexPath}: ${index.error}`);
    return;
  }
  const entries = isObject(index.value) && isObject(index.value.fixtures) ? index.value.fixtures : undefined;
  if (entries === undefined) {
    fail('fixture index', `${indexPath}: expected { "fixtures": { "<file>": "<schema name>" } }`);
    return;
  }
  const onDisk = readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'index.json');
  const unlisted = onDisk.filter((f) => !(f in entries));
  if (unlisted.length === 0) pass('fixture index', `${Object.keys(entries).length} fixtures listed`);
  else
    fail('fixture index', `not listed in index.json (say which schema they match): ${unlisted.join(', ')}`);

  for (const [file, schema] of Object.entries(entries)) {
    const name = `fixture ${file}`;
    if (typeof schema !== 'string' || !(schema in schemas)) {
      fail(name, `declares schema ${JSON.stringify(schema)}, which is not in components.schemas`);
      continue;
    }
    const path = join(dir, file);
    if (!existsSync(path)) {
      fail(name, 'listed in index.json but the file does not exist');
      continue;
    }
    const fixture = readJson(path);
    if (!fixture.ok) {
      fail(name, fixture.error);
      continue;
    }
    const validate = validators.get(schema);
    if (validate === undefined) fail(name, `schema ${schema} did not compile`);
    else if (validate(fixture.value)) pass(name, `matches ${schema}`);
    else fail(name, `does not match ${schema}: ${describeSchemaErrors(validate.errors ?? [])}`);
  }
}

export function readJson(path: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(readFileSync(path, 'utf8')) as unknown };
  } catch (error) {
    return { ok: false, error: errorText(error) };
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Prints one line per check; exit code 1 when any failed. */
export function printReport(report: SpecReport, write: (line: string) => void = console.log): void {
  for (const check of report.checks) write(`${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}`);
  const failed = report.checks.filter((c) => !c.ok).length;
  write(
    failed === 0 ? `spec valid (${report.checks.length} checks)` : `spec INVALID: ${failed} check(s) failed`,
  );
}
