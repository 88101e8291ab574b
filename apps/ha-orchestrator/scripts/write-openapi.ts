// Regenerates openapi.json from the routes: `pnpm --filter @upgrade/ha-orchestrator openapi`.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderOpenApi } from '../src/openapi.js';

const target = fileURLToPath(new URL('../openapi.json', import.meta.url));
writeFileSync(target, await renderOpenApi());
console.log(`wrote ${target}`);
