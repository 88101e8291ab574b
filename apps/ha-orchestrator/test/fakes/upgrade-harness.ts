// Wiring of the flow tests: the fake pair, the memory stores, a package on disk and a FakeClock
// that `drive` moves forward whenever the flow waits, so nothing sleeps for real.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '@upgrade/core';
import {
  DEFAULT_SAFETY_SETTINGS,
  DEFAULT_UPGRADE_CONFIG,
  type FlowConfig,
  type LeaseRequest,
  type UpgradePackage,
  type UpgradeTask,
} from '../../src/ports.js';
import { runRollingUpgrade, type UpgradeDeps } from '../../src/rolling-upgrade.js';
import { createMemoryAuditTrail, createMemoryTaskStore } from '../../src/stores/memory.js';
import {
  createFakeCluster,
  jarContent,
  sha256,
  type FakeCluster,
  type FakeClusterOptions,
} from './fake-cluster.js';

export const FROM_VERSION = '1.0.0';
export const TO_VERSION = '2.0.0';

export interface Harness {
  clock: FakeClock;
  fake: FakeCluster;
  deps: UpgradeDeps;
  pkg: UpgradePackage;
  /** Creates the next task (IDLE), as POST /trigger does. */
  /** A new IDLE task for `pkg`, leased to `lease` when given (as the API creates it for a runner). */
  newTask(lease?: LeaseRequest): Promise<UpgradeTask>;
  /** Creates a task and runs the whole upgrade under the fake clock. */
  upgrade(signal?: AbortSignal): Promise<UpgradeTask>;
  cleanup(): void;
}

export interface HarnessOptions {
  config?: Partial<FlowConfig>;
  cluster?: Partial<Omit<FakeClusterOptions, 'clock'>>;
  /** Number of schema scripts in the package. Default 1. */
  scripts?: number;
}

export function createHarness(options: HarnessOptions = {}): Harness {
  const clock = new FakeClock();
  const fake = createFakeCluster({ clock, version: FROM_VERSION, ...options.cluster });
  const tasks = createMemoryTaskStore({ clock });
  const audit = createMemoryAuditTrail();
  const config: FlowConfig = { ...DEFAULT_UPGRADE_CONFIG, ...DEFAULT_SAFETY_SETTINGS, ...options.config };
  const deps: UpgradeDeps = { cluster: fake.cluster, tasks, audit, config, clock };
  const pkg = writePackage(TO_VERSION, options.scripts ?? 1);
  let n = 0;
  const newTask = (lease?: LeaseRequest): Promise<UpgradeTask> =>
    tasks.create({
      id: `t${++n}`,
      toVersion: pkg.version,
      packageSha256: pkg.packageSha256,
      requestedBy: 'test',
      ...(lease === undefined ? {} : { lease }),
    });
  return {
    clock,
    fake,
    deps,
    pkg,
    newTask,
    async upgrade(signal = new AbortController().signal) {
      const task = await newTask();
      return drive(clock, runRollingUpgrade(deps, task, pkg, signal));
    },
    cleanup: () => rmSync(pkg.workDir, { recursive: true, force: true }),
  };
}

/** An unpacked package: the jar and `scripts` schema scripts in a temp dir. */
export function writePackage(version: string, scripts: number): UpgradePackage {
  const workDir = mkdtempSync(join(tmpdir(), 'ha-flow-'));
  const jar = jarContent(version);
  const jarPath = join(workDir, 'app.jar');
  writeFileSync(jarPath, jar);
  mkdirSync(join(workDir, 'sql'));
  const schemaScripts = Array.from({ length: scripts }, (_, i) => {
    const content = `alter table jobs add column c${i + 1} int; -- ${version}\n`;
    const path = join(workDir, 'sql', `${String(i + 1).padStart(3, '0')}.sql`);
    writeFileSync(path, content);
    const undo = `alter table jobs drop column if exists c${i + 1}; -- ${version}\n`;
    const rollbackPath = join(workDir, 'sql', `${String(i + 1).padStart(3, '0')}.rollback.sql`);
    writeFileSync(rollbackPath, undo);
    return {
      path,
      sha256: sha256(content),
      rollback: { path: rollbackPath, sha256: sha256(undo), content: undo },
    };
  });
  return {
    version,
    jarPath,
    jarSha256: sha256(jar),
    schemaScripts,
    packageSha256: sha256(`package ${version}`),
    workDir,
  };
}

/**
 * Waits for `promise`, moving the fake clock to the next sleeper whenever the code under test
 * waits on it; a real millisecond is yielded only when nothing sleeps (file I/O in flight).
 */
export async function drive<T>(
  clock: FakeClock,
  promise: Promise<T>,
  limitMs = 24 * 60 * 60_000,
): Promise<T> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  const end = clock.now() + limitMs;
  while (!settled) {
    if (clock.now() > end) throw new Error(`not settled within ${limitMs} ms of fake time`);
    const fired = await clock.tick();
    if (!fired && !settled) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return promise;
}
