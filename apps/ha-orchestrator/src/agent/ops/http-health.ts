// GET of a health URL on the node: status and the version the service reports, never the raw error.
export interface HttpHealth {
  status: number | null;
  version: string | null;
  detail: string | null;
}

export async function fetchHealth(url: string, timeoutMs: number, signal: AbortSignal): Promise<HttpHealth> {
  try {
    const response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) });
    let version: string | null = null;
    try {
      const body = await response.json();
      if (typeof body === 'object' && body !== null && 'version' in body && typeof body.version === 'string')
        version = body.version;
    } catch {
      // not JSON: only the status counts
    }
    return { status: response.status, version, detail: response.ok ? null : `HTTP ${response.status}` };
  } catch (error) {
    const name = (error as Error).name;
    return {
      status: null,
      version: null,
      detail:
        name === 'TimeoutError' || name === 'AbortError'
          ? `no answer within ${timeoutMs} ms`
          : 'connection failed',
    };
  }
}
