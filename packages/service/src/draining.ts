import { UpgradeError } from '@upgrade/core';
import type { FastifyInstance } from 'fastify';
import { mapError, sendEnvelope } from './error-handler.js';

/**
 * Once the app starts closing: requests still arriving on open keep-alive connections get a 503 in
 * the usual envelope (fastify's own 503 has another shape), and every response says
 * `Connection: close`, so clients stop reusing sockets and the server can finish closing instead of
 * waiting out the keep-alive timeout.
 */
export function registerDraining(app: FastifyInstance): void {
  let draining = false;
  app.addHook('preClose', (done) => {
    draining = true;
    done();
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!draining) return;
    request.log.info('refused: shutting down');
    const mapped = mapError(new UpgradeError('UNAVAILABLE', 'shutting down'), request.id);
    return sendEnvelope(request, reply.header('connection', 'close'), mapped);
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) void reply.header('connection', 'close');
    done(null, payload);
  });
}
