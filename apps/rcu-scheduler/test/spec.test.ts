// spec:lint and spec:validate: pass on the real documents and the example configuration, fail on a
// broken spec, a spec that drifted from the upgrade_log table, and a broken configuration.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRcuConfig } from '../src/config.js';
import { EXAMPLE_ENV, lintSpecs, validateAll } from '../scripts/flow-spec.js';
import { tempDir } from './helpers.js';

const SPEC = fileURLToPath(new URL('../spec', import.meta.url));
const TSX = createRequire(import.meta.url).resolve('tsx/cli');
const dirs: ReturnType<typeof tempDir>[] = [];
afterAll(() => dirs.forEach((d) => d.remove()));

/** A copy of spec/ with the flow document edited. */
function specCopy(edit: (yaml: string) => string = (y) => y): string {
  const dir = tempDir('rcu-spec-');
  dirs.push(dir);
  cpSync(SPEC, dir.path, { recursive: true });
  const file = join(dir.path, 'rcu-upgrade-flow.yaml');
  writeFileSync(file, edit(readFileSync(file, 'utf8')));
  return dir.path;
}

const paths = (dir: string) => ({
  flowPath: join(dir, 'rcu-upgrade-flow.yaml'),
  vendorPath: join(dir, 'vendor-api.openapi.json'),
  fixturesDir: join(dir, 'fixtures'),
});
const failed = (report: { checks: { ok: boolean; name: string; detail: string }[] }) =>
  report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
const example = () => ({ env: { ...parseEnv(readFileSync(EXAMPLE_ENV, 'utf8')) }, source: 'example' });

function script(name: string, args: string[]): { code: number; stdout: string } {
  const result = spawnSync(process.execPath, [TSX, join(SPEC, '..', 'scripts', name), ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '' },
    cwd: tempDir('rcu-spec-cwd-').path,
  });
  return { code: result.status ?? -1, stdout: result.stdout };
}

describe('spec:lint', () => {
  it('passes on the two spec documents', () => {
    expect(failed(lintSpecs())).toEqual([]);
  });

  it('fails on a duplicate key, a dangling $ref, a missing seed structure and a schema without description', () => {
    const duplicate = specCopy((y) => y.replace('openapi: 3.1.0', 'openapi: 3.1.0\nopenapi: 3.1.1'));
    expect(failed(lintSpecs(paths(duplicate)))[0]).toMatch(
      /^rcu-upgrade-flow\.yaml: YAML parses: Map keys must be unique/,
    );

    const dangling = specCopy((y) =>
      y.replace("'#/components/schemas/FileNames'", "'#/components/schemas/FileNamez'"),
    );
    expect(failed(lintSpecs(paths(dangling)))).toContainEqual(
      expect.stringMatching(/\$refs resolve: .*\$ref #\/components\/schemas\/FileNamez resolves to nothing/),
    );

    const missing = specCopy((y) => y.replace('    UpgradeLog:', '    UpgradeLogs:'));
    expect(failed(lintSpecs(paths(missing)))).toContainEqual(
      "rcu-upgrade-flow.yaml: seed 000's structures: missing in components.schemas: UpgradeLog",
    );

    const silent = specCopy((y) => y.replace(/ {6}description: The vendor's room type id[^\n]*\n/, ''));
    expect(failed(lintSpecs(paths(silent)))).toContainEqual(
      'rcu-upgrade-flow.yaml: descriptions: no description: RoomType',
    );
  });

  it('exits 1 naming the problem as a command, 0 on the real spec', () => {
    const broken = specCopy((y) => y.replace("'#/components/schemas/Host'", "'#/components/schemas/Hots'"));
    const bad = script('lint-spec.ts', ['--spec-dir', broken]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/FAIL rcu-upgrade-flow\.yaml: \$refs resolve: .*Hots resolves to nothing/);
    expect(bad.stdout.trim().split('\n').at(-1)).toMatch(/^spec INVALID: \d+ check\(s\) failed$/);
    expect(script('lint-spec.ts', []).code).toBe(0);
  });
});

describe('spec:validate', () => {
  it('passes on the spec, its fixtures, the upgrade_log table and the example configuration', () => {
    expect(failed(validateAll({}, example()))).toEqual([]);
  });

  it('fails when UpgradeLog drifts from the upgrade_log table', () => {
    const drifted = specCopy((y) =>
      y
        .replace(/ {8}firmware_version:\n {10}type: \[string, 'null'\]\n/, '')
        .replace('required: [id, start_time', 'required: [id, uuid, start_time'),
    );
    expect(failed(validateAll(paths(drifted), example()))).toEqual([
      'UpgradeLog matches upgrade_log: column firmware_version is not in UpgradeLog; uuid is nullable in the table, required in UpgradeLog',
    ]);
  });

  it('fails on a configuration the service would refuse, naming the entry, as a command with exit 1', () => {
    const dir = tempDir('rcu-env-');
    dirs.push(dir);
    const file = join(dir.path, 'broken.env');
    writeFileSync(
      file,
      readFileSync(EXAMPLE_ENV, 'utf8')
        .replace(
          'host_list_str=["192.168.10.11,192.168.10.12","192.168.11.21"]',
          'host_list_str=["192.168.10.11,192.168.10.12","192.168.10.12"]',
        )
        .replace('VENDOR_BASE_URL=http://127.0.0.1:9000/api', 'VENDOR_BASE_URL='),
    );
    const result = script('spec-validate.ts', ['--env-file', file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`FAIL configuration (${file}): VENDOR_BASE_URL: is required but not set`);

    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace('VENDOR_BASE_URL=', 'VENDOR_BASE_URL=http://127.0.0.1:9000/api'),
    );
    const hosts = failed(validateAll({}, { env: { ...parseEnv(readFileSync(file, 'utf8')) }, source: 'f' }));
    expect(hosts).toEqual([
      'configuration (f): RCU_GROUPS (from roomtype_id / host_list_str): host 192.168.10.12 is in roomTypeId 12 and roomTypeId 15; a host belongs to one room type (it would be upgraded twice a round)',
    ]);
  });
});

describe("the operators' .env format", () => {
  it('reads the example into the same groups and files as the JSON format', () => {
    const config = loadRcuConfig(example().env);
    expect(config.RCU_GROUPS).toEqual([
      { roomTypeId: 12, hosts: ['192.168.10.11', '192.168.10.12'] },
      { roomTypeId: 15, hosts: ['192.168.11.21'] },
    ]);
    expect(config.FIRMWARE_FILES).toEqual([
      { filename: 'RCU_V2.3.1.bin', fileType: 1 },
      { filename: 'RCU_V2.4.0.bin', fileType: 1 },
    ]);
  });

  it('takes names with file_type, and comma lists of room types', () => {
    const config = loadRcuConfig({
      ...example().env,
      roomtype_id: '12, 15',
      fileName: '["A.bin","B.bin"]',
      file_type: '2',
    });
    expect(config.RCU_GROUPS.map((g) => g.roomTypeId)).toEqual([12, 15]);
    expect(config.FIRMWARE_FILES).toEqual([
      { filename: 'A.bin', fileType: 2 },
      { filename: 'B.bin', fileType: 2 },
    ]);
  });

  it('names what is wrong: unequal arrays, both formats at once, names without a type', () => {
    const issues = (env: Record<string, string>) => {
      try {
        loadRcuConfig({ ...example().env, ...env });
        return [];
      } catch (error) {
        return (error as { issues: { variable: string; message: string }[] }).issues.map(
          (i) => `${i.variable}: ${i.message}`,
        );
      }
    };
    expect(issues({ roomtype_id: '[12,15,18]' })).toEqual([
      'host_list_str: has 2 entries but roomtype_id has 3; give one host list per room type',
      'RCU_GROUPS: is required but not set',
    ]);
    expect(issues({ RCU_GROUPS: '[{"roomTypeId":1,"hosts":["a"]}]' })).toContain(
      'RCU_GROUPS: is set together with roomtype_id / host_list_str; keep one of the two formats',
    );
    expect(issues({ fileName: '["A.bin","B.bin"]' })).toContain(
      'file_type: is required when fileName lists names (or give ["A.bin", <type>] pairs)',
    );
  });
});

describe('pm2.json', () => {
  it("starts the built CLI from the service's folder, does not restart a configuration error, and logs under logs/", () => {
    const root = join(SPEC, '..');
    const file = JSON.parse(readFileSync(join(root, 'pm2.json'), 'utf8')) as {
      apps: {
        name: string;
        cwd: string;
        script: string;
        args: string;
        stop_exit_codes: number[];
        out_file: string;
        error_file: string;
        env: Record<string, string>;
      }[];
    };
    const [app] = file.apps;
    expect(app).toMatchObject({ name: 'rcu-scheduler', cwd: '.', script: 'dist/cli.js', args: 'serve' });
    expect(existsSync(join(root, app?.script ?? ''))).toBe(true);
    expect(app?.stop_exit_codes).toContain(2);
    expect([app?.out_file, app?.error_file]).toEqual([
      'logs/rcu-scheduler.out.log',
      'logs/rcu-scheduler.err.log',
    ]);
    expect(app?.env.NODE_ENV).toBe('production');
  });
});
