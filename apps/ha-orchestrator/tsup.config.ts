import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const CONSOLE_OUT = 'dist/console';

/**
 * index.html names the page's files as `assets/app.js` and `assets/app.css`; the build gives them
 * a content hash (cached for a year by the server), so the copy in dist/console names those.
 */
function writeConsoleIndex(): void {
  const assets = readdirSync(`${CONSOLE_OUT}/assets`);
  const find = (ext: string): string => {
    const name = assets.find((file) => file.startsWith('app-') && file.endsWith(ext));
    if (name === undefined) throw new Error(`the console build wrote no app-*${ext}`);
    return name;
  };
  const html = readFileSync('console/index.html', 'utf8')
    .replace('assets/app.js', `assets/${find('.js')}`)
    .replace('assets/app.css', `assets/${find('.css')}`);
  writeFileSync(`${CONSOLE_OUT}/index.html`, html);
}

// No `clean` on the node builds: they run side by side and one must not empty dist/ under the
// other. The console build cleans only its own dist/console/assets.
export default defineConfig([
  {
    entry: { index: 'src/index.ts', cli: 'src/cli.ts' },
    format: ['esm'],
    target: 'node20',
    sourcemap: true,
  },
  {
    // The node agent is copied to each node on its own: one file, @upgrade/core bundled in, only
    // Node built-ins at run time.
    entry: { agent: 'src/agent/cli.ts' },
    format: ['esm'],
    target: 'node20',
    sourcemap: true,
    noExternal: ['@upgrade/core'],
  },
  {
    // The operator console (console/): one script and one stylesheet for the browser.
    entry: { app: 'console/main.ts' },
    outDir: `${CONSOLE_OUT}/assets`,
    platform: 'browser',
    format: ['iife'],
    target: 'es2022',
    minify: true,
    sourcemap: true,
    clean: true,
    noExternal: [/.*/],
    tsconfig: 'console/tsconfig.json',
    outExtension: () => ({ js: '.js' }),
    esbuildOptions(options) {
      options.entryNames = '[name]-[hash]';
    },
    onSuccess: async () => writeConsoleIndex(),
  },
]);
