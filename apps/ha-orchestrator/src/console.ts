// The operator console: the page the package build writes to dist/console, served at `/`, and the
// routes it reads besides the upgrade API (the live event stream, the package policy). This file
// sits directly under src/ so the path below is right both from src/ (tsx, tests) and from dist/.
import { fileURLToPath } from 'node:url';
import { registerStaticAssets, type ServiceApp } from '@upgrade/service';
import { consoleRoutes, type ConsoleRoutesDeps } from './http/console-routes.js';
import { registerEventRoutes, type EventsDeps } from './http/events.js';

export type ConsoleDeps = EventsDeps & ConsoleRoutesDeps;

export const CONSOLE_ROOT = fileURLToPath(new URL('../dist/console', import.meta.url));

export async function registerConsole(app: ServiceApp, deps: ConsoleDeps): Promise<void> {
  await registerStaticAssets(app, {
    root: CONSOLE_ROOT,
    missingHint: 'Build it with `pnpm --filter @upgrade/ha-orchestrator build`; the API works without it.',
  });
  registerEventRoutes(app, deps);
  await app.register(consoleRoutes, deps);
}
