// replication.status: on a primary from pg_stat_replication (standbys streaming, the slowest one's
// replay position and replay_lag), on a standby from its WAL receiver (pg_stat_wal_receiver) and
// received vs replayed WAL. A standby whose receiver does not stream is never "in sync", however
// little it has left to replay: it gets nothing new. GaussDB keeps the pre-10 function names
// (xlog/location) and its own pg_stat_replication columns.
import type { AgentContext } from '../context.js';
import { isInRecovery, queryRows } from '../database.js';
import type { ResultOf } from '../protocol.js';

const SQL = {
  postgresql: {
    primary:
      "select count(*) filter (where state = 'streaming'), count(*), " +
      'coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint, ' +
      'coalesce(max(extract(epoch from replay_lag) * 1000), 0)::bigint, pg_current_wal_lsn() ' +
      'from pg_stat_replication',
    standby:
      "select coalesce((select status from pg_stat_wal_receiver limit 1), 'stopped'), " +
      'coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::bigint, ' +
      'case when pg_last_wal_receive_lsn() is not distinct from pg_last_wal_replay_lsn() then 0 ' +
      'else coalesce((extract(epoch from now() - pg_last_xact_replay_timestamp()) * 1000)::bigint, 0) end, ' +
      'pg_last_wal_replay_lsn()',
  },
  gaussdb: {
    primary:
      "select count(*) filter (where lower(state) = 'streaming'), count(*), " +
      'coalesce(max(pg_xlog_location_diff(pg_current_xlog_location(), receiver_replay_location)), 0)::bigint, ' +
      '0::bigint, pg_current_xlog_location() from pg_stat_replication',
    standby:
      "select case when pg_last_xlog_receive_location() is null then 'stopped' else 'streaming' end, " +
      'coalesce(pg_xlog_location_diff(pg_last_xlog_receive_location(), pg_last_xlog_replay_location()), 0)::bigint, ' +
      '0::bigint, pg_last_xlog_replay_location()',
  },
} as const;

const num = (text: string | undefined): number | null => {
  const n = Number(text ?? 'NaN');
  return text === undefined || text === '' || !Number.isFinite(n) ? null : n;
};

export async function replicationStatus(ctx: AgentContext): Promise<ResultOf<'replication.status'>> {
  const sql = SQL[ctx.config.database.kind];
  const endpoint = { host: ctx.config.database.host, port: ctx.config.database.port };
  if (await isInRecovery(ctx)) {
    const row = (await queryRows(ctx, sql.standby))[0] ?? [];
    const receiver = row[0] ?? 'stopped';
    const connected = receiver === 'streaming';
    const lagBytes = num(row[1]);
    const lagMs = num(row[2]);
    const lsn = row[3] === undefined || row[3] === '' ? null : row[3];
    return {
      role: 'standby',
      connected,
      standbys: 0,
      inSync: connected && lagBytes === 0,
      lagBytes,
      lagMs,
      lsn,
      endpoint,
      detail: !connected
        ? `WAL receiver ${receiver}: not streaming from a primary`
        : lagBytes === 0
          ? 'streaming, all received WAL replayed'
          : `streaming, ${lagBytes ?? '?'} bytes received but not replayed yet`,
    };
  }
  const row = (await queryRows(ctx, sql.primary))[0] ?? [];
  const streaming = num(row[0]) ?? 0;
  const total = num(row[1]) ?? 0;
  const lsn = row[4] === undefined || row[4] === '' ? null : row[4];
  if (total === 0)
    return {
      role: 'primary',
      connected: false,
      standbys: 0,
      inSync: false,
      lagBytes: null,
      lagMs: null,
      lsn,
      endpoint,
      detail: 'no standby connected',
    };
  const lagBytes = num(row[2]);
  const lagMs = num(row[3]);
  const connected = streaming > 0 && streaming === total;
  return {
    role: 'primary',
    connected,
    standbys: streaming,
    inSync: connected && lagBytes === 0,
    lagBytes,
    lagMs,
    lsn,
    endpoint,
    detail: !connected
      ? `${total} standby(s) connected, ${streaming} streaming`
      : lagBytes === 0
        ? `${streaming} standby(s) streaming, replayed up to the current WAL position`
        : `${streaming} standby(s) streaming, ${lagBytes ?? '?'} bytes behind`,
  };
}
