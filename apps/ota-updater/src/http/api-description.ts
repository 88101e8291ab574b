// The API as openapi.json describes it: the five routes with their bodies and answers, for
// `pnpm --filter @upgrade/ota-updater openapi` and the drift test only. The running service does not
// load this (nor fastify, typebox, Swagger): src/http/api-server.ts answers the same routes on
// node:http, checking bodies against the same schemas (src/http/bodies.ts).
import { Type, type ServicePlugin, type TSchema } from '@upgrade/service';
import { DOWNLOAD_BODY, UPDATE_BODY } from './bodies.js';

const Envelope = <T extends TSchema>(data: T) =>
  Type.Object({
    code: Type.Integer({ description: 'the HTTP status, e.g. 200' }),
    msg: Type.String(),
    data,
  });

const Stage = Type.String({
  description:
    'idle, downloading, verifying, downloaded, deploying, health_check, success, rolling_back, rolled_back, failed',
});
const ProgressData = Type.Object({
  stage: Stage,
  progress: Type.Integer({ minimum: 0, maximum: 100, description: 'percent' }),
  message: Type.String(),
  error: Type.Union([Type.String(), Type.Null()], { description: 'what went wrong, for people' }),
  error_code: Type.Union([Type.String(), Type.Null()], {
    description: 'stable name of the error, e.g. MD5_MISMATCH; null without error',
  }),
});
const AcceptedData = Type.Object({ version: Type.String(), stage: Stage });
const VersionsData = Type.Object({
  current: Type.Union([Type.String(), Type.Null()]),
  previous: Type.Union([Type.String(), Type.Null()]),
  factory: Type.Boolean(),
  others: Type.Array(Type.String()),
});
const ErrorEnvelope = Type.Object({
  code: Type.Integer({ description: 'the HTTP status, e.g. 400' }),
  msg: Type.String(),
  data: Type.Null(),
  error_code: Type.String({ description: 'stable error name, e.g. VALIDATION_FAILED, CONFLICT, NOT_FOUND' }),
  requestId: Type.String(),
});
const errors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, ErrorEnvelope]));

const described = (): never => {
  throw new Error('described only: the service answers on src/http/api-server.ts');
};

/** The routes' schemas; their handlers never run. */
export const describeOtaApi: ServicePlugin = async (app) => {
  app.post(
    '/api/v1.0/download',
    {
      schema: {
        summary: 'Download and verify a package in the background',
        tags: ['ota'],
        body: DOWNLOAD_BODY as unknown as TSchema,
        response: { 200: Envelope(AcceptedData), 202: Envelope(AcceptedData), ...errors(400, 409) },
      },
    },
    described,
  );
  app.post(
    '/api/v1.0/update',
    {
      schema: {
        summary: 'Deploy a downloaded, verified version',
        tags: ['ota'],
        body: UPDATE_BODY as unknown as TSchema,
        response: { 202: Envelope(AcceptedData), ...errors(400, 404, 409) },
      },
    },
    described,
  );
  app.post(
    '/api/v1.0/cancel',
    {
      schema: {
        summary: 'Cancel a download, or a deploy that has not switched yet',
        tags: ['ota'],
        response: { 200: Envelope(ProgressData), ...errors(409) },
      },
    },
    described,
  );
  app.get(
    '/api/v1.0/progress',
    {
      schema: {
        summary: 'Where the update stands',
        tags: ['ota'],
        response: { 200: Envelope(ProgressData) },
      },
    },
    described,
  );
  app.get(
    '/api/v1.0/versions',
    { schema: { summary: 'Installed versions', tags: ['ota'], response: { 200: Envelope(VersionsData) } } },
    described,
  );
};
