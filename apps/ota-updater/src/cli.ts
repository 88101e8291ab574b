#!/usr/bin/env node
// ota-updater [serve] | watch [--url URL] [--interval MS] | help
import { EXIT_CODES, loadDotenv, runMain } from '@upgrade/service';
import { loadOtaConfig } from './config.js';
import { startOtaUpdater } from './main.js';
import { watchProgress } from './watch.js';

const USAGE = `usage: ota-updater [command]

commands:
  serve                        run the OTA service (default)
  watch [--url URL] [--interval MS]
                               follow GET /api/v1.0/progress with a progress bar until the update ends
                               (default URL http://127.0.0.1:12315, interval 500 ms)
  help                         this text

configuration comes from the environment and ./.env; see .env.example`;

async function main(argv: string[]): Promise<void> {
  loadDotenv();
  const [command = 'serve', ...rest] = argv;
  switch (command) {
    case 'serve':
      await startOtaUpdater(loadOtaConfig());
      return;
    case 'watch': {
      let url = 'http://127.0.0.1:12315';
      let interval = 500;
      for (let i = 0; i < rest.length; i++) {
        if (rest[i] === '--url') url = rest[++i] ?? usageError('--url needs a value');
        else if (rest[i] === '--interval') interval = Number(rest[++i]);
        else usageError(`unknown option "${rest[i]}"`);
      }
      if (!Number.isInteger(interval) || interval < 50)
        usageError('--interval needs a whole number of milliseconds >= 50');
      process.exitCode = await watchProgress({ url, intervalMs: interval, out: process.stdout });
      return;
    }
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return;
    default:
      usageError(`unknown command "${command}"`);
  }
}

/** Bad arguments: one readable line, the usage, exit code 2. */
function usageError(message: string): never {
  process.stderr.write(`ota-updater: ${message}\n\n${USAGE}\n`);
  process.exit(EXIT_CODES.config);
}

await runMain(() => main(process.argv.slice(2)));
