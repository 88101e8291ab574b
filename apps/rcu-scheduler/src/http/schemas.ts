// What the API returns. Dates travel as ISO 8601 strings.
import { Type, type Static } from '@upgrade/service';

const DateTime = Type.String({ format: 'date-time' });
const Status = Type.Union([Type.Literal('completed'), Type.Literal('failed'), Type.Literal('timeout')]);

export const Summary = Type.Object({
  total: Type.Integer(),
  completed: Type.Integer(),
  failed: Type.Integer(),
  timeout: Type.Integer(),
});

export const RoundView = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    trigger: Type.Union([Type.Literal('schedule'), Type.Literal('manual'), Type.Literal('recovery')]),
    status: Type.Union([Type.Literal('running'), Type.Literal('finished')]),
    filename: Type.String(),
    fileType: Type.Integer(),
    startedAt: DateTime,
    finishedAt: Type.Union([DateTime, Type.Null()]),
    groups: Type.Array(
      Type.Object({
        roomTypeId: Type.Integer(),
        uuid: Type.Union([Type.String(), Type.Null()]),
        hosts: Type.Integer(),
        triggerError: Type.Union([Type.String(), Type.Null()]),
      }),
    ),
    summary: Summary,
  },
  { $id: 'RoundView' },
);

export const LogEntry = Type.Object({
  uuid: Type.Union([Type.String(), Type.Null()]),
  roomTypeId: Type.Integer(),
  host: Type.String(),
  filename: Type.String(),
  fileType: Type.Integer(),
  status: Status,
  startTime: DateTime,
  endTime: DateTime,
  configVersion: Type.Union([Type.String(), Type.Null()]),
  firmwareVersion: Type.Union([Type.String(), Type.Null()]),
  detail: Type.Union([Type.String(), Type.Null()]),
});

export const RoundDetail = Type.Intersect([
  Type.Ref('RoundView'),
  Type.Object({ results: Type.Array(LogEntry) }),
]);

export const RoundPage = Type.Object({
  items: Type.Array(Type.Ref('RoundView')),
  total: Type.Integer(),
  page: Type.Integer(),
  pageSize: Type.Integer(),
});

const StatsRow = Type.Object({
  key: Type.String(),
  attempts: Type.Integer(),
  completed: Type.Integer(),
  failed: Type.Integer(),
  timeout: Type.Integer(),
  successRate: Type.Number({ minimum: 0, maximum: 1 }),
  p50DurationMs: Type.Union([Type.Number(), Type.Null()]),
  p95DurationMs: Type.Union([Type.Number(), Type.Null()]),
});

export const StatsResponse = Type.Object({
  since: DateTime,
  byFirmware: Type.Array(StatsRow),
  byHost: Type.Array(StatsRow),
});

export const StatusResponse = Type.Object({
  rotation: Type.Object({
    files: Type.Array(Type.String()),
    repeats: Type.Integer(),
    index: Type.Integer(),
    used: Type.Integer(),
    upcoming: Type.Array(Type.String(), { description: 'the files of the next rounds, in order' }),
  }),
  running: Type.Union([
    Type.Object({ roundId: Type.String(), trigger: Type.String(), startedAt: DateTime }),
    Type.Null(),
  ]),
  nextTickAt: Type.Union([DateTime, Type.Null()]),
  lastRounds: Type.Array(Type.Ref('RoundView')),
});

export const StartedRound = Type.Object({ roundId: Type.String({ format: 'uuid' }) });

export type RoundViewBody = Static<typeof RoundView>;

const HostState = Type.Union([
  Type.Literal('pending'),
  Type.Literal('running'),
  Type.Literal('completed'),
  Type.Literal('failed'),
  Type.Literal('timeout'),
]);

export const LiveGroup = Type.Object(
  {
    roomTypeId: Type.Integer(),
    uuid: Type.Union([Type.String(), Type.Null()]),
    triggerError: Type.Union([Type.String(), Type.Null()]),
    hosts: Type.Array(
      Type.Object({
        host: Type.String(),
        status: HostState,
        progress: Type.Number({ minimum: 0, maximum: 100 }),
      }),
    ),
  },
  { $id: 'LiveGroup' },
);

export const LiveRound = Type.Object(
  {
    roundId: Type.String({ format: 'uuid' }),
    filename: Type.String(),
    trigger: Type.Union([Type.Literal('schedule'), Type.Literal('manual'), Type.Literal('recovery')]),
    resumed: Type.Boolean({ description: 'a round an earlier run left unfinished, resumed at start' }),
    startedAt: DateTime,
    phase: Type.Union([Type.Literal('running'), Type.Literal('storing'), Type.Literal('finished')]),
    groups: Type.Array(Type.Ref('LiveGroup')),
    final: Type.Integer({ description: 'hosts in a final state' }),
    total: Type.Integer(),
    summary: Type.Union([Summary, Type.Null()]),
    stored: Type.Union([Type.Boolean(), Type.Null()]),
    finishedAt: Type.Union([DateTime, Type.Null()]),
  },
  { $id: 'LiveRound' },
);

const TrendShare = Type.Object({
  at: DateTime,
  key: Type.String({ description: 'the firmware file, or the room type id' }),
  attempts: Type.Integer(),
  completed: Type.Integer(),
  successRate: Type.Number({ minimum: 0, maximum: 1 }),
});

const Duration = Type.Union([Type.Number(), Type.Null()]);

export const TrendsResponse = Type.Object({
  bucket: Type.Union([Type.Literal('round'), Type.Literal('day')]),
  overall: Type.Array(
    Type.Object({
      at: DateTime,
      roundId: Type.Union([Type.String(), Type.Null()]),
      attempts: Type.Integer(),
      completed: Type.Integer(),
      successRate: Type.Number({ minimum: 0, maximum: 1 }),
      p50DurationMs: Duration,
      p90DurationMs: Duration,
      p99DurationMs: Duration,
    }),
  ),
  byFirmware: Type.Array(TrendShare),
  byRoomType: Type.Array(TrendShare),
});

export const FailingHostsResponse = Type.Object({
  since: DateTime,
  items: Type.Array(
    Type.Object({
      host: Type.String(),
      roomTypeId: Type.Integer(),
      attempts: Type.Integer(),
      failed: Type.Integer(),
      timeout: Type.Integer(),
      failureRate: Type.Number({ minimum: 0, maximum: 1 }),
      lastFailureAt: DateTime,
      lastDetail: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
});

export type LiveRoundBody = Static<typeof LiveRound>;
export type LiveGroupBody = Static<typeof LiveGroup>;
