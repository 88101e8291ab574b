// TrendQueries on PostgreSQL or PGlite: the console's charts and its failing-host ranking. Each is
// one statement whose size is bounded by its limit (rounds, days or hosts), aggregated by the
// database with grouping sets so one scan feeds every breakdown.
import { translatePgErrors } from '@upgrade/db';
import { UpgradeError } from '@upgrade/core';
import { desc, eq, gte, ne, sql, type SQL } from 'drizzle-orm';
import type { RcuDatabase } from '../db/database.js';
import { upgradeLog, upgradeRound } from '../db/schema.js';
import { assertSince } from '../db/store-rules.js';
import type { FailingHost, TrendPoint, TrendQueries, TrendShare, Trends } from '../ports.js';
import { byCodePoint, countStatus, durationPercentile } from './pg-queries.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Epoch milliseconds of a timestamptz: the same number from both drivers, whatever their parsers. */
const epochMs = (value: SQL | SQL.Aliased | typeof upgradeLog.startTime): SQL<number> =>
  sql<number>`(extract(epoch from ${value}) * 1000)::float8`.mapWith(Number);

/** grouping(filename, roomtype_id): 3 on the bucket's own row, 1 per firmware file, 2 per room type. */
const OVERALL = 3;
const PER_FIRMWARE = 1;
const PER_ROOM_TYPE = 2;

function assertLimit(limit: number, max: number, what: string): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > max)
    throw new UpgradeError('VALIDATION_FAILED', `${what} must be an integer from 1 to ${max} (got ${limit})`);
}

export function createPgTrends(db: RcuDatabase): TrendQueries {
  const measures = {
    filename: upgradeLog.filename,
    roomTypeId: upgradeLog.roomTypeId,
    set: sql<number>`grouping(${upgradeLog.filename}, ${upgradeLog.roomTypeId})`.mapWith(Number),
    attempts: sql<number>`count(*)::int`,
    completed: countStatus('completed'),
    p50DurationMs: durationPercentile(0.5),
    p90DurationMs: durationPercentile(0.9),
    p99DurationMs: durationPercentile(0.99),
  };
  /** The bucket alone, then with each firmware file, then with each room type. */
  const breakdowns = (...bucket: SQL[]): SQL => {
    const key = sql.join(bucket, sql`, `);
    return sql`grouping sets ((${key}), (${key}, ${upgradeLog.filename}), (${key}, ${upgradeLog.roomTypeId}))`;
  };

  const perRound = async (limit: number) => {
    // The newest finished rounds first (the started_at index read backwards), then their rows by
    // round id (the unique index on upgrade_log leads with it).
    const recent = db
      .select({ id: upgradeRound.id, startedAt: upgradeRound.startedAt })
      .from(upgradeRound)
      .where(eq(upgradeRound.status, 'finished'))
      .orderBy(desc(upgradeRound.startedAt), desc(upgradeRound.id))
      .limit(limit)
      .as('recent');
    return db
      .select({ atMs: epochMs(sql`${recent.startedAt}`), roundId: recent.id, ...measures })
      .from(recent)
      .innerJoin(upgradeLog, eq(upgradeLog.roundId, recent.id))
      .groupBy(breakdowns(sql`${recent.startedAt}`, sql`${recent.id}`))
      .orderBy(recent.startedAt, recent.id);
  };

  const perDay = async (limit: number, now: Date) => {
    const day = sql`date_trunc('day', ${upgradeLog.startTime}, 'UTC')`;
    const since = new Date(Math.floor(now.getTime() / DAY_MS) * DAY_MS - (limit - 1) * DAY_MS);
    return db
      .select({ atMs: epochMs(day), roundId: sql<string | null>`null`, ...measures })
      .from(upgradeLog)
      .where(gte(upgradeLog.startTime, since))
      .groupBy(breakdowns(day))
      .orderBy(day);
  };

  return {
    trends: ({ bucket, limit, now }) =>
      translatePgErrors(async (): Promise<Trends> => {
        assertLimit(limit, bucket === 'round' ? 500 : 366, bucket === 'round' ? 'rounds' : 'days');
        assertSince(now);
        const rows = bucket === 'round' ? await perRound(limit) : await perDay(limit, now);
        const overall: TrendPoint[] = [];
        const byFirmware: TrendShare[] = [];
        const byRoomType: TrendShare[] = [];
        for (const row of rows) {
          const at = new Date(row.atMs);
          const share = {
            at,
            attempts: row.attempts,
            completed: row.completed,
            successRate: row.attempts === 0 ? 0 : row.completed / row.attempts,
          };
          if (row.set === OVERALL)
            overall.push({
              ...share,
              roundId: row.roundId,
              p50DurationMs: row.p50DurationMs,
              p90DurationMs: row.p90DurationMs,
              p99DurationMs: row.p99DurationMs,
            });
          else if (row.set === PER_FIRMWARE) byFirmware.push({ ...share, key: row.filename });
          else if (row.set === PER_ROOM_TYPE) byRoomType.push({ ...share, key: String(row.roomTypeId) });
        }
        return { bucket, overall, byFirmware, byRoomType };
      }),

    failingHosts: ({ since, limit }) =>
      translatePgErrors(async (): Promise<FailingHost[]> => {
        assertSince(since);
        assertLimit(limit, 100, 'limit');
        const failures = sql<number>`(count(*) filter (where ${ne(upgradeLog.status, 'completed')}))::int`;
        const rows = await db
          .select({
            host: upgradeLog.hostStr,
            roomTypeId: sql<number>`(array_agg(${upgradeLog.roomTypeId} order by ${upgradeLog.startTime} desc))[1]`,
            attempts: sql<number>`count(*)::int`,
            failed: countStatus('failed'),
            timeout: countStatus('timeout'),
            lastFailureMs:
              sql<number>`(extract(epoch from max(${upgradeLog.endTime}) filter (where ${ne(upgradeLog.status, 'completed')})) * 1000)::float8`.mapWith(
                Number,
              ),
            lastDetail: sql<
              string | null
            >`(array_agg(${upgradeLog.detail} order by ${upgradeLog.endTime} desc, ${upgradeLog.id} desc) filter (where ${ne(upgradeLog.status, 'completed')}))[1]`,
          })
          .from(upgradeLog)
          .where(gte(upgradeLog.startTime, since))
          .groupBy(upgradeLog.hostStr)
          .having(sql`${failures} > 0`)
          .orderBy(desc(failures), desc(sql`${failures}::float8 / count(*)`), byCodePoint(upgradeLog.hostStr))
          .limit(limit);
        return rows.map(({ lastFailureMs, ...r }) => ({
          ...r,
          failureRate: (r.failed + r.timeout) / r.attempts,
          lastFailureAt: new Date(lastFailureMs),
        }));
      }),
  };
}
