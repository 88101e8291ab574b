// /api/system: what the service is, how its tunnel side stands, and a device agent's dependencies.
// Each answers in the success envelope visionA clients read: the payload under `data`.
import { UpgradeError } from '@upgrade/core';
import { Type, errorResponses, type ServicePlugin, type TSchema } from '@upgrade/service';
import type { Device, DeviceStore } from '../ports.js';
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

/** `{ data: payload }`: the success envelope of /api/system/*. */
const Success = <T extends TSchema>(payload: T) => Type.Object({ data: payload });

const SystemHealth = Type.Object({
  api_server: Type.Literal('ok'),
  tunnel_connected: Type.Boolean(),
  agent_last_seen_at: Type.Optional(
    Type.String({ format: 'date-time', description: 'absent while no agent has been seen' }),
  ),
  agent_session_count: Type.Integer({ description: 'agents connected to this instance' }),
});

export const systemRoutes: ServicePlugin<SystemRoutesDeps> = async (app, deps) => {
  const { devices, hub, authenticate } = deps;
  const ownedDevice = async (request: Parameters<Authenticate>[0], id: string) => {
    const { user } = await authenticate(request);
    const device = await devices.get(id, user.id);
    if (device === null) throw new UpgradeError('NOT_FOUND', `device ${id} not found`);
    return device;
  };
  /** Without device_id, the caller's one device: with none or several, which one cannot be guessed. */
  const onlyDevice = async (request: Parameters<Authenticate>[0]): Promise<Device> => {
    const { user } = await authenticate(request);
    const page = await devices.list(user.id, { limit: 2, offset: 0 });
    const [device] = page.items;
    if (page.total === 1 && device !== undefined) return device;
    if (page.total === 0) {
      throw new UpgradeError(
        'NOT_FOUND',
        'you have no paired device: pair one, then ask for its dependencies',
      );
    }
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `device_id is required: you have ${page.total} devices, name the one to ask`,
      { details: { fields: [{ location: 'querystring', field: 'device_id', message: 'is required' }] } },
    );
  };

  app.get(
    '/api/system/info',
    {
      schema: {
        summary: 'Service name, build version (the commit it was built from) and release phase',
        tags: ['system'],
        response: {
          200: Success(
            Type.Object({
              service: Type.String({ description: "the API server's name: visiona-api-server" }),
              version: Type.String({
                description: 'the git commit the build was made from; "dev" when built without git',
              }),
              phase: Type.String(),
            }),
          ),
        },
      },
    },
    async () => ({ data: deps.info }),
  );

  app.get(
    '/api/system/health',
    {
      schema: {
        summary: 'The API and the agent tunnel, for one of your devices or for this instance',
        description:
          'With device_id: whether that device’s agent holds a tunnel to any instance of the API and when it was last seen. Without: whether any agent is connected to the instance that answers, and the latest heartbeat among them. agent_session_count always counts that instance’s agents. Dependencies are checked by GET /healthz.',
        tags: ['system'],
        querystring: DeviceQuery,
        response: { 200: Success(SystemHealth), ...errorResponses(401, 404, 503) },
      },
    },
    async (request) => {
      const { device_id: deviceId } = request.query;
      if (deviceId === undefined) {
        await authenticate(request);
        const lastSeen = hub.latestSeenAt();
        return {
          data: {
            api_server: 'ok' as const,
            tunnel_connected: hub.count() > 0,
            ...(lastSeen === null ? {} : { agent_last_seen_at: lastSeen.toISOString() }),
            agent_session_count: hub.count(),
          },
        };
      }
      const device = await ownedDevice(request, deviceId);
      const [presence] = await presenceOf(hub, [device], request.log);
      const lastSeen = presence?.lastSeenAt ?? device.agentLastSeenAt;
      return {
        data: {
          api_server: 'ok' as const,
          tunnel_connected: presence?.connected ?? false,
          ...(lastSeen === null ? {} : { agent_last_seen_at: lastSeen.toISOString() }),
          agent_session_count: hub.count(),
        },
      };
    },
  );

  app.get(
    '/api/system/deps',
    {
      schema: {
        summary: "A device agent's dependency report (GET /deps on the agent, through the tunnel)",
        description:
          'device_id may be left out when you have exactly one device (400 naming device_id when you have several, 404 when none). A JSON 2xx answer of the agent comes under `data`; any other answer passes through as the agent gave it. Answered by whichever instance of the API holds the agent’s tunnel: 503 when the agent is not connected to any instance (or its instance cannot be reached), 504 when it does not answer in time.',
        tags: ['system'],
        querystring: DeviceQuery,
        response: errorResponses(400, 401, 404, 502, 503, 504),
      },
    },
    async (request, reply) => {
      const { device_id: deviceId } = request.query;
      const device =
        deviceId === undefined ? await onlyDevice(request) : await ownedDevice(request, deviceId);
      const answer = await hub.forward(device.id, {
        method: 'GET',
        path: '/deps',
        headers: { accept: 'application/json' },
      });
      const type = answer.headers['content-type'];
      if (answer.status >= 200 && answer.status < 300 && type?.startsWith('application/json') === true) {
        const payload = parseJson(answer.body);
        if (payload.ok) return reply.code(answer.status as never).send({ data: payload.value } as never);
      }
      if (type !== undefined) reply.type(type);
      // Anything else passes through as is, whatever this route documents for its own failures.
      return reply.code(answer.status as never).send(answer.body as never);
    },
  );
};

/** The agent's body as JSON, or not ok when it is not what its content type says. */
function parseJson(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) as unknown };
  } catch {
    return { ok: false };
  }
}
