// The API description as checked in at openapi.json: built from the real routes, with adapters
// that are never called (building the document runs no handler).
import { UpgradeError } from '@upgrade/core';
import { formatOpenApi, generateOpenApi } from '@upgrade/service';
import { buildApp } from './app.js';

const unused = (): never => {
  throw new UpgradeError('INTERNAL', 'not available while generating the API description');
};

/** openapi.json's exact text. */
export async function renderOpenApi(): Promise<string> {
  const app = await buildApp({
    tasks: {
      create: unused,
      get: unused,
      list: unused,
      update: unused,
      active: unused,
      claimLease: unused,
      renewLease: unused,
      releaseLease: unused,
      writeJournal: unused,
      readJournal: unused,
    },
    audit: { logs: unused, steps: unused },
    runner: { start: unused, cancel: unused, lease: { owner: 'openapi', ttlMs: 1 } },
    restore: unused,
    nodeVersions: unused,
    packages: {
      workDir: '/nonexistent',
      keys: [],
      maxPackageBytes: 1,
      unpackLimits: { maxEntries: 1, maxEntryBytes: 1, maxTotalBytes: 1 },
    },
    now: () => 0,
    auth: { tokens: [], allowedIps: [] },
    health: {
      database: { name: 'database', check: unused },
      nodes: [],
      timeoutMs: 1,
      tasks: { active: unused },
      audit: { steps: unused },
      config: { get: unused },
      now: () => 0,
    },
    requestLog: { record: unused },
    logger: false,
  });
  try {
    return formatOpenApi(await generateOpenApi(app));
  } finally {
    await app.close();
  }
}
