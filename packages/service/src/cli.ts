// The command-line shell every service's `cli.ts` shares: `.env`, the command dispatch with
// `serve` as the default, help, and bad arguments as one readable line plus the usage, exit 2.
import { installCrashPolicy } from './crash-policy.js';
import { loadDotenv } from './dotenv.js';
import { EXIT_CODES, runMain, type RunMainOptions } from './run-main.js';

/** Bad command-line arguments; `runCli` prints the message and the usage and exits with 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Throws a UsageError: for a command's argument checks (`rest[0] ?? usageError('...')`). */
export function usageError(message: string): never {
  throw new UsageError(message);
}

/** A command receives the arguments after its name. */
export type CliCommand = (args: string[]) => unknown;

export interface CliSpec {
  /** Program name, the prefix of error lines (`rcu-scheduler: unknown command "x"`). */
  name: string;
  /** The help text, printed by `help` / `--help` / `-h` and after every usage error. */
  usage: string;
  commands: Record<string, CliCommand>;
  /** Run when no command is given (default `serve`). */
  defaultCommand?: string;
  /** The service's version, on the crash line. */
  version?: string;
}

export interface RunCliOptions extends RunMainOptions {
  /** Default: process.argv.slice(2). */
  argv?: readonly string[];
  stdout?: { write(text: string): unknown };
  /** Default: `.env` in the working directory (see loadDotenv). */
  dotenvPath?: string;
  /**
   * Install the process crash policy (installCrashPolicy) under `spec.name`. Default true; tests
   * that run a CLI inside the test runner's own process pass false.
   */
  crashPolicy?: boolean;
}

const HELP = new Set(['help', '--help', '-h']);

/**
 * Runs a service CLI under runMain (configuration errors exit 2, crashes 1): installs the crash
 * policy (an unhandled rejection or uncaught exception: one JSON line, exit 1), loads `.env`, picks
 * the command, prints the usage for help, and turns a UsageError into one line + usage + exit 2.
 *
 * @example await runCli({ name: 'rcu-scheduler', usage: USAGE, commands: { serve: () => start(loadRcuConfig()) } })
 */
export async function runCli(spec: CliSpec, options: RunCliOptions = {}): Promise<void> {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const stderr = options.stderr ?? process.stderr;
  const stdout = options.stdout ?? process.stdout;
  const [command = spec.defaultCommand ?? 'serve', ...rest] = options.argv ?? process.argv.slice(2);
  if (options.crashPolicy !== false) {
    installCrashPolicy({
      service: spec.name,
      ...(spec.version === undefined ? {} : { version: spec.version }),
    });
  }
  await runMain(
    async () => {
      try {
        loadDotenv(options.dotenvPath);
        if (HELP.has(command)) {
          stdout.write(`${spec.usage}\n`);
          return;
        }
        const run = Object.hasOwn(spec.commands, command) ? spec.commands[command] : undefined;
        if (run === undefined) usageError(`unknown command "${command}"`);
        await run(rest);
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        stderr.write(`${spec.name}: ${error.message}\n\n${spec.usage}\n`);
        exit(EXIT_CODES.config);
      }
    },
    { exit, stderr },
  );
}
