// The route other instances send requests on through, to the agents connected to this one.
// Authenticated by the instances' shared token before the body is read; hidden from the public API
// description. It forwards over local connections only, so a request never travels further.
import { UpgradeError } from '@upgrade/core';
import { Type, type ServiceApp } from '@upgrade/service';
import {
  FORWARD_REQUEST_HEADER,
  FORWARD_RESPONSE_HEADER,
  INTERNAL_FORWARD_PATH,
  decodeRequestMeta,
  encodeResponseMeta,
  isInternalTokenValid,
} from './internal-protocol.js';
import type { TunnelRequest, TunnelResponse } from './types.js';

export interface InternalTunnelRoutesDeps {
  /** `TUNNEL_INTERNAL_TOKEN`. */
  internalToken: string;
  /** Forwards over this instance's connection; NOT_FOUND when the device has none here. */
  forwardLocal: (deviceId: string, request: TunnelRequest) => Promise<TunnelResponse>;
  /** Largest request body accepted, in bytes. */
  bodyLimit: number;
}

export async function registerInternalTunnelRoutes(
  app: ServiceApp,
  deps: InternalTunnelRoutesDeps,
): Promise<void> {
  await app.register(async (internal) => {
    // Bodies pass through raw, whatever their type.
    internal.removeAllContentTypeParsers();
    internal.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    internal.route({
      method: 'POST',
      url: INTERNAL_FORWARD_PATH,
      bodyLimit: deps.bodyLimit,
      schema: {
        hide: true,
        params: Type.Object({ deviceId: Type.String({ minLength: 1, maxLength: 100 }) }),
      },
      onRequest: async (request) => {
        if (!isInternalTokenValid(request.headers.authorization, deps.internalToken)) {
          throw new UpgradeError(
            'UNAUTHORIZED',
            'present the shared TUNNEL_INTERNAL_TOKEN as "Authorization: Bearer <token>"',
          );
        }
      },
      handler: async (request, reply) => {
        const { deviceId } = request.params as { deviceId: string };
        const meta = decodeRequestMeta(request.headers[FORWARD_REQUEST_HEADER]);
        const answer = await deps.forwardLocal(deviceId, {
          method: meta.method,
          path: meta.path,
          headers: meta.headers,
          timeoutMs: meta.timeoutMs,
          ...(Buffer.isBuffer(request.body) ? { body: request.body } : {}),
        });
        return reply
          .code(200)
          .header(FORWARD_RESPONSE_HEADER, encodeResponseMeta(answer))
          .type('application/octet-stream')
          .send(answer.body);
      },
    });
  });
}
