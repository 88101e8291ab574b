// The API: thin routes over the scheduler and the read side.
import { createRotation } from '@upgrade/core';
import { UpgradeError } from '@upgrade/core';
import { Type, errorResponses, type ServicePlugin } from '@upgrade/service';
import type {
  FirmwareFile,
  RoundDetail as RoundDetailModel,
  RoundQueries,
  RoundStore,
  RoundView as RoundViewModel,
} from '../ports.js';
import type { Scheduler } from '../scheduler.js';
import {
  RoundDetail,
  RoundPage,
  RoundView,
  StartedRound,
  StatsResponse,
  StatusResponse,
  type RoundViewBody,
} from './schemas.js';

export interface RoutesDeps {
  queries: RoundQueries;
  store: Pick<RoundStore, 'loadRotation'>;
  scheduler: Pick<Scheduler, 'startManualRound' | 'running' | 'nextTickAt'>;
  files: readonly FirmwareFile[];
  repeats: number;
  now: () => number;
}

const DAY = 24 * 60 * 60 * 1000;

export const roundRoutes: ServicePlugin<RoutesDeps> = async (app, deps) => {
  app.addSchema(RoundView);

  app.get(
    '/api/rounds',
    {
      schema: {
        summary: 'List rounds, newest first',
        tags: ['rounds'],
        querystring: Type.Object({
          page: Type.Integer({ minimum: 1, default: 1 }),
          page_size: Type.Integer({ minimum: 1, maximum: 200, default: 20 }),
        }),
        response: { 200: RoundPage, ...errorResponses(400) },
      },
    },
    async (request) => {
      const { page, page_size: pageSize } = request.query;
      const { items, total } = await deps.queries.listRounds({ page, pageSize });
      return { items: items.map(toRoundView), total, page, pageSize };
    },
  );

  app.get(
    '/api/rounds/:id',
    {
      schema: {
        summary: 'One round with every host result, by round id or by a vendor upgrade uuid',
        tags: ['rounds'],
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) }),
        response: { 200: RoundDetail, ...errorResponses(404) },
      },
    },
    async (request) => {
      const round = await deps.queries.getRound(request.params.id);
      if (round === null)
        throw new UpgradeError('NOT_FOUND', `no round or vendor upgrade with id ${request.params.id}`);
      return toRoundDetail(round);
    },
  );

  app.post(
    '/api/rounds',
    {
      schema: {
        summary: 'Start a round now, outside the schedule',
        description:
          'Answers 202 once the round holds the round lock; 409 while another round runs here or on another instance.',
        tags: ['rounds'],
        response: { 202: StartedRound, ...errorResponses(409, 503) },
      },
    },
    async (_request, reply) => {
      const { roundId } = await deps.scheduler.startManualRound();
      return reply.code(202).send({ roundId });
    },
  );

  app.get(
    '/api/stats',
    {
      schema: {
        summary: 'Success rate and upgrade duration per firmware file and per host',
        tags: ['stats'],
        querystring: Type.Object({
          since: Type.Optional(Type.String({ format: 'date-time', description: 'default: 7 days ago' })),
        }),
        response: { 200: StatsResponse, ...errorResponses(400) },
      },
    },
    async (request) => {
      const since =
        request.query.since === undefined ? new Date(deps.now() - 7 * DAY) : new Date(request.query.since);
      const stats = await deps.queries.stats(since);
      return { ...stats, since: stats.since.toISOString() };
    },
  );

  app.get(
    '/api/status',
    {
      schema: {
        summary: 'The rotation, the running round, the next tick and the last rounds',
        tags: ['status'],
        response: { 200: StatusResponse },
      },
    },
    async () => {
      const state = (await deps.store.loadRotation()) ?? { index: 0, used: 0 };
      const rotation = createRotation(deps.files, deps.repeats);
      const { items } = await deps.queries.listRounds({ page: 1, pageSize: 5 });
      const running = deps.scheduler.running;
      return {
        rotation: {
          files: deps.files.map((f) => f.filename),
          repeats: deps.repeats,
          index: state.index,
          used: state.used,
          upcoming: rotation.preview(state, 6).map((f) => f.filename),
        },
        running: running === null ? null : { ...running, startedAt: running.startedAt.toISOString() },
        nextTickAt: deps.scheduler.nextTickAt?.toISOString() ?? null,
        lastRounds: items.map(toRoundView),
      };
    },
  );
};

function toRoundView(round: RoundViewModel): RoundViewBody {
  return {
    id: round.id,
    trigger: round.trigger,
    status: round.status,
    filename: round.filename,
    fileType: round.fileType,
    startedAt: round.startedAt.toISOString(),
    finishedAt: round.finishedAt?.toISOString() ?? null,
    groups: round.groups,
    summary: round.summary,
  };
}

function toRoundDetail(round: RoundDetailModel) {
  return {
    ...toRoundView(round),
    results: round.results.map((r) => ({
      uuid: r.uuid,
      roomTypeId: r.roomTypeId,
      host: r.host,
      filename: r.filename,
      fileType: r.fileType,
      status: r.status,
      startTime: r.startTime.toISOString(),
      endTime: r.endTime.toISOString(),
      configVersion: r.configVersion,
      firmwareVersion: r.firmwareVersion,
      detail: r.detail,
    })),
  };
}
