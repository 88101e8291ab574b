// The service's name and version. The build writes the version in (tsup `define`); running from
// source (tsx, vitest) reads it from package.json, which sits one level up from src/ and dist/ alike.
import { readFileSync } from 'node:fs';

declare const __VISIONA_API_VERSION__: string | undefined;

/** The service's name, as reported by logs, `/api/system/info` and the OpenAPI document. */
export const SERVICE_NAME = 'visiona-api';

/** The release version of this build. */
export const SERVICE_VERSION: string =
  typeof __VISIONA_API_VERSION__ === 'string' ? __VISIONA_API_VERSION__ : versionFromPackage();

function versionFromPackage(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version?: unknown;
  };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}
