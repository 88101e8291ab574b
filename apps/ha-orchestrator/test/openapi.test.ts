import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderOpenApi } from '../src/openapi.js';

describe('openapi.json', () => {
  it('matches the routes (regenerate with `pnpm --filter @upgrade/ha-orchestrator openapi`)', async () => {
    const checkedIn = readFileSync(new URL('../openapi.json', import.meta.url), 'utf8');
    expect(await renderOpenApi()).toBe(checkedIn);
  });

  it('describes every route of the API', async () => {
    const doc = JSON.parse(await renderOpenApi()) as {
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> } }>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/api/v1/upgrade/cancel/{id}',
        '/api/v1/upgrade/events',
        '/api/v1/upgrade/history',
        '/api/v1/upgrade/logs/{id}',
        '/api/v1/upgrade/package-policy',
        '/api/v1/upgrade/progress/{id}',
        '/api/v1/upgrade/rollback/{id}',
        '/api/v1/upgrade/trigger',
        '/health',
        '/healthz',
      ].sort(),
    );
    expect(Object.keys(doc.paths['/api/v1/upgrade/trigger']?.post?.requestBody?.content ?? {})).toEqual([
      'multipart/form-data',
    ]);
  });
});
