import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';

export type LogLine = Record<string, unknown> & { level: number; msg?: string; reqId?: string };

/** A pino destination that keeps parsed JSON lines, to assert what reached the log. */
export function collectLogs(): { stream: { write(line: string): void }; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { stream: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) }, lines };
}

/** Listens on an ephemeral loopback port and returns the base URL. */
export async function listenLocal(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

/** A promise with its resolver, for holding a handler until the test lets it go. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
