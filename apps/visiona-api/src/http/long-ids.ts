// An id in the path longer than the router's limit (fastify's maxParamLength, 100, which the routes'
// `id` schema also declares) answers like any other id that breaks its schema: 400
// VALIDATION_FAILED naming `id`, instead of the router's 414. The router passes such a path over
// the `:id` routes and tries a wildcard sibling: these undocumented catch-alls, which send
// anything else (an unknown path) to the usual 404.
import { UpgradeError } from '@upgrade/core';
import type { ServicePlugin } from '@upgrade/service';

/** The longest id the routes accept: fastify's default maxParamLength and the `id` schema's maxLength. */
export const MAX_ID_LENGTH = 100;

const PREFIXES = ['/api/models', '/api/devices'];

export const longIdRoutes: ServicePlugin = async (app) => {
  // No body is read here: whatever its type, the answer depends only on the path.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  for (const prefix of PREFIXES) {
    app.route({
      method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
      url: `${prefix}/*`,
      schema: { hide: true },
      handler: async (request, reply) => {
        const rest = (request.params as { '*': string })['*'];
        const id = rest.split('/', 1)[0] ?? '';
        if (id.length <= MAX_ID_LENGTH) return reply.callNotFound();
        const message = `must NOT have more than ${MAX_ID_LENGTH} characters`;
        throw new UpgradeError('VALIDATION_FAILED', `params/id ${message}`, {
          details: { fields: [{ location: 'params', field: 'id', message }] },
        });
      },
    });
  }
};
