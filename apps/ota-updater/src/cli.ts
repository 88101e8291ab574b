#!/usr/bin/env node
// ota-updater [serve] | watch [--url URL] [--interval MS] | help
import { runCli, usageError } from './cli-shell.js';
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

async function runWatch(args: string[]): Promise<void> {
  let url = 'http://127.0.0.1:12315';
  let interval = 500;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--url') url = args[++i] ?? usageError('--url needs a value');
    else if (args[i] === '--interval') interval = Number(args[++i]);
    else usageError(`unknown option "${args[i]}"`);
  }
  if (!Number.isInteger(interval) || interval < 50)
    usageError('--interval needs a whole number of milliseconds >= 50');
  process.exitCode = await watchProgress({ url, intervalMs: interval, out: process.stdout });
}

await runCli({
  name: 'ota-updater',
  usage: USAGE,
  commands: { serve: () => startOtaUpdater(loadOtaConfig()), watch: runWatch },
});
