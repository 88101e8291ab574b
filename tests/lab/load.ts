// A client-side load generator: one GET every `intervalMs` on a fresh connection each (as a client
// failing over to the VIP would), whatever the previous request is doing. It records what a user
// sees: failed requests, the longest time without a successful answer, and which node answered.
import { request } from 'node:http';

export interface LoadOptions {
  url: string;
  /** Default 20 ms. */
  intervalMs?: number;
  /** Per request, connect to last byte. Default 1000 ms. */
  timeoutMs?: number;
}

export interface LoadSample {
  /** ms since the load started. */
  startedAt: number;
  durationMs: number;
  ok: boolean;
  status: number | null;
  /** `node` from the JSON answer (the application stand-in reports its node id). */
  node: string | null;
  version: string | null;
  error: string | null;
}

export interface LoadReport {
  sent: number;
  ok: number;
  failed: number;
  /** Longest span without a successful answer (from the start, between answers, to the end). */
  longestGapMs: number;
  /** Answers per node id. */
  byNode: Record<string, number>;
  /** Failed requests by error code or HTTP status. */
  errors: Record<string, number>;
  durationMs: number;
  samples: LoadSample[];
}

export interface LoadGenerator {
  /** ms since the load started. */
  elapsed(): number;
  /** The report so far (requests still in flight are left out). */
  report(): LoadReport;
  /** Resolves once a successful answer came from `node` (checked every 5 ms); returns its startedAt. */
  waitForNode(node: string, timeoutMs?: number): Promise<number>;
  /** Stops sending, waits for requests in flight, and reports. */
  stop(): Promise<LoadReport>;
}

function getOnce(url: string, timeoutMs: number): Promise<Omit<LoadSample, 'startedAt' | 'durationMs'>> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (sample: Omit<LoadSample, 'startedAt' | 'durationMs'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(sample);
    };
    const failed = (error: string): void =>
      finish({ ok: false, status: null, node: null, version: null, error });
    const req = request(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('error', (error: NodeJS.ErrnoException) => failed(error.code ?? error.message));
      res.on('end', () => {
        let parsed: { node?: unknown; version?: unknown } = {};
        try {
          parsed = JSON.parse(body) as typeof parsed;
        } catch {
          // a non-JSON answer still counts by its status
        }
        const status = res.statusCode ?? 0;
        finish({
          ok: status >= 200 && status < 300,
          status,
          node: typeof parsed.node === 'string' ? parsed.node : null,
          version: typeof parsed.version === 'string' ? parsed.version : null,
          error: status >= 200 && status < 300 ? null : `HTTP ${status}`,
        });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      failed('TIMEOUT');
    }, timeoutMs);
    req.on('error', (error: NodeJS.ErrnoException) => failed(error.code ?? error.message));
    req.end();
  });
}

/** Starts sending at once. */
export function startLoad(options: LoadOptions): LoadGenerator {
  const intervalMs = options.intervalMs ?? 20;
  const timeoutMs = options.timeoutMs ?? 1000;
  const origin = performance.now();
  const elapsed = (): number => performance.now() - origin;
  const samples: LoadSample[] = [];
  const inFlight = new Set<Promise<void>>();
  let stoppedAt: number | null = null;

  const fire = (): void => {
    const startedAt = elapsed();
    const pending = getOnce(options.url, timeoutMs).then((result) => {
      samples.push({ ...result, startedAt, durationMs: elapsed() - startedAt });
      inFlight.delete(pending);
    });
    inFlight.add(pending);
  };
  fire();
  const interval = setInterval(fire, intervalMs);

  const report = (): LoadReport => {
    const end = stoppedAt ?? elapsed();
    const sorted = [...samples].sort((x, y) => x.startedAt - y.startedAt);
    const okTimes = sorted
      .filter((s) => s.ok)
      .map((s) => s.startedAt + s.durationMs)
      .sort((x, y) => x - y);
    let longestGapMs = 0;
    let previous = 0;
    for (const t of [...okTimes, end]) {
      longestGapMs = Math.max(longestGapMs, t - previous);
      previous = t;
    }
    const byNode: Record<string, number> = {};
    const errors: Record<string, number> = {};
    for (const s of sorted) {
      if (s.ok && s.node !== null) byNode[s.node] = (byNode[s.node] ?? 0) + 1;
      if (!s.ok) errors[s.error ?? 'unknown'] = (errors[s.error ?? 'unknown'] ?? 0) + 1;
    }
    const ok = sorted.filter((s) => s.ok).length;
    return {
      sent: sorted.length,
      ok,
      failed: sorted.length - ok,
      longestGapMs: Math.round(longestGapMs),
      byNode,
      errors,
      durationMs: Math.round(end),
      samples: sorted,
    };
  };

  return {
    elapsed,
    report,
    async waitForNode(node, waitMs = 30_000) {
      const deadline = elapsed() + waitMs;
      for (;;) {
        const hit = samples.find((s) => s.ok && s.node === node);
        if (hit !== undefined) return hit.startedAt;
        if (elapsed() > deadline)
          throw new Error(`no answer from ${node} through ${options.url} in ${waitMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    async stop() {
      clearInterval(interval);
      await Promise.all(inFlight);
      stoppedAt = elapsed();
      return report();
    },
  };
}

/** One line for logs: `sent 250, failed 0, longest gap 41 ms, node-a 120 / node-b 130`. */
export function formatLoadReport(report: LoadReport): string {
  const nodes = Object.entries(report.byNode)
    .map(([node, count]) => `${node} ${count}`)
    .join(' / ');
  const errors = Object.entries(report.errors)
    .map(([code, count]) => `${code} x${count}`)
    .join(', ');
  return (
    `sent ${report.sent}, failed ${report.failed}${errors === '' ? '' : ` (${errors})`}, ` +
    `longest gap ${report.longestGapMs} ms, ${nodes}`
  );
}
