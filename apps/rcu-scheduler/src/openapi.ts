// The API description as checked in at openapi.json: built from the real routes, with adapters
// that are never called (building the document runs no handler).
import { formatOpenApi, generateOpenApi } from '@upgrade/service';
import { UpgradeError } from '@upgrade/core';
import { buildApp } from './app.js';

const unused = (): never => {
  throw new UpgradeError('INTERNAL', 'not available while generating the API description');
};

/** openapi.json's exact text. */
export async function renderOpenApi(): Promise<string> {
  const app = await buildApp({
    queries: { listRounds: unused, getRound: unused, stats: unused },
    store: { loadRotation: unused },
    scheduler: { startManualRound: unused, running: null, nextTickAt: null },
    trends: { trends: unused, failingHosts: unused },
    live: { current: () => null, subscribe: unused },
    files: [],
    repeats: 2,
    now: () => 0,
    healthChecks: [],
    logger: false,
  });
  try {
    return formatOpenApi(await generateOpenApi(app));
  } finally {
    await app.close();
  }
}
