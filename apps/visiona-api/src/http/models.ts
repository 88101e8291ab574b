// /api/models: a user's AI models. Every route is scoped to the signed-in owner: another user's
// model answers 404 exactly like a missing one.
import { randomUUID } from 'node:crypto';
import { UpgradeError } from '@upgrade/core';
import { Type, errorResponses, type ServicePlugin } from '@upgrade/service';
import type { ModelInput, ModelStore } from '../ports.js';
import type { Authenticate } from './auth.js';
import { IdParams, PageOf, Paging, toModelBody, type ModelInputWire } from './schemas.js';

export interface ModelRoutesDeps {
  models: ModelStore;
  authenticate: Authenticate;
}

const Filters = Type.Object({
  ...Paging.properties,
  owner: Type.Optional(
    Type.String({
      maxLength: 100,
      description: '`me` or your own user id; models are private, so another id lists nothing',
    }),
  ),
  chip: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  source: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
});

export const modelRoutes: ServicePlugin<ModelRoutesDeps> = async (app, { models, authenticate }) => {
  const notFound = (id: string) => new UpgradeError('NOT_FOUND', `model ${id} not found`);

  app.get(
    '/api/models',
    {
      schema: {
        summary: 'List your models, newest first, filtered by chip and source',
        tags: ['models'],
        querystring: Filters,
        response: { 200: PageOf('Model'), ...errorResponses(400, 401, 503) },
      },
    },
    async (request) => {
      const { user } = await authenticate(request);
      const { limit, offset, owner, chip, source } = request.query;
      if (owner !== undefined && owner !== 'me' && owner !== user.id)
        return { items: [], total: 0, limit, offset };
      const page = await models.list({ ownerId: user.id, chip, source }, { limit, offset });
      return { items: page.items.map(toModelBody), total: page.total, limit, offset };
    },
  );

  app.post(
    '/api/models',
    {
      schema: {
        summary: 'Publish a model',
        tags: ['models'],
        body: Type.Ref('ModelInput'),
        response: { 201: Type.Ref('Model'), ...errorResponses(400, 401, 503) },
      },
    },
    async (request, reply) => {
      const { user } = await authenticate(request);
      const model = await models.upsert(toModelInput(randomUUID(), user.id, request.body as ModelInputWire));
      return reply.code(201).send(toModelBody(model));
    },
  );

  app.get(
    '/api/models/:id',
    {
      schema: {
        summary: 'One of your models',
        tags: ['models'],
        params: IdParams,
        response: { 200: Type.Ref('Model'), ...errorResponses(401, 404, 503) },
      },
    },
    async (request) => {
      const { user } = await authenticate(request);
      const model = await models.get(request.params.id, user.id);
      if (model === null) throw notFound(request.params.id);
      return toModelBody(model);
    },
  );

  app.put(
    '/api/models/:id',
    {
      schema: {
        summary: 'Create or replace a model by id (keeps created_at, and faa_object_key unless given)',
        tags: ['models'],
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        body: Type.Ref('ModelInput'),
        response: { 200: Type.Ref('Model'), 201: Type.Ref('Model'), ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      const { user } = await authenticate(request);
      const id = request.params.id.toLowerCase();
      const existed = (await models.get(id, user.id)) !== null;
      const model = await models.upsert(toModelInput(id, user.id, request.body as ModelInputWire));
      return reply.code(existed ? 200 : 201).send(toModelBody(model));
    },
  );

  app.delete(
    '/api/models/:id',
    {
      schema: {
        summary: 'Delete one of your models',
        tags: ['models'],
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses(401, 404, 503) },
      },
    },
    async (request, reply) => {
      const { user } = await authenticate(request);
      if (!(await models.softDelete(request.params.id, user.id))) throw notFound(request.params.id);
      return reply.code(204).send(null);
    },
  );
};

function toModelInput(id: string, ownerId: string, body: ModelInputWire): ModelInput {
  return {
    id,
    ownerId,
    name: body.name,
    chip: body.chip,
    source: body.source,
    labels: body.labels,
    inputShape: body.input_shape,
    ...(body.faa_object_key === undefined ? {} : { faaObjectKey: body.faa_object_key }),
  };
}
