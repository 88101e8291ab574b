import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderOpenApi } from '../src/openapi.js';

describe('openapi.json', () => {
  it('matches the routes (regenerate with `pnpm --filter @upgrade/visiona-api openapi`)', async () => {
    const checkedIn = readFileSync(new URL('../openapi.json', import.meta.url), 'utf8');
    expect(await renderOpenApi()).toBe(checkedIn);
  });

  it('describes the API with the shared error envelope', async () => {
    const doc = JSON.parse(await renderOpenApi()) as {
      openapi: string;
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    for (const path of [
      '/api/auth/login',
      '/api/models',
      '/api/models/{id}',
      '/api/devices',
      '/api/devices/pairing-tokens',
      '/api/agent/pair',
      '/api/system/info',
      '/api/system/health',
      '/api/system/deps',
      '/healthz',
    ])
      expect(Object.keys(doc.paths)).toContain(path);
    expect(JSON.stringify(doc.paths['/api/auth/login']?.post?.responses['429'])).toContain('ErrorResponse');
    // /healthz answers visionA's probe body, not the kit's check list.
    expect(JSON.stringify(doc.paths['/healthz']?.get?.responses['503'])).toContain(
      '#/components/schemas/Healthz"',
    );
  });
});
