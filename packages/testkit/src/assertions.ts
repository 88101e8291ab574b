import { isUpgradeError, type UpgradeError } from '@upgrade/core';

/** The UpgradeError a promise rejects with, for assertions on code, status and message. */
export async function rejectionOf(promise: Promise<unknown>): Promise<UpgradeError> {
  try {
    await promise;
  } catch (error) {
    if (isUpgradeError(error)) return error;
    throw new Error(`expected an UpgradeError, got ${String(error)}`, { cause: error });
  }
  throw new Error('expected a rejection');
}

/**
 * Resolves once `condition` holds, checking every `intervalMs`; rejects after `timeoutMs`. For
 * waiting on another process or a real socket, where no fake clock can help.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) {
      throw new Error(`${options.what ?? 'condition'} not met within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 10));
  }
}
