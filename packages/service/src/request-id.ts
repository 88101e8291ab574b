import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';

/** The header a request id arrives in and is echoed back in. */
export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * Ids a proxy or caller may set: UUIDs, ULIDs, trace ids. Bounded and without spaces or quotes,
 * because the id is copied into every log line and a response header.
 */
const ACCEPTED = /^[\w.:@/+=-]{1,128}$/;

/** The caller's `x-request-id` when it is acceptable, else a fresh UUID. */
export function requestIdOf(raw: IncomingMessage): string {
  const header = raw.headers[REQUEST_ID_HEADER];
  return typeof header === 'string' && ACCEPTED.test(header) ? header : randomUUID();
}

/** Echoes the request id on every response, so a client can quote it when reporting a failure. */
export function registerRequestIdHeader(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
}
