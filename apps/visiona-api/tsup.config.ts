import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** The commit being built, as /api/system/info reports it; "dev" where git or the repository is missing. */
function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return /^[0-9a-f]{7,40}$/.test(commit) ? commit : 'dev';
  } catch {
    return 'dev';
  }
}

export default defineConfig({
  // cli: the service; agent-cli: the reference device agent (visiona-agent); index: the library
  // (stores, ports) other packages and tests import.
  entry: ['src/cli.ts', 'src/agent-cli.ts', 'src/index.ts'],
  format: ['esm'],
  target: 'node20',
  sourcemap: true,
  clean: true,
  // The release version (logs, OpenAPI) and the commit (/api/system/info) this build was made from.
  define: {
    __VISIONA_API_VERSION__: JSON.stringify(pkg.version),
    __VISIONA_API_COMMIT__: JSON.stringify(gitCommit()),
  },
  // The migrations travel inside the build: dist/ alone can run `migrate` and `serve`.
  onSuccess: async () => {
    cpSync('drizzle', 'dist/drizzle', { recursive: true });
  },
});
