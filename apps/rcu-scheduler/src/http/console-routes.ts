// What the console reads besides the rounds API: trends for its charts, the failing hosts ranked,
// and the live round as server-sent events. Registered on the root app: event streams are ended by
// the root's close, and an encapsulated plugin instance is not the one they are kept under.
import { Type, errorResponses, openEventStream, type ServiceApp } from '@upgrade/service';
import type { LiveGroup as LiveGroupModel, LiveRound as LiveRoundModel, LiveRounds } from '../live-round.js';
import type { FailingHost, TrendQueries } from '../ports.js';
import type { Scheduler } from '../scheduler.js';
import {
  FailingHostsResponse,
  LiveGroup,
  LiveRound,
  TrendsResponse,
  type LiveGroupBody,
  type LiveRoundBody,
} from './schemas.js';

export interface ConsoleRoutesDeps {
  trends: TrendQueries;
  live: Pick<LiveRounds, 'current' | 'subscribe'>;
  scheduler: Pick<Scheduler, 'nextTickAt'>;
  now: () => number;
}

const DAY = 24 * 60 * 60 * 1000;

export function registerConsoleRoutes(app: ServiceApp, deps: ConsoleRoutesDeps): void {
  app.addSchema(LiveGroup);
  app.addSchema(LiveRound);

  app.get(
    '/api/trends',
    {
      schema: {
        summary:
          'Success rate (overall, per firmware file, per room type) and duration percentiles over time',
        description:
          'One point per finished round (`bucket=round`, the last `limit` rounds) or per UTC day (`bucket=day`, the last `limit` days), oldest first.',
        tags: ['stats'],
        querystring: Type.Object({
          bucket: Type.Union([Type.Literal('round'), Type.Literal('day')], { default: 'round' }),
          limit: Type.Integer({ minimum: 1, maximum: 366, default: 30 }),
        }),
        response: { 200: TrendsResponse, ...errorResponses(400) },
      },
    },
    async (request) => {
      const { bucket, limit } = request.query;
      const trends = await deps.trends.trends({ bucket, limit, now: new Date(deps.now()) });
      const at = <T extends { at: Date }>(p: T) => ({ ...p, at: p.at.toISOString() });
      return {
        bucket,
        overall: trends.overall.map(at),
        byFirmware: trends.byFirmware.map(at),
        byRoomType: trends.byRoomType.map(at),
      };
    },
  );

  app.get(
    '/api/hosts/failing',
    {
      schema: {
        summary: 'Hosts that failed or timed out, most failures first',
        description:
          'Ranked by failures, then failure rate, then host name. Default window: the last 7 days.',
        tags: ['stats'],
        querystring: Type.Object({
          since: Type.Optional(Type.String({ format: 'date-time', description: 'default: 7 days ago' })),
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
        }),
        response: { 200: FailingHostsResponse, ...errorResponses(400) },
      },
    },
    async (request) => {
      const since =
        request.query.since === undefined ? new Date(deps.now() - 7 * DAY) : new Date(request.query.since);
      const hosts = await deps.trends.failingHosts({ since, limit: request.query.limit });
      return { since: since.toISOString(), items: hosts.map(toFailingHostBody) };
    },
  );

  app.get(
    '/api/events',
    {
      schema: {
        summary: 'The round this instance runs, live (server-sent events)',
        description:
          '`snapshot` on connect (`{ round, nextTickAt }`, `round` a LiveRound or null: the running round, else the last one this instance finished); then `round` (`{ round, nextTickAt }`, as a round starts and ends) and `group` (`{ roundId, group, final, total }`, as a group is triggered or polled). A keep-alive comment every 15 s. Rounds another instance runs are not streamed.',
        tags: ['rounds'],
        response: {
          200: {
            description: 'text/event-stream; every `data:` line is JSON',
            content: { 'text/event-stream': { schema: Type.String() } },
          },
        },
      },
    },
    async (request, reply) => {
      const stream = openEventStream(app, request, reply);
      const current = deps.live.current();
      stream.send('snapshot', {
        round: current === null ? null : toLiveRoundBody(current),
        nextTickAt: deps.scheduler.nextTickAt?.toISOString() ?? null,
      });
      const unsubscribe = deps.live.subscribe((change) => {
        if (change.type === 'round')
          stream.send('round', {
            round: toLiveRoundBody(change.round),
            nextTickAt: deps.scheduler.nextTickAt?.toISOString() ?? null,
          });
        else
          stream.send('group', {
            roundId: change.roundId,
            group: toLiveGroupBody(change.group),
            final: change.final,
            total: change.total,
          });
      });
      stream.onClose(unsubscribe);
      return reply;
    },
  );
}

function toLiveGroupBody(group: LiveGroupModel): LiveGroupBody {
  return {
    roomTypeId: group.roomTypeId,
    uuid: group.uuid,
    triggerError: group.triggerError,
    hosts: group.hosts.map((h) => ({ host: h.host, status: h.status, progress: h.progress })),
  };
}

function toLiveRoundBody(round: LiveRoundModel): LiveRoundBody {
  return {
    roundId: round.roundId,
    filename: round.filename,
    trigger: round.trigger,
    resumed: round.resumed,
    startedAt: round.startedAt.toISOString(),
    phase: round.phase,
    groups: round.groups.map(toLiveGroupBody),
    final: round.final,
    total: round.total,
    summary: round.summary,
    stored: round.stored,
    finishedAt: round.finishedAt?.toISOString() ?? null,
  };
}

function toFailingHostBody(host: FailingHost) {
  return { ...host, lastFailureAt: host.lastFailureAt.toISOString() };
}
