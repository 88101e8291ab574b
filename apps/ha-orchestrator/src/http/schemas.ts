// What the API accepts and returns. Dates travel as ISO 8601 strings; field names are snake_case,
// the style of the operators' existing tooling around the HA pair.
import { Type, type Static } from '@upgrade/service';
import { HA_STATES } from '../ports.js';

const DateTime = Type.String({ format: 'date-time' });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

export const State = Type.Enum([...HA_STATES], {
  description: 'COMPLETE, CANCELLED, FAILED, TIMEOUT and UNREACHABLE are final',
});
export const Level = Type.Enum(['INFO', 'WARNING', 'ERROR']);

export const TaskView = Type.Object(
  {
    task_id: Type.String({ format: 'uuid' }),
    state: State,
    final: Type.Boolean(),
    percent: Type.Integer({ minimum: 0, maximum: 100 }),
    current_step: Nullable(Type.String()),
    last_message: Nullable(Type.String()),
    error: Nullable(
      Type.Object({
        code: Type.String(),
        message: Type.String(),
        step: Nullable(Type.String({ description: 'the step that failed, when the error came from one' })),
      }),
    ),
    from_version: Nullable(Type.String()),
    to_version: Type.String(),
    package_sha256: Type.String(),
    primary_before: Nullable(Type.String()),
    primary_after: Nullable(Type.String()),
    downtime_ms: Nullable(Type.Integer()),
    created_at: DateTime,
    started_at: Nullable(DateTime),
    finished_at: Nullable(DateTime),
    cancel_requested_at: Nullable(DateTime),
    cancel_reason: Nullable(Type.String()),
    requested_by: Nullable(Type.String()),
  },
  { $id: 'UpgradeTask' },
);
export type TaskViewBody = Static<typeof TaskView>;

export const TriggerResponse = Type.Object({
  task_id: Type.String({ format: 'uuid' }),
  state: State,
  to_version: Type.String(),
  package_sha256: Type.String(),
  progress_url: Type.String(),
});

export const StepView = Type.Object({
  step: Type.String(),
  node_id: Nullable(Type.String()),
  status: Type.Enum(['started', 'succeeded', 'failed', 'skipped']),
  message: Type.String(),
  percent: Type.Integer(),
  at: DateTime,
  duration_ms: Nullable(Type.Integer()),
});

export const ProgressResponse = Type.Intersect([
  Type.Ref('UpgradeTask'),
  Type.Object({
    finished_steps: Type.Array(StepView, { description: 'steps that ended, oldest first' }),
    elapsed_ms: Nullable(Type.Integer({ description: 'since the task started (until it ended)' })),
    estimated_completion_at: Nullable(
      Type.String({
        format: 'date-time',
        description:
          'while running: now + elapsed x (100 - percent) / percent; null before the first progress and once final',
      }),
    ),
  }),
]);

export const PageQuery = Type.Object({
  page: Type.Integer({ minimum: 1, default: 1 }),
  page_size: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
});

export const HistoryResponse = Type.Object({
  items: Type.Array(Type.Ref('UpgradeTask')),
  page: Type.Integer(),
  page_size: Type.Integer(),
  total: Type.Integer(),
});

export const LogView = Type.Object({
  at: DateTime,
  level: Level,
  source: Type.String({
    description:
      'who wrote the line: orchestrator (the upgrade flow), a node id (a step on that node), api (a request such as cancel), recovery (start-up after a crash)',
  }),
  message: Type.String(),
  from_state: Nullable(State),
  to_state: Nullable(State),
  details: Nullable(Type.Record(Type.String(), Type.Unknown())),
});

export const LogsResponse = Type.Object({
  task_id: Type.String({ format: 'uuid' }),
  items: Type.Array(LogView, { description: 'newest first' }),
  page: Type.Integer(),
  page_size: Type.Integer(),
  total: Type.Integer(),
});

export const TaskIdParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

/** Query of POST /rollback/{id}. */
export const RollbackQuery = Type.Object(
  {
    restore_database: Type.Optional(
      Type.Boolean({
        description:
          "also replace the database from the backup's dump (both nodes stopped; writes since the backup lost). Default false",
      }),
    ),
  },
  { additionalProperties: false },
);

export const CancelBody = Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 500 }) },
  { additionalProperties: false },
);

export const TriggerBody = Type.Object(
  {
    package: Type.String({ format: 'binary', description: 'the upgrade package (ZIP with manifest.json)' }),
    signature: Type.String({
      description: 'base64 of the ed25519 signature over the exact bytes of `package`',
    }),
  },
  { required: ['package', 'signature'] },
);
