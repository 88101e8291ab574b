// The live feed: GET /api/v1/upgrade/events read with fetch (the token is a header, which
// EventSource cannot send) and parsed as server-sent events. A dropped connection is retried with
// a growing delay (1 s, 2 s, 4 s ... 30 s); a 401 stops and asks for the token again.
import { errorOf, authHeaders, unauthorized } from './api.js';

export type StreamStatus = 'connecting' | 'live' | 'retrying' | 'stopped';

export interface StreamHandlers {
  event(name: string, data: unknown): void;
  status(status: StreamStatus, detail: string): void;
}

const URL_PATH = '/api/v1/upgrade/events';

export function openFeed(handlers: StreamHandlers): { close(): void } {
  let controller = new AbortController();
  let closed = false;
  let delay = 1_000;
  let timer: number | undefined;

  const run = async (): Promise<void> => {
    handlers.status('connecting', 'connecting to the orchestrator');
    controller = new AbortController();
    const response = await fetch(URL_PATH, {
      headers: { ...authHeaders(), accept: 'text/event-stream' },
      signal: controller.signal,
      cache: 'no-store',
    });
    if (!response.ok) {
      const error = await errorOf(response);
      if (error.status === 401) {
        closed = true;
        handlers.status('stopped', error.message);
        unauthorized(error);
        return;
      }
      throw error;
    }
    if (!response.body) throw new Error('no stream');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end = buffer.indexOf('\n\n');
      while (end !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const parsed = parseBlock(block);
        if (parsed !== null) {
          if (parsed.event === 'snapshot') {
            delay = 1_000;
            handlers.status('live', 'live');
          }
          handlers.event(parsed.event, parsed.data);
        }
        end = buffer.indexOf('\n\n');
      }
    }
  };

  const loop = (): void => {
    let why = 'the stream ended';
    run()
      .catch((error: unknown) => {
        why = error instanceof Error ? error.message : 'connection lost';
      })
      .finally(() => {
        if (closed) return;
        handlers.status('retrying', `Connection lost (${why}); retrying in ${Math.round(delay / 1000)} s`);
        timer = window.setTimeout(loop, delay);
        delay = Math.min(delay * 2, 30_000);
      });
  };
  loop();

  return {
    close() {
      closed = true;
      window.clearTimeout(timer);
      controller.abort();
    },
  };
}

/** One SSE block: `event:` and `data:` lines; comments (`:`) and `retry:` are ignored. */
export function parseBlock(block: string): { event: string; data: unknown } | null {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
  }
  if (data.length === 0) return null;
  return { event, data: JSON.parse(data.join('\n')) as unknown };
}
