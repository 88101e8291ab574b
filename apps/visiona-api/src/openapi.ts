// The API description as checked in at openapi.json: built from the real routes over memory
// stores (building the document runs no handler).
import { FakeClock } from '@upgrade/core';
import { formatOpenApi, generateOpenApi } from '@upgrade/service';
import { buildApp } from './app.js';
import { createMemoryStores } from './stores/index.js';
import { createMemoryUserSessionStore } from './stores/user-sessions.memory.js';

/** openapi.json's exact text. */
export async function renderOpenApi(): Promise<string> {
  const clock = new FakeClock();
  const app = await buildApp({
    stores: createMemoryStores(clock),
    sessions: createMemoryUserSessionStore({ idleMs: 3_600_000, absoluteMs: 86_400_000 }, clock),
    healthChecks: [],
    settings: {
      cookie: { name: 'visiona_session', secure: true, maxAgeMs: 86_400_000 },
      loginRateLimit: { max: 5, windowMs: 60_000 },
      pairingCodeTtlMs: 600_000,
      phase: 'beta',
    },
    clock,
    logger: false,
  });
  try {
    return formatOpenApi(await generateOpenApi(app));
  } finally {
    await app.close();
  }
}
