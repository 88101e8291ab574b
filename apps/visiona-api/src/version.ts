// The service's name and versions. The build writes them in (tsup `define`): the release version
// from package.json and the git commit the build was made from. Running from source (tsx, vitest)
// reads the release version from package.json, which sits one level up from src/ and dist/ alike,
// and reports the commit as "dev".
import { readFileSync } from 'node:fs';

declare const __VISIONA_API_VERSION__: string | undefined;
declare const __VISIONA_API_COMMIT__: string | undefined;

/** The service's name, as reported by logs, metrics and the OpenAPI document. */
export const SERVICE_NAME = 'visiona-api';

/** The name `/api/system/info` reports, the one visionA clients know the API server by. */
export const API_SERVER_NAME = 'visiona-api-server';

/** The release version of this build (logs, OpenAPI). */
export const SERVICE_VERSION: string =
  typeof __VISIONA_API_VERSION__ === 'string' ? __VISIONA_API_VERSION__ : versionFromPackage();

/**
 * The git commit this build was made from, as `/api/system/info` reports it: "dev" when running
 * from source or when the build had no git to ask.
 */
export const BUILD_COMMIT: string =
  typeof __VISIONA_API_COMMIT__ === 'string' ? __VISIONA_API_COMMIT__ : 'dev';

function versionFromPackage(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version?: unknown;
  };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}
