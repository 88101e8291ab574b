// Checks every RoundStore / RoundQueries implementation makes before touching its storage, kept
// in one place so the PostgreSQL store and the memory fake of the tests answer alike.
import { UpgradeError } from '@upgrade/core';
import type { UpgradeLogEntry } from '../ports.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * True for the canonical uuid text. Anything else must not be compared with a uuid column:
 * PostgreSQL would fail the whole statement (22P02) instead of finding nothing.
 */
export const isUuid = (value: string): boolean => UUID.test(value);

/** Round ids are uuids (the column type); a caller handing anything else has a bug. */
export function assertRoundId(id: string): void {
  if (!isUuid(id))
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `round id ${JSON.stringify(id)} is not a uuid; use randomUUID()`,
    );
}

/** Rows of another round in a finish are a bug in the caller; writing them would mislabel results. */
export function assertEntriesOf(roundId: string, entries: readonly UpgradeLogEntry[]): void {
  const stray = entries.find((e) => e.roundId !== roundId);
  if (stray !== undefined)
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `finishRound(${roundId}) got a result of round ${stray.roundId} (host ${stray.host}); finish each round with its own results`,
    );
}

/** Pages count from 1; the HTTP schema already refuses others, this guards the CLI and tests. */
export function assertPage(page: number, pageSize: number): void {
  if (!Number.isInteger(page) || page < 1 || !Number.isInteger(pageSize) || pageSize < 1)
    throw new UpgradeError(
      'VALIDATION_FAILED',
      `page (${page}) and pageSize (${pageSize}) must be positive integers`,
    );
}

/** An Invalid Date would match nothing in one store and fail the statement in another. */
export function assertSince(since: Date): void {
  if (Number.isNaN(since.getTime()))
    throw new UpgradeError('VALIDATION_FAILED', 'stats need a valid `since` date (ISO 8601)');
}

/** The error of `recordTrigger` for a group the round never recorded. */
export function groupNotFound(roundId: string, roomTypeId: number): UpgradeError {
  return new UpgradeError(
    'NOT_FOUND',
    `round ${roundId} has no group for room type ${roomTypeId}; record the round with startRound first`,
  );
}

/** The error of `finishRound` for a round never recorded by `startRound`. */
export function roundNotFound(roundId: string): UpgradeError {
  return new UpgradeError('NOT_FOUND', `round ${roundId} was never started; record it with startRound first`);
}

/** Durations are reported in whole milliseconds: finer figures are noise for a firmware upgrade. */
export const roundDurationMs = (ms: number | null): number | null => (ms === null ? null : Math.round(ms));
