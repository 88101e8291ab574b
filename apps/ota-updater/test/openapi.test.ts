import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderOpenApi } from '../src/openapi.js';

describe('openapi.json', () => {
  it('matches the routes (regenerate with `pnpm --filter @upgrade/ota-updater openapi`)', async () => {
    const checkedIn = readFileSync(new URL('../openapi.json', import.meta.url), 'utf8');
    expect(await renderOpenApi()).toBe(checkedIn);
  });

  it('describes the device API routes', async () => {
    const doc = JSON.parse(await renderOpenApi()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/api/v1.0/cancel',
      '/api/v1.0/download',
      '/api/v1.0/progress',
      '/api/v1.0/update',
      '/api/v1.0/versions',
      '/healthz',
    ]);
  });
});
