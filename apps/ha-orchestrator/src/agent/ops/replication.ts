// replication.status: on a primary from pg_stat_replication (every standby streaming and replayed up
// to the current WAL position), on a standby from received vs replayed WAL. GaussDB keeps the
// pre-10 function names (xlog/location) and its own pg_stat_replication columns.
import type { AgentContext } from '../context.js';
import { isInRecovery, queryRows } from '../database.js';
import type { ResultOf } from '../protocol.js';

const SQL = {
  postgresql: {
    primary:
      "select count(*), coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint, coalesce(bool_and(state = 'streaming'), false) from pg_stat_replication",
    standby:
      'select pg_last_wal_receive_lsn() is not null, coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::bigint',
  },
  gaussdb: {
    primary:
      "select count(*), coalesce(max(pg_xlog_location_diff(pg_current_xlog_location(), receiver_replay_location)), 0)::bigint, coalesce(bool_and(lower(state) = 'streaming'), false) from pg_stat_replication",
    standby:
      'select pg_last_xlog_receive_location() is not null, coalesce(pg_xlog_location_diff(pg_last_xlog_receive_location(), pg_last_xlog_replay_location()), 0)::bigint',
  },
} as const;

export async function replicationStatus(ctx: AgentContext): Promise<ResultOf<'replication.status'>> {
  const sql = SQL[ctx.config.database.kind];
  if (await isInRecovery(ctx)) {
    const row = (await queryRows(ctx, sql.standby))[0] ?? [];
    const receiving = row[0] === 't';
    const lag = Number(row[1] ?? 'NaN');
    if (!receiving)
      return {
        role: 'standby',
        inSync: false,
        lagBytes: null,
        detail: 'standby has received no WAL from a primary',
      };
    return {
      role: 'standby',
      inSync: lag === 0,
      lagBytes: Number.isFinite(lag) ? lag : null,
      detail: lag === 0 ? 'all received WAL replayed' : `${lag} bytes received but not replayed yet`,
    };
  }
  const row = (await queryRows(ctx, sql.primary))[0] ?? [];
  const standbys = Number(row[0] ?? '0');
  if (standbys === 0)
    return { role: 'primary', inSync: false, lagBytes: null, detail: 'no standby connected' };
  const lag = Number(row[1] ?? 'NaN');
  const streaming = row[2] === 't';
  return {
    role: 'primary',
    inSync: streaming && lag === 0,
    lagBytes: Number.isFinite(lag) ? lag : null,
    detail: !streaming
      ? `${standbys} standby(s) connected, not all streaming`
      : lag === 0
        ? `${standbys} standby(s) streaming, replayed up to the current WAL position`
        : `${standbys} standby(s) streaming, ${lag} bytes behind`,
  };
}
