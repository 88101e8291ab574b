import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderOpenApi } from '../src/openapi.js';

describe('openapi.json', () => {
  it('matches the routes (regenerate with `pnpm --filter @upgrade/rcu-scheduler openapi`)', async () => {
    const checkedIn = readFileSync(new URL('../openapi.json', import.meta.url), 'utf8');
    expect(await renderOpenApi()).toBe(checkedIn);
  });

  it('describes every route of the API', async () => {
    const doc = JSON.parse(await renderOpenApi()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/api/events',
        '/api/hosts/failing',
        '/api/rounds',
        '/api/rounds/{id}',
        '/api/stats',
        '/api/status',
        '/api/trends',
        '/healthz',
      ].sort(),
    );
    expect(Object.keys(doc.paths['/api/rounds'] ?? {}).sort()).toEqual(['get', 'post']);
  });
});
