// RoundQueries on PostgreSQL or PGlite: what the API and the report CLI read. Each method is one
// statement (getRound: two in one snapshot), with summaries computed by the database, never N+1.
import { translatePgErrors, withTx } from '@upgrade/db';
import { asc, count, desc, eq, gte, inArray, or, sql, type SQL } from 'drizzle-orm';
import { upgradeLog, upgradeRound, upgradeRoundGroup } from '../db/schema.js';
import type { RoundDetail, RoundQueries, RoundView, StatsRow, UpgradeLogEntry } from '../ports.js';
import type { RcuDatabase } from '../db/database.js';
import { assertPage, assertSince, isUuid, roundDurationMs } from '../db/store-rules.js';

/** Hosts and filenames sort by code point in every store, whatever the database's collation. */
export const byCodePoint = (column: SQL | typeof upgradeLog.hostStr): SQL => sql`${column} collate "C"`;

/** The read side over one drizzle database (pg pool or PGlite). */
export function createPgQueries(db: RcuDatabase): RoundQueries {
  /** Rounds matching `where`, newest first, with their groups and log counts. */
  const roundViews = (q: RcuDatabase, where: SQL | undefined, limit: number, offset: number) => {
    // The page is cut first so the laterals below run for its rounds only; the window count
    // sees every matching round because it is evaluated before LIMIT.
    const page = q
      .select({
        id: upgradeRound.id,
        trigger: upgradeRound.trigger,
        status: upgradeRound.status,
        filename: upgradeRound.filename,
        fileType: upgradeRound.fileType,
        startedAt: upgradeRound.startedAt,
        finishedAt: upgradeRound.finishedAt,
        matching: sql<number>`count(*) over ()`.mapWith(Number).as('matching'),
      })
      .from(upgradeRound)
      .where(where)
      .orderBy(desc(upgradeRound.startedAt), desc(upgradeRound.id))
      .limit(limit)
      .offset(offset)
      .as('page');
    const groups = q
      .select({
        groups: sql<RoundView['groups']>`coalesce(json_agg(json_build_object(
            'roomTypeId', ${upgradeRoundGroup.roomTypeId},
            'uuid', ${upgradeRoundGroup.uuid},
            'hosts', cardinality(${upgradeRoundGroup.hosts}),
            'triggerError', ${upgradeRoundGroup.triggerError}
          ) order by ${upgradeRoundGroup.roomTypeId}), '[]'::json)`.as('groups'),
      })
      .from(upgradeRoundGroup)
      .where(eq(upgradeRoundGroup.roundId, page.id))
      .as('groups');
    const summary = q
      .select({
        total: sql<number>`count(*)::int`.as('total'),
        completed: countStatus('completed').as('completed'),
        failed: countStatus('failed').as('failed'),
        timeout: countStatus('timeout').as('timeout'),
      })
      .from(upgradeLog)
      .where(eq(upgradeLog.roundId, page.id))
      .as('summary');
    return q
      .select({
        id: page.id,
        trigger: page.trigger,
        status: page.status,
        filename: page.filename,
        fileType: page.fileType,
        startedAt: page.startedAt,
        finishedAt: page.finishedAt,
        matching: page.matching,
        groups: groups.groups,
        total: summary.total,
        completed: summary.completed,
        failed: summary.failed,
        timeout: summary.timeout,
      })
      .from(page)
      .leftJoinLateral(groups, sql`true`)
      .leftJoinLateral(summary, sql`true`)
      .orderBy(desc(page.startedAt), desc(page.id));
  };

  type ViewRow = Awaited<ReturnType<typeof roundViews>>[number];
  const toView = (row: ViewRow): RoundView => ({
    id: row.id,
    trigger: row.trigger,
    status: row.status,
    filename: row.filename,
    fileType: row.fileType,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    groups: row.groups ?? [],
    summary: {
      total: row.total ?? 0,
      completed: row.completed ?? 0,
      failed: row.failed ?? 0,
      timeout: row.timeout ?? 0,
    },
  });

  return {
    listRounds: ({ page, pageSize }) =>
      translatePgErrors(async () => {
        assertPage(page, pageSize);
        const offset = (page - 1) * pageSize;
        const rows = await roundViews(db, undefined, pageSize, offset);
        const first = rows[0];
        if (first !== undefined) return { items: rows.map(toView), total: first.matching };
        // Past the last page the window count has no row to ride on.
        const [all] = offset === 0 ? [{ n: 0 }] : await db.select({ n: count() }).from(upgradeRound);
        return { items: [], total: all?.n ?? 0 };
      }),

    getRound: (idOrUuid) =>
      // One snapshot, so the round's summary and its result rows agree.
      withTx(
        db,
        async (tx): Promise<RoundDetail | null> => {
          const byVendorUuid = inArray(
            upgradeRound.id,
            tx
              .select({ id: upgradeRoundGroup.roundId })
              .from(upgradeRoundGroup)
              .where(eq(upgradeRoundGroup.uuid, idOrUuid)),
          );
          const where = isUuid(idOrUuid) ? or(eq(upgradeRound.id, idOrUuid), byVendorUuid) : byVendorUuid;
          // A vendor uuid reused across rounds (it should not be) resolves to the newest round.
          const [row] = await roundViews(tx, where, 1, 0);
          if (row === undefined) return null;
          const results = await tx
            .select()
            .from(upgradeLog)
            .where(eq(upgradeLog.roundId, row.id))
            .orderBy(asc(upgradeLog.roomTypeId), byCodePoint(upgradeLog.hostStr));
          return { ...toView(row), results: results.map(toEntry) };
        },
        { isolationLevel: 'repeatable read', accessMode: 'read only' },
      ),

    stats: (since) =>
      translatePgErrors(async () => {
        assertSince(since);
        const rows = await db
          .select({
            perHost: PER_HOST,
            key: STATS_KEY,
            attempts: sql<number>`count(*)::int`,
            completed: countStatus('completed'),
            failed: countStatus('failed'),
            timeout: countStatus('timeout'),
            p50DurationMs: durationPercentile(0.5),
            p95DurationMs: durationPercentile(0.95),
          })
          .from(upgradeLog)
          .where(gte(upgradeLog.startTime, since))
          // One scan for both breakdowns; grouping() tells their rows apart.
          .groupBy(sql`grouping sets ((${upgradeLog.filename}), (${upgradeLog.hostStr}))`)
          .orderBy(PER_HOST, byCodePoint(STATS_KEY));
        const toRow = ({ perHost: _, ...r }: (typeof rows)[number]): StatsRow => ({
          ...r,
          successRate: r.attempts === 0 ? 0 : r.completed / r.attempts,
        });
        return {
          since,
          byFirmware: rows.filter((r) => r.perHost === 0).map(toRow),
          byHost: rows.filter((r) => r.perHost === 1).map(toRow),
        };
      }),
  };
}

/** 0 on a row of the per-firmware breakdown, 1 on a row of the per-host one. */
const PER_HOST = sql<number>`grouping(${upgradeLog.filename})`.mapWith(Number);
/** The filename or the host, whichever the row's grouping set is. */
const STATS_KEY = sql<string>`coalesce(${upgradeLog.filename}, ${upgradeLog.hostStr})`;
/** Exact: both timestamps are whole milliseconds, as they came from JS Dates. */
export const DURATION_MS = sql`(extract(epoch from (${upgradeLog.endTime} - ${upgradeLog.startTime})) * 1000)::float8`;

/** `percentile_cont` (interpolating, as the memory fake does) of completed attempts' durations. */
export function durationPercentile(fraction: number): SQL<number | null> {
  return sql<
    number | null
  >`percentile_cont(${sql.raw(String(fraction))}) within group (order by ${DURATION_MS})
    filter (where ${upgradeLog.status} = 'completed')`.mapWith((v: unknown) =>
    roundDurationMs(v === null ? null : Number(v)),
  );
}

export function countStatus(status: UpgradeLogEntry['status']): SQL<number> {
  return sql<number>`(count(*) filter (where ${upgradeLog.status} = ${status}))::int`;
}

function toEntry(row: typeof upgradeLog.$inferSelect): UpgradeLogEntry {
  return {
    roundId: row.roundId,
    uuid: row.uuid,
    roomTypeId: row.roomTypeId,
    host: row.hostStr,
    filename: row.filename,
    fileType: row.fileType,
    status: row.status,
    startTime: row.startTime,
    endTime: row.endTime,
    configVersion: row.configVersion,
    firmwareVersion: row.firmwareVersion,
    detail: row.detail,
  };
}
