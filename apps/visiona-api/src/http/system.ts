// /api/system: what the service is, how its tunnel side stands, and a device agent's dependencies.
import { UpgradeError } from '@upgrade/core';
import { Type, errorResponses, type ServicePlugin } from '@upgrade/service';
import type { DeviceStore } from '../ports.js';
import type { TunnelHub } from '../tunnel/index.js';
import type { Authenticate } from './auth.js';
import { presenceOf } from './presence.js';

export interface SystemRoutesDeps {
  devices: DeviceStore;
  hub: TunnelHub;
  authenticate: Authenticate;
  info: { service: string; version: string; phase: string };
}

const DeviceQuery = Type.Object({
  device_id: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
});

export const systemRoutes: ServicePlugin<SystemRoutesDeps> = async (app, deps) => {
  const { devices, hub, authenticate } = deps;
  const ownedDevice = async (request: Parameters<Authenticate>[0], id: string) => {
    const { user } = await authenticate(request);
    const device = await devices.get(id, user.id);
    if (device === null) throw new UpgradeError('NOT_FOUND', `device ${id} not found`);
    return device;
  };

  app.get(
    '/api/system/info',
    {
      schema: {
        summary: 'Service name, build version and release phase',
        tags: ['system'],
        response: {
          200: Type.Object({ service: Type.String(), version: Type.String(), phase: Type.String() }),
        },
      },
    },
    async () => deps.info,
  );

  app.get(
    '/api/system/health',
    {
      schema: {
        summary: 'The API and the agent tunnel, for one of your devices or for this instance',
        description:
          'With device_id: whether that device’s agent holds a tunnel to any instance of the API and when it was last seen. Without: whether any agent is connected to the instance that answers. agent_session_count always counts that instance’s agents. Dependencies are checked by GET /healthz.',
        tags: ['system'],
        querystring: DeviceQuery,
        response: {
          200: Type.Object({
            api_server: Type.Literal('ok'),
            tunnel_connected: Type.Boolean(),
            agent_last_seen_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
            agent_session_count: Type.Integer({ description: 'agents connected to this instance' }),
          }),
          ...errorResponses(401, 404, 503),
        },
      },
    },
    async (request) => {
      const { device_id: deviceId } = request.query;
      if (deviceId === undefined) {
        await authenticate(request);
        return {
          api_server: 'ok' as const,
          tunnel_connected: hub.count() > 0,
          agent_last_seen_at: null,
          agent_session_count: hub.count(),
        };
      }
      const device = await ownedDevice(request, deviceId);
      const [presence] = await presenceOf(hub, [device], request.log);
      return {
        api_server: 'ok' as const,
        tunnel_connected: presence?.connected ?? false,
        agent_last_seen_at: (presence?.lastSeenAt ?? device.agentLastSeenAt)?.toISOString() ?? null,
        agent_session_count: hub.count(),
      };
    },
  );

  app.get(
    '/api/system/deps',
    {
      schema: {
        summary: "A device agent's dependency report (GET /deps on the agent, through the tunnel)",
        description:
          'Answered by whichever instance of the API holds the agent’s tunnel. 503 when the agent is not connected to any instance (or its instance cannot be reached), 504 when it does not answer in time.',
        tags: ['system'],
        querystring: Type.Object({ device_id: Type.String({ minLength: 1, maxLength: 100 }) }),
        response: errorResponses(400, 401, 404, 502, 503, 504),
      },
    },
    async (request, reply) => {
      const device = await ownedDevice(request, request.query.device_id);
      const answer = await hub.forward(device.id, {
        method: 'GET',
        path: '/deps',
        headers: { accept: 'application/json' },
      });
      const type = answer.headers['content-type'];
      if (type !== undefined) reply.type(type);
      // The agent's status passes through as is, whatever this route documents for its own failures.
      return reply.code(answer.status as never).send(answer.body as never);
    },
  );
};
