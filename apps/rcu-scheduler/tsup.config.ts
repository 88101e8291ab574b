import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const CONSOLE_OUT = 'dist/console';

/** index.html names the hashed bundle files the browser build just wrote. */
function writeConsoleIndex(): void {
  const assets = readdirSync(`${CONSOLE_OUT}/assets`);
  const named = (ext: string): string => {
    const file = assets.find((name) => name.startsWith('app-') && name.endsWith(ext));
    if (file === undefined) throw new Error(`the console build wrote no app-*${ext}`);
    return file;
  };
  const html = readFileSync('console/index.html', 'utf8')
    .replace('__APP_JS__', named('.js'))
    .replace('__APP_CSS__', named('.css'));
  writeFileSync(`${CONSOLE_OUT}/index.html`, html);
}

export default defineConfig([
  {
    entry: ['src/cli.ts'],
    format: ['esm'],
    target: 'node20',
    sourcemap: true,
    // The console build writes into dist/console at the same time: keep it.
    clean: ['!console/**'],
  },
  {
    // The operator console: one script and one stylesheet, content-hashed so browsers keep them.
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
