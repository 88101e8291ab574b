// The progress record as the printer's software speaks it (seed 004): GET /api/v1.0/progress's
// `data` and the body of every report to the device API, the same shape in both places.
import type { OtaProgress, OtaStage } from './ports.js';

/**
 * `{stage, progress, message, error, error_code}`: `progress` an integer percent, `error` the
 * human message or null, `error_code` its stable machine-readable name (e.g. MD5_MISMATCH) or null.
 */
export interface WireProgress {
  stage: OtaStage;
  progress: number;
  message: string;
  error: string | null;
  error_code: string | null;
}

/** The wire form of a progress record. */
export function toWireProgress(progress: OtaProgress): WireProgress {
  return {
    stage: progress.stage,
    progress: Math.max(0, Math.min(100, Math.floor(progress.progress))),
    message: progress.message,
    error: progress.error?.message ?? null,
    error_code: progress.error?.code ?? null,
  };
}
