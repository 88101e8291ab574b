// What a log line says of an error: its stable code and its message on one line. Never the
// stack: a warning about a device API that is down or a unit that fails its health check is an
// operating condition, and the code + message say all a technician can act on.
import { isUpgradeError } from '@upgrade/core';

/** `{ code, reason }` for a log line's fields: UpgradeError code, errno code (ENOENT...) or `ERROR`. */
export function errorLogFields(error: unknown): { code: string; reason: string } {
  const raw = (error as { code?: unknown } | null)?.code;
  const code = isUpgradeError(error) ? error.code : typeof raw === 'string' ? raw : 'ERROR';
  const message = error instanceof Error ? error.message : String(error);
  return { code, reason: message.replace(/\s*\n\s*/g, ' ') };
}
