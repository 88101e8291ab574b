// The service's API, same origin. Errors carry the service's own message for the reader.

/** An API answer that was not 2xx: the stable code and the service's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function failure(response: Response): Promise<ApiError> {
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    return new ApiError(
      response.status,
      body.error?.code ?? 'HTTP_ERROR',
      body.error?.message ?? `the service answered ${response.status}`,
    );
  } catch {
    return new ApiError(response.status, 'HTTP_ERROR', `the service answered ${response.status}`);
  }
}

export async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: { accept: 'application/json' } });
  if (!response.ok) throw await failure(response);
  return (await response.json()) as T;
}

export async function postJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { method: 'POST', headers: { accept: 'application/json' } });
  if (!response.ok) throw await failure(response);
  return (await response.json()) as T;
}

/** What to show for any error: the service's message, or that it could not be reached. */
export function describeFailure(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  return 'The service could not be reached; check that it is running.';
}
