// GET /metrics: the Prometheus text of the service's few metrics, written by hand (prom-client and
// its default collectors cost ~11 MiB of a 50 MiB budget). The names are the ones the kit's metrics
// and prom-client's collectors use, so dashboards and the benches read them unchanged: HTTP
// requests by route pattern, the process's memory, event-loop delay, GC time, and the service's own
// gauges. Values are read at the scrape; nothing runs in between but the counters.
import { monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';

/** The `route` label of requests no route matched: raw URLs would make one series per scanner probe. */
export const UNMATCHED_ROUTE = 'unmatched';

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const GC_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];

/** A gauge read at the scrape; null shows no value (e.g. a disk that cannot be read). */
export interface GaugeSource {
  name: string;
  help: string;
  /** label value (or '' for none) -> value */
  read(): Promise<ReadonlyMap<string, number> | number | null> | ReadonlyMap<string, number> | number | null;
  /** The label the map's keys are values of. */
  label?: string;
}

interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

export interface ServiceMetrics {
  /** One answered request. */
  observe(method: string, route: string, status: number, seconds: number): void;
  /** The exposition text. */
  render(): Promise<string>;
  /** Stops the event-loop and GC observers. */
  close(): void;
}

/** The content type of the exposition format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function createMetrics(gauges: readonly GaugeSource[]): ServiceMetrics {
  const requests = new Map<string, number>();
  const durations = new Map<string, Histogram>();
  const gc = new Map<string, Histogram>();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = GC_KINDS[(entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0];
      if (kind !== undefined) record(gc, `kind="${kind}"`, GC_BUCKETS, entry.duration / 1000);
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });

  return {
    observe(method, route, status, seconds) {
      const labels = `method="${escape(method)}",route="${escape(route)}",status_code="${status}"`;
      requests.set(labels, (requests.get(labels) ?? 0) + 1);
      record(durations, labels, DURATION_BUCKETS, seconds);
    },
    async render() {
      const out: string[] = [];
      const memory = process.memoryUsage();
      gauge(out, 'process_resident_memory_bytes', 'Resident memory size in bytes.', memory.rss);
      gauge(
        out,
        'nodejs_heap_size_total_bytes',
        'Process heap size from Node.js in bytes.',
        memory.heapTotal,
      );
      gauge(
        out,
        'nodejs_heap_size_used_bytes',
        'Process heap size used from Node.js in bytes.',
        memory.heapUsed,
      );
      gauge(out, 'nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', memory.external);
      const p99 = loop.percentile(99) / 1e9;
      const max = loop.max / 1e9;
      loop.reset();
      gauge(
        out,
        'nodejs_eventloop_lag_p99_seconds',
        'The 99th percentile of the recorded event loop delays.',
        p99,
      );
      gauge(out, 'nodejs_eventloop_lag_max_seconds', 'The maximum recorded event loop delay.', max);
      histogram(
        out,
        'nodejs_gc_duration_seconds',
        'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
        GC_BUCKETS,
        gc,
      );
      out.push('# HELP http_requests_total HTTP responses sent, by method, route pattern and status code');
      out.push('# TYPE http_requests_total counter');
      for (const [labels, value] of requests) out.push(`http_requests_total{${labels}} ${value}`);
      histogram(
        out,
        'http_request_duration_seconds',
        'Time from request received to response sent, by method, route pattern and status code',
        DURATION_BUCKETS,
        durations,
      );
      for (const source of gauges) {
        const value = await source.read();
        out.push(`# HELP ${source.name} ${source.help}`, `# TYPE ${source.name} gauge`);
        if (value === null) continue;
        if (typeof value === 'number') out.push(`${source.name} ${value}`);
        else
          for (const [label, v] of value)
            out.push(`${source.name}{${source.label ?? 'kind'}="${escape(label)}"} ${v}`);
      }
      return `${out.join('\n')}\n`;
    },
    close() {
      loop.disable();
      gcObserver.disconnect();
    },
  };
}

// perf_hooks' constants.NODE_PERFORMANCE_GC_* values: 1 major, 2 minor, 4 incremental, 8 weakcb.
const GC_KINDS: Readonly<Record<number, string>> = { 1: 'major', 2: 'minor', 4: 'incremental', 8: 'weakcb' };

function record(
  into: Map<string, Histogram>,
  labels: string,
  bounds: readonly number[],
  value: number,
): void {
  let h = into.get(labels);
  if (h === undefined) {
    h = { buckets: bounds.map(() => 0), sum: 0, count: 0 };
    into.set(labels, h);
  }
  for (let i = 0; i < bounds.length; i++)
    if (value <= (bounds[i] ?? 0)) h.buckets[i] = (h.buckets[i] ?? 0) + 1;
  h.sum += value;
  h.count++;
}

function gauge(out: string[], name: string, help: string, value: number): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
}

function histogram(
  out: string[],
  name: string,
  help: string,
  bounds: readonly number[],
  series: ReadonlyMap<string, Histogram>,
): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  for (const [labels, h] of series) {
    bounds.forEach((le, i) => out.push(`${name}_bucket{le="${le}",${labels}} ${h.buckets[i] ?? 0}`));
    out.push(`${name}_bucket{le="+Inf",${labels}} ${h.count}`);
    out.push(`${name}_sum{${labels}} ${h.sum}`, `${name}_count{${labels}} ${h.count}`);
  }
}

/** Prometheus label value escaping: backslash, double quote, newline. */
function escape(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}
