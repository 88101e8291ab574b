import { inspect } from 'node:util';
import { isConfigError } from './config.js';

/** Exit codes of a service process, for runbooks and supervisors. */
export const EXIT_CODES = { ok: 0, failure: 1, config: 2 } as const;

/** Seams for tests; production uses the real process. */
export interface RunMainOptions {
  /** Injected in tests; the real one ends the process. */
  exit?: (code: number) => void;
  stderr?: { write(text: string): unknown };
}

/**
 * Runs a service's start-up. A configuration error prints its one readable message (no stack) and
 * exits with 2, so supervisors and operators can tell "fix the env" from "the code crashed" (1).
 * `main` may be sync or async. Resolves once it has settled; never rejects. Await it at the top level of `main.ts`.
 *
 * @example await runMain(async () => { const config = loadConfig(Env); await listenAndServe(await buildApp(config), config) })
 */
export async function runMain(main: () => unknown, options: RunMainOptions = {}): Promise<void> {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const stderr = options.stderr ?? process.stderr;
  try {
    await main();
  } catch (error) {
    if (isConfigError(error)) {
      stderr.write(`${error.message}\n`);
      exit(EXIT_CODES.config);
      return;
    }
    // inspect keeps the stack and the cause chain: this is a crash, the operator needs all of it.
    stderr.write(`fatal: ${inspect(error)}\n`);
    exit(EXIT_CODES.failure);
  }
}
