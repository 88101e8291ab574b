// Pairing from the agent's side: trade the one-time code a user issued for a session token.
import { ERROR_CODES, UpgradeError, type ErrorCode } from '@upgrade/core';

export interface PairAgentOptions {
  /** The API's base URL, e.g. `https://api.example.com`. */
  apiUrl: string;
  /** The pairing code the user got from the API. */
  pairingCode: string;
  /** The device's hardware serial. */
  serial: string;
  name?: string;
  /** Default 10 000 ms. */
  timeoutMs?: number;
}

/** A paired device and the session token its agent connects with (shown this once: keep it). */
export interface PairedAgent {
  device: { id: string } & Record<string, unknown>;
  sessionToken: string;
}

/**
 * Calls POST /api/agent/pair (`{ pairing_code, serial, name? }` -> 201 `{ device, session_token }`);
 * the API's error code (e.g. UNAUTHORIZED for a used code) is kept. */
export async function pairAgent(options: PairAgentOptions): Promise<PairedAgent> {
  const url = new URL('/api/agent/pair', options.apiUrl);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        pairing_code: options.pairingCode,
        serial: options.serial,
        ...(options.name === undefined ? {} : { name: options.name }),
      }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (error) {
    throw new UpgradeError(
      'UNREACHABLE',
      `could not reach the API at ${url.origin}; check the URL and network`,
      {
        cause: error,
      },
    );
  }
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) throw errorOf(response.status, body);
  const paired = pairedOf(body);
  if (paired === undefined) {
    throw new UpgradeError(
      'VENDOR_CONTRACT_VIOLATION',
      'the API answered pairing without a device id and session token',
    );
  }
  return paired;
}

/** The wire's `{ device, session_token }` as the agent keeps it, or undefined when malformed. */
function pairedOf(body: unknown): PairedAgent | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { device, session_token: sessionToken } = body as Record<string, unknown>;
  if (typeof sessionToken !== 'string' || typeof device !== 'object' || device === null) return undefined;
  const record = device as Record<string, unknown>;
  return typeof record.id === 'string' ? { device: { ...record, id: record.id }, sessionToken } : undefined;
}

/** The API's `{ error: { code, message } }` envelope as an UpgradeError. */
function errorOf(status: number, body: unknown): UpgradeError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = ERROR_CODES.find((known) => known === error?.code) ?? codeOfStatus(status);
  const message = typeof error?.message === 'string' ? error.message : `pairing failed with HTTP ${status}`;
  return new UpgradeError(code, message, { status });
}

function codeOfStatus(status: number): ErrorCode {
  if (status === 401 || status === 403) return 'UNAUTHORIZED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status === 400 || status === 422) return 'VALIDATION_FAILED';
  return 'UNAVAILABLE';
}
