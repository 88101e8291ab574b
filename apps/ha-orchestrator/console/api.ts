// Calls to the orchestrator's API with the operator's token. The token lives in sessionStorage
// (this tab only, gone when it closes) and travels only in the Authorization header.

const TOKEN_KEY = 'ha-orchestrator.token';

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer the API refused, with its stable code and message (the platform's error envelope). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly reason: string | null = null,
  ) {
    super(message);
  }
}

let onUnauthorized: (message: string) => void = () => undefined;

/** What happens when the API answers 401: the page asks for the token again. */
export function whenUnauthorized(handler: (message: string) => void): void {
  onUnauthorized = handler;
}

export function authHeaders(): Record<string, string> {
  const token = savedToken();
  return token === null ? {} : { authorization: `Bearer ${token}` };
}

/** Reads an error body (or makes one up from the status when it is not the envelope). */
export async function errorOf(response: Response): Promise<ApiError> {
  return parseError(response.status, await response.text());
}

export function parseError(status: number, text: string): ApiError {
  try {
    const body = JSON.parse(text) as {
      error?: { code?: string; message?: string; details?: { reason?: string } };
    };
    if (body.error?.code !== undefined)
      return new ApiError(
        status,
        body.error.code,
        body.error.message ?? `HTTP ${status}`,
        body.error.details?.reason ?? null,
      );
  } catch {
    // not JSON: a proxy's page, say
  }
  return new ApiError(status, `HTTP_${status}`, `the server answered HTTP ${status}`);
}

/** Reports a 401 to the page (token form) and returns the error to throw. */
export function unauthorized(error: ApiError): ApiError {
  if (error.status === 401) onUnauthorized(error.message);
  return error;
}

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const headers: Record<string, string> = { ...authHeaders(), accept: 'application/json' };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  if (!response.ok) throw unauthorized(await errorOf(response));
  return (await response.json()) as T;
}
