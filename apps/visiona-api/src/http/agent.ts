// /api/agent/pair: a device's agent redeems the pairing code its owner issued. The tunnel the agent
// then opens (GET /api/agent/connect) is registered by the tunnel itself.
import { Type, errorResponses, type ServicePlugin } from '@upgrade/service';
import type { Pairing } from '../pairing.js';
import type { LoginRateLimit } from './auth.js';
import { toDeviceBody } from './schemas.js';

export interface AgentRoutesDeps {
  pairing: Pairing;
  /** Codes carry 256 random bits; the limit only keeps a misbehaving agent from hammering the database. */
  pairRateLimit: LoginRateLimit;
}

export const agentRoutes: ServicePlugin<AgentRoutesDeps> = async (app, deps) => {
  app.post(
    '/api/agent/pair',
    {
      config: {
        rateLimit: {
          max: deps.pairRateLimit.max,
          timeWindow: deps.pairRateLimit.windowMs,
          errorResponseBuilder: (_request, context) =>
            Object.assign(new Error(`too many pairing attempts; try again in ${context.after}`), {
              code: 'FST_ERR_RATE_LIMITED',
              statusCode: 429,
            }),
        },
      },
      schema: {
        summary: 'Pair a device with a one-time code: creates the device and returns its session token once',
        description:
          'The code is used up only when pairing succeeds. 401: the code is unknown, used or expired. 409: a paired device already has this serial (unpair it first).',
        tags: ['agent'],
        body: Type.Object(
          {
            pairing_code: Type.String({ minLength: 1, maxLength: 200 }),
            serial: Type.String({ minLength: 1, maxLength: 200 }),
            name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            device: Type.Ref('Device'),
            session_token: Type.String({
              description: 'the agent authenticates GET /api/agent/connect with it; shown once',
            }),
          }),
          ...errorResponses(400, 401, 409, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const { pairing_code: code, serial, name } = request.body;
      const { device, sessionToken } = await deps.pairing.pair({ code, serial, name: name ?? serial });
      return reply.code(201).send({ device: toDeviceBody(device, false), session_token: sessionToken });
    },
  );
};
