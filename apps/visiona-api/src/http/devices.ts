// /api/devices: a user's paired devices, pairing codes, unpairing, and requests to a device's agent
// through its tunnel. Scoped to the signed-in owner: another user's device answers 404.
import { UpgradeError } from '@upgrade/core';
import { Type, errorResponses, type ServicePlugin } from '@upgrade/service';
import type { Pairing } from '../pairing.js';
import type { Device, DeviceStore } from '../ports.js';
import type { FastifyBaseLogger, TunnelHub } from '../tunnel/index.js';
import type { Authenticate } from './auth.js';
import { presenceOf } from './presence.js';
import { IdParams, PageOf, Paging, toDeviceBody } from './schemas.js';

export interface DeviceRoutesDeps {
  devices: DeviceStore;
  pairing: Pairing;
  hub: TunnelHub;
  authenticate: Authenticate;
}

/** Request headers passed on to the agent; cookies and credentials never are. */
const FORWARDED_REQUEST_HEADERS = ['accept', 'content-type', 'accept-encoding', 'if-none-match'];
/** Response headers not passed back: they describe the tunnel's hop, not the answer. */
const HOP_HEADERS = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'set-cookie',
]);

export const deviceRoutes: ServicePlugin<DeviceRoutesDeps> = async (app, deps) => {
  const { devices, hub, authenticate } = deps;
  const notFound = (id: string) => new UpgradeError('NOT_FOUND', `device ${id} not found`);
  const connectedAnywhere = async (device: Device, log: FastifyBaseLogger): Promise<boolean> =>
    (await presenceOf(hub, [device], log))[0]?.connected ?? false;

  app.get(
    '/api/devices',
    {
      schema: {
        summary: 'List your devices, oldest first',
        tags: ['devices'],
        querystring: Paging,
        response: { 200: PageOf('Device'), ...errorResponses(400, 401, 503) },
      },
    },
    async (request) => {
      const { user } = await authenticate(request);
      const { limit, offset } = request.query;
      const page = await devices.list(user.id, { limit, offset });
      const presence = await presenceOf(hub, page.items, request.log);
      return {
        items: page.items.map((d, i) => toDeviceBody(d, presence[i]?.connected ?? false)),
        total: page.total,
        limit,
        offset,
      };
    },
  );

  app.get(
    '/api/devices/:id',
    {
      schema: {
        summary: 'One of your devices',
        tags: ['devices'],
        params: IdParams,
        response: { 200: Type.Ref('Device'), ...errorResponses(401, 404, 503) },
      },
    },
    async (request) => {
      const { user } = await authenticate(request);
      const device = await devices.get(request.params.id, user.id);
      if (device === null) throw notFound(request.params.id);
      return toDeviceBody(device, await connectedAnywhere(device, request.log));
    },
  );

  app.patch(
    '/api/devices/:id',
    {
      schema: {
        summary: 'Rename one of your devices',
        tags: ['devices'],
        params: IdParams,
        body: Type.Object(
          { name: Type.String({ minLength: 1, maxLength: 200 }) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Ref('Device'), ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { user } = await authenticate(request);
      const device = await devices.rename(request.params.id, user.id, request.body.name);
      if (device === null) throw notFound(request.params.id);
      return toDeviceBody(device, await connectedAnywhere(device, request.log));
    },
  );

  app.delete(
    '/api/devices/:id',
    {
      schema: {
        summary: 'Unpair one of your devices: the device and its session tokens go in one transaction',
        description:
          "The agent's tunnel, if connected, is closed at once by the instance that answers when it holds the tunnel, else by the instance holding it at its next heartbeat.",
        tags: ['devices'],
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses(401, 404, 503) },
      },
    },
    async (request, reply) => {
      const { user } = await authenticate(request);
      if (!(await devices.unpair(request.params.id, user.id))) throw notFound(request.params.id);
      hub.disconnect(request.params.id, 'device unpaired');
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/api/devices/pairing-tokens',
    {
      schema: {
        summary: 'Issue a one-time pairing code for a new device (shown this once)',
        description: "Enter the code on the device's agent; it redeems it at POST /api/agent/pair.",
        tags: ['devices'],
        response: {
          201: Type.Object({
            pairing_code: Type.String({ description: 'shown once; only its hash is stored' }),
            expires_at: Type.String({ format: 'date-time' }),
          }),
          ...errorResponses(401, 503),
        },
      },
    },
    async (request, reply) => {
      const { user } = await authenticate(request);
      const { code, expiresAt } = await deps.pairing.issueCode(user.id);
      return reply.code(201).send({ pairing_code: code, expires_at: expiresAt.toISOString() });
    },
  );

  // Any method and path under /agent/ goes to the device's agent as is; bodies pass through raw,
  // so this scope parses none.
  await app.register(async (proxy) => {
    proxy.removeAllContentTypeParsers();
    proxy.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    proxy.route({
      method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
      url: '/api/devices/:id/agent/*',
      schema: {
        summary: "Forward a request to the device's local agent through its tunnel",
        description:
          'Answered by whichever instance of the API holds the agent’s tunnel. 503 when the agent is not connected to any instance (or its instance cannot be reached), 504 when it does not answer in time.',
        tags: ['devices'],
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }), '*': Type.String() }),
        response: errorResponses(401, 404, 503, 504),
      },
      handler: async (request, reply) => {
        const { user } = await authenticate(request);
        const { id, '*': rest } = request.params as { id: string; '*': string };
        const device = await devices.get(id, user.id);
        if (device === null) throw notFound(id);
        const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
        const headers: Record<string, string> = {};
        for (const name of FORWARDED_REQUEST_HEADERS) {
          const value = request.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        const answer = await hub.forward(device.id, {
          method: request.method,
          path: `/${rest}${query}`,
          headers,
          ...(Buffer.isBuffer(request.body) ? { body: request.body } : {}),
        });
        for (const [name, value] of Object.entries(answer.headers))
          if (!HOP_HEADERS.has(name.toLowerCase())) reply.header(name, value);
        // The agent's status passes through as is, whatever this route documents for its own failures.
        return reply.code(answer.status as never).send(answer.body as never);
      },
    });
  });
};
