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
