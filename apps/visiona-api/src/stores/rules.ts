// What the memory and PostgreSQL stores must agree on, in one place so they cannot drift.
import { UpgradeError } from '@upgrade/core';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a UUID; other ids are looked up as "not found" rather than sent to PostgreSQL (22P02). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/**
 * The CONFLICT PostgreSQL's unique index or foreign key gives, as the memory stores raise it:
 * same code, status and constraint name as the PostgreSQL stores report (db-errors.ts; no SQLSTATE).
 */
export function constraintViolated(constraint: string, kind: 'unique' | 'foreign key'): UpgradeError {
  const what =
    kind === 'unique'
      ? 'a row with this value already exists'
      : 'the referenced row is missing or still referenced';
  return new UpgradeError('CONFLICT', `${kind} constraint "${constraint}" violated: ${what}`, {
    details: { constraint },
  });
}

/** An upsert of a model id that another owner (or a deleted model) holds. */
export function modelNotFound(id: string): UpgradeError {
  return new UpgradeError('NOT_FOUND', `model ${id} not found`);
}

/** A session token for a device that is missing or unpaired. */
export function deviceGone(id: string): UpgradeError {
  return new UpgradeError('CONFLICT', `device ${id} does not exist or is unpaired: pair it again`, {
    details: { deviceId: id },
  });
}

/** Rejects a page the stores cannot serve alike (negative or fractional numbers). */
export function checkPage(page: { limit: number; offset: number }): void {
  if (!Number.isInteger(page.limit) || page.limit < 0 || !Number.isInteger(page.offset) || page.offset < 0)
    throw new UpgradeError('VALIDATION_FAILED', 'page limit and offset must be non-negative integers');
}

const TOKEN_HASH = /^[0-9a-f]{64}$/;

/** Refuses anything but a lowercase SHA-256 hex digest, as the tables' check constraints do. */
export function checkTokenHash(tokenHash: string, table: 'pairing_tokens' | 'session_tokens'): void {
  if (!TOKEN_HASH.test(tokenHash))
    throw new UpgradeError('VALIDATION_FAILED', `check constraint "${table}_hash_check" violated`, {
      details: { constraint: `${table}_hash_check` },
    });
}
