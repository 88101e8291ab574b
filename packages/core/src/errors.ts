/**
 * Stable error codes shared by every service. A code never changes meaning once released:
 * clients, dashboards and runbooks key on it.
 */
export const ERROR_CODES = [
  'VALIDATION_FAILED',
  'NOT_FOUND',
  'CONFLICT',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'ILLEGAL_TRANSITION',
  'TIMEOUT',
  'ABORTED',
  'UNREACHABLE',
  'UNAVAILABLE',
  'PACKAGE_SIZE_MISMATCH',
  'MD5_MISMATCH',
  'CHECKSUM_MISMATCH',
  'SIGNATURE_INVALID',
  'DOWNLOAD_FAILED',
  /** Not enough free disk space for a download or an unpack; freeing space fixes it. */
  'INSUFFICIENT_SPACE',
  'DEPLOYMENT_FAILED',
  'HEALTH_CHECK_FAILED',
  'ROLLBACK_FAILED',
  'VENDOR_CONTRACT_VIOLATION',
  'CONFIG_INVALID',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** The HTTP status a code maps to when it crosses an HTTP boundary. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'VALIDATION_FAILED':
    case 'PACKAGE_SIZE_MISMATCH':
    case 'MD5_MISMATCH':
    case 'CHECKSUM_MISMATCH':
    case 'CONFIG_INVALID':
      return 400;
    case 'UNAUTHORIZED':
      return 401;
    case 'FORBIDDEN':
    case 'SIGNATURE_INVALID':
      return 403;
    case 'NOT_FOUND':
      return 404;
    case 'CONFLICT':
    case 'ILLEGAL_TRANSITION':
      return 409;
    case 'ABORTED':
      return 499;
    case 'VENDOR_CONTRACT_VIOLATION':
    case 'UNREACHABLE':
    case 'DOWNLOAD_FAILED':
      return 502;
    case 'UNAVAILABLE':
      return 503;
    case 'TIMEOUT':
      return 504;
    case 'INSUFFICIENT_SPACE':
      return 507;
    case 'DEPLOYMENT_FAILED':
    case 'HEALTH_CHECK_FAILED':
    case 'ROLLBACK_FAILED':
    case 'INTERNAL':
      return 500;
  }
}

/** Codes whose failures are worth retrying unchanged: the cause is expected to pass. */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set([
  'TIMEOUT',
  'UNREACHABLE',
  'UNAVAILABLE',
  'DOWNLOAD_FAILED',
]);

export interface UpgradeErrorOptions {
  /** Overrides the code's default: e.g. a TIMEOUT that must not be retried. */
  retryable?: boolean;
  /** Overrides the code's default HTTP status. */
  status?: number;
  /** Structured, client-safe detail (field names, limits, ids). Never a raw driver message. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * The one error type of the platform. `message` says what happened and, where possible, what to do;
 * it is safe to show to a client for 4xx statuses. `cause` keeps the original error for logs only.
 *
 * @example throw new UpgradeError('MD5_MISMATCH', `package md5 is ${got}, expected ${want}`)
 */
export class UpgradeError extends Error {
  override readonly name = 'UpgradeError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: UpgradeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? RETRYABLE.has(code);
    this.status = options.status ?? httpStatusOf(code);
    this.details = options.details;
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** True for an UpgradeError, optionally of one of the given codes. */
export function isUpgradeError(error: unknown, ...codes: ErrorCode[]): error is UpgradeError {
  return error instanceof UpgradeError && (codes.length === 0 || codes.includes(error.code));
}

/** The AbortError an aborted signal stands for, as an UpgradeError with code ABORTED. */
export function abortError(signal: AbortSignal): UpgradeError {
  const reason: unknown = signal.reason;
  if (reason instanceof UpgradeError) return reason;
  const text = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'aborted';
  return new UpgradeError('ABORTED', `operation aborted: ${text}`, { cause: reason });
}

/**
 * The `code` of a Node or undici network error (`ECONNREFUSED`, `UND_ERR_SOCKET`, ...), looking
 * into the AggregateError Node's happy-eyeballs connect reports (per-address failures); undefined
 * when there is none.
 */
export function networkErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const inner = (error as { errors?: unknown }).errors;
  return Array.isArray(inner) ? networkErrorCode(inner[0]) : undefined;
}

/** A short, safe text for logs and reports from any thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof UpgradeError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) return error.message;
  return String(error);
}
