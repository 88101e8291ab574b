// `spec:lint` and `spec:validate` over the two spec documents: spec/rcu-upgrade-flow.yaml (seed
// 000's UpgradeConfig, UpgradeLog, APIResponse) and spec/vendor-api.openapi.json (the vendor calls).
//
//   spec:lint                       both documents are well formed: parse (YAML without duplicate
//                                   keys), OpenAPI 3.1, every $ref resolves, every schema compiles
//                                   strictly and says what it is
//   spec:validate [--env-file F]    + the vendor fixtures, the upgrade_log table against UpgradeLog,
//                                   and the configuration (environment, ./.env, the service's .env;
//                                   or F) against UpgradeConfig and the start-up checks
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { getTableColumns } from 'drizzle-orm';
import { parseDocument } from 'yaml';
import { ConfigError } from '@upgrade/service';
import { VENDOR_SPEC_ID, createSpecAjv, describeSchemaErrors } from '../src/adapters/vendor-spec.js';
import { loadRcuConfig } from '../src/config.js';
import { upgradeLog } from '../src/db/schema.js';
import { OPERATOR_VARIABLES } from '../src/operator-env.js';
import {
  checkTopLevel,
  printReport,
  readJson,
  resolvePointer,
  validateSpec,
  type SpecCheck,
  type SpecReport,
} from './validate-spec.js';

const SPEC_DIR = fileURLToPath(new URL('../spec/', import.meta.url));
const PACKAGE_DIR = fileURLToPath(new URL('../', import.meta.url));
export const FLOW_SPEC_ID = 'https://rcu-scheduler.invalid/spec/rcu-upgrade-flow.yaml';
/** The example configuration in the operators' format, validated when no configuration is set. */
export const EXAMPLE_ENV = join(SPEC_DIR, 'examples', 'rcu-scheduler.env');

/** The structures seed 000 asks the spec to define. */
const SEED_SCHEMAS = ['UpgradeConfig', 'RoomType', 'HostList', 'FileNames', 'UpgradeLog', 'APIResponse'];
const VENDOR_FILE = 'vendor-api.openapi.json';

export interface SpecPaths {
  flowPath?: string;
  vendorPath?: string;
  fixturesDir?: string;
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

interface Inspection {
  checks: SpecCheck[];
  validators: Map<string, ValidateFunction>;
}

/** spec:lint: both documents, structure only. */
export function lintSpecs(paths: SpecPaths = {}): SpecReport {
  const { checks } = inspect(paths);
  return { ok: checks.every((c) => c.ok), checks };
}

function inspect(paths: SpecPaths): Inspection {
  const flowPath = paths.flowPath ?? join(SPEC_DIR, 'rcu-upgrade-flow.yaml');
  const vendorPath = paths.vendorPath ?? join(SPEC_DIR, VENDOR_FILE);
  const checks: SpecCheck[] = validateSpec({ specPath: vendorPath, fixtures: false }).checks.map((c) => ({
    ...c,
    name: `${VENDOR_FILE}: ${c.name}`,
  }));
  const validators = new Map<string, ValidateFunction>();
  const label = 'rcu-upgrade-flow.yaml';
  const pass = (name: string, detail: string): void =>
    void checks.push({ name: `${label}: ${name}`, ok: true, detail });
  const fail = (name: string, detail: string): void =>
    void checks.push({ name: `${label}: ${name}`, ok: false, detail });

  let doc: unknown;
  try {
    const parsed = parseDocument(readFileSync(flowPath, 'utf8'), { uniqueKeys: true, prettyErrors: true });
    const problems = [...parsed.errors, ...parsed.warnings].map((e) => e.message.split('\n')[0]);
    if (problems.length > 0) {
      fail('YAML parses', problems.join('; '));
      return { checks, validators };
    }
    doc = parsed.toJS() as unknown;
  } catch (error) {
    fail('YAML parses', error instanceof Error ? error.message : String(error));
    return { checks, validators };
  }
  if (!isObject(doc)) {
    fail('YAML parses', 'not a mapping');
    return { checks, validators };
  }
  pass('YAML parses', 'no duplicate keys');
  checkTopLevel(doc, pass, fail);

  const vendorDoc = readJson(vendorPath);
  const schemas = isObject(doc.components) && isObject(doc.components.schemas) ? doc.components.schemas : {};
  checkFlowRefs(doc, vendorDoc.ok ? vendorDoc.value : undefined, pass, fail);

  const missing = SEED_SCHEMAS.filter((name) => !(name in schemas));
  if (missing.length === 0) pass("seed 000's structures", SEED_SCHEMAS.join(', '));
  else fail("seed 000's structures", `missing in components.schemas: ${missing.join(', ')}`);

  const undocumented = Object.entries(schemas)
    .filter(
      ([, schema]) =>
        !isObject(schema) || typeof schema.description !== 'string' || schema.description === '',
    )
    .map(([name]) => name);
  if (undocumented.length === 0)
    pass('descriptions', `every one of ${Object.keys(schemas).length} schemas says what it is`);
  else fail('descriptions', `no description: ${undocumented.join(', ')}`);

  const ajv = createSpecAjv({ strictRequired: true });
  try {
    if (vendorDoc.ok) ajv.addSchema(vendorDoc.value as object, VENDOR_SPEC_ID);
    ajv.addSchema(doc, FLOW_SPEC_ID);
    for (const name of Object.keys(schemas)) {
      const validate = ajv.getSchema(`${FLOW_SPEC_ID}#/components/schemas/${name}`);
      if (validate === undefined) fail(`schema ${name} compiles`, 'ajv could not resolve it');
      else validators.set(name, validate);
    }
    if (validators.size === Object.keys(schemas).length)
      pass('schemas compile', `${validators.size} schemas (JSON Schema 2020-12, strict)`);
  } catch (error) {
    fail('schemas compile', error instanceof Error ? error.message : String(error));
  }
  return { checks, validators };
}

/** Local `#/...` refs and refs into the vendor spec (`vendor-api.openapi.json#/...`) must resolve. */
function checkFlowRefs(
  doc: Json,
  vendorDoc: unknown,
  pass: (name: string, detail: string) => void,
  fail: (name: string, detail: string) => void,
): void {
  const problems: string[] = [];
  let count = 0;
  const walk = (node: unknown, at: string): void => {
    if (Array.isArray(node)) node.forEach((child, i) => walk(child, `${at}/${i}`));
    if (!isObject(node)) return;
    for (const [key, value] of Object.entries(node)) {
      if (key !== '$ref' || typeof value !== 'string') {
        walk(value, `${at}/${key}`);
        continue;
      }
      count++;
      const [file, pointer = ''] = value.split('#');
      const target = file === '' ? doc : file === VENDOR_FILE ? vendorDoc : undefined;
      if (target === undefined) problems.push(`${at}: $ref ${value} points outside the two spec files`);
      else if (resolvePointer(target, pointer) === undefined)
        problems.push(`${at}: $ref ${value} resolves to nothing`);
    }
  };
  walk(doc, '#');
  if (problems.length === 0) pass('$refs resolve', `${count} $refs`);
  else fail('$refs resolve', problems.join('; '));
}

/** spec:validate: lint + fixtures + the upgrade_log table + the configuration. */
export function validateAll(
  paths: SpecPaths,
  config: { env: Record<string, string | undefined>; source: string },
): SpecReport {
  const { checks, validators } = inspect(paths);
  const add = (name: string, ok: boolean, detail: string): void => void checks.push({ name, ok, detail });

  // The vendor fixtures against their schemas, and every answer fixture against APIResponse.
  const vendorPath = paths.vendorPath ?? join(SPEC_DIR, VENDOR_FILE);
  const fixturesDir = paths.fixturesDir ?? join(vendorPath, '..', 'fixtures');
  const fixtures = validateSpec({ specPath: vendorPath, fixturesDir }).checks.filter((c) =>
    c.name.startsWith('fixture'),
  );
  checks.push(...fixtures);
  const apiResponse = validators.get('APIResponse');
  const index = readJson(join(fixturesDir, 'index.json'));
  if (apiResponse !== undefined && index.ok && isObject(index.value) && isObject(index.value.fixtures)) {
    const answers = Object.entries(index.value.fixtures).filter(
      ([, schema]) => schema === 'UpgradeV2Response' || schema === 'QueryUpdateHostProgressBarResponse',
    );
    const bad = answers.filter(([file]) => {
      const fixture = readJson(join(fixturesDir, file));
      return !fixture.ok || !apiResponse(fixture.value);
    });
    add(
      'fixtures as APIResponse',
      bad.length === 0,
      bad.length === 0
        ? `${answers.length} vendor answers`
        : `do not match APIResponse: ${bad.map(([f]) => f).join(', ')}`,
    );
  }

  // UpgradeLog must be the table: the same columns, the same NOT NULLs.
  const log = inspectUpgradeLog(paths);
  if (log !== undefined) {
    const columns = Object.values(getTableColumns(upgradeLog));
    const names = new Set(columns.map((c) => c.name));
    const properties = new Set(log.properties);
    const problems = [
      ...[...names].filter((n) => !properties.has(n)).map((n) => `column ${n} is not in UpgradeLog`),
      ...[...properties].filter((n) => !names.has(n)).map((n) => `UpgradeLog.${n} is not a column`),
      ...columns
        .filter((c) => c.notNull !== log.required.includes(c.name))
        .map(
          (c) =>
            `${c.name} is ${c.notNull ? 'NOT NULL' : 'nullable'} in the table, ${c.notNull ? 'optional' : 'required'} in UpgradeLog`,
        ),
    ];
    add(
      'UpgradeLog matches upgrade_log',
      problems.length === 0,
      problems.length === 0 ? `${names.size} columns` : problems.join('; '),
    );
  }

  // The configuration: the start-up checks, then the UpgradeConfig schema.
  const name = `configuration (${config.source})`;
  try {
    const loaded = loadRcuConfig(config.env);
    add(
      `${name}: start-up checks`,
      true,
      `${loaded.RCU_GROUPS.length} groups, ${loaded.FIRMWARE_FILES.length} files`,
    );
    const schema = validators.get('UpgradeConfig');
    if (schema === undefined) add(`${name}: UpgradeConfig`, false, 'the spec has no compiled UpgradeConfig');
    else if (schema(JSON.parse(JSON.stringify(loaded)))) add(`${name}: UpgradeConfig`, true, 'matches');
    else add(`${name}: UpgradeConfig`, false, describeSchemaErrors(schema.errors ?? []));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const issue of error.issues) add(`${name}: ${issue.variable}`, false, issue.message);
  }
  return { ok: checks.every((c) => c.ok), checks };
}

function inspectUpgradeLog(paths: SpecPaths): { properties: string[]; required: string[] } | undefined {
  try {
    const doc = parseDocument(
      readFileSync(paths.flowPath ?? join(SPEC_DIR, 'rcu-upgrade-flow.yaml'), 'utf8'),
    ).toJS() as unknown;
    const schema = resolvePointer(doc, '/components/schemas/UpgradeLog');
    if (!isObject(schema) || !isObject(schema.properties)) return undefined;
    return {
      properties: Object.keys(schema.properties),
      required: Array.isArray(schema.required)
        ? schema.required.filter((r): r is string => typeof r === 'string')
        : [],
    };
  } catch {
    return undefined; // the lint checks have said why
  }
}

/** Variables that make a configuration: without any of them, the example is checked instead. */
const CONFIG_VARIABLES = [
  'RCU_GROUPS',
  'FIRMWARE_FILES',
  'VENDOR_BASE_URL',
  'VENDOR_USERNAME',
  ...OPERATOR_VARIABLES,
];

/**
 * The configuration to check: `--env-file F` alone, else what the service would read (environment,
 * ./.env, the service's .env), else the example in the operators' format.
 */
export function configToValidate(args: readonly string[]): {
  env: Record<string, string | undefined>;
  source: string;
} {
  const flag = args.indexOf('--env-file');
  if (flag !== -1) {
    const file = args[flag + 1];
    if (file === undefined || !existsSync(file))
      throw new Error(`--env-file needs an existing file (got ${file ?? 'nothing'})`);
    return { env: { ...parseEnv(readFileSync(file, 'utf8')) }, source: file };
  }
  const env: Record<string, string | undefined> = { ...process.env };
  const files = [join(process.cwd(), '.env'), join(PACKAGE_DIR, '.env')].filter(
    (f, i, all) => all.indexOf(f) === i && existsSync(f),
  );
  for (const file of files)
    for (const [key, value] of Object.entries(parseEnv(readFileSync(file, 'utf8')))) env[key] ??= value;
  if (CONFIG_VARIABLES.some((v) => env[v] !== undefined && env[v] !== ''))
    return { env, source: ['environment', ...files.map((f) => relative(process.cwd(), f) || f)].join(' + ') };
  return {
    env: { ...parseEnv(readFileSync(EXAMPLE_ENV, 'utf8')) },
    source: `no configuration set; the example ${relative(process.cwd(), EXAMPLE_ENV)}`,
  };
}

/** `--spec-dir DIR`: another folder holding the two documents and fixtures/ (default spec/). */
function specPaths(args: readonly string[]): SpecPaths {
  const flag = args.indexOf('--spec-dir');
  const dir = flag === -1 ? undefined : args[flag + 1];
  if (dir === undefined) return {};
  return {
    flowPath: join(dir, 'rcu-upgrade-flow.yaml'),
    vendorPath: join(dir, VENDOR_FILE),
    fixturesDir: join(dir, 'fixtures'),
  };
}

/** `spec:validate [--spec-dir DIR] [--env-file FILE]`; returns the exit code. */
export function runValidateCli(args: readonly string[]): number {
  const report = validateAll(specPaths(args), configToValidate(args));
  printReport(report);
  return report.ok ? 0 : 1;
}

/** `spec:lint [--spec-dir DIR]`; returns the exit code. */
export function runLintCli(args: readonly string[]): number {
  const report = lintSpecs(specPaths(args));
  printReport(report);
  return report.ok ? 0 : 1;
}
