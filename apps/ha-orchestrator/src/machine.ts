// The 13 states of an HA upgrade task and the moves between them, on core's defineMachine.
//
// | from           | to                                                                  |
// | -------------- | ------------------------------------------------------------------- |
// | IDLE           | PREPARE, CANCELLED (cancelled before it started), FAILED            |
// | PREPARE        | BACKUP, ROLLBACK, and CANCELLED / FAILED / TIMEOUT / UNREACHABLE     |
// |                | directly while nothing on the nodes has been changed yet            |
// | BACKUP         | UPGRADE_BACKUP, ROLLBACK                                            |
// | UPGRADE_BACKUP | VIP_SWITCH, ROLLBACK                                                |
// | VIP_SWITCH     | UPGRADE_MASTER, ROLLBACK                                            |
// | UPGRADE_MASTER | VERIFY, ROLLBACK                                                    |
// | VERIFY         | COMPLETE, ROLLBACK                                                  |
// | ROLLBACK       | CANCELLED, FAILED, TIMEOUT, UNREACHABLE (as the cause says)         |
// | COMPLETE, CANCELLED, FAILED, TIMEOUT, UNREACHABLE: final, no move leaves them         |
//
// PREPARE's last step pauses rsync, the first change to the pair; from BACKUP on every way out
// except success goes through ROLLBACK, which undoes what was changed and records each step.
import { defineMachine, type TransitionTable } from '@upgrade/core';
import { HA_STATES, type HaState } from './ports.js';

/** Failure states a task ends in; which one is decided by `failureStateOf`. */
const FAILURE_ENDS = ['CANCELLED', 'FAILED', 'TIMEOUT', 'UNREACHABLE'] as const satisfies readonly HaState[];

export const HA_TRANSITIONS: TransitionTable<HaState> = {
  IDLE: ['PREPARE', 'CANCELLED', 'FAILED'],
  PREPARE: ['BACKUP', 'ROLLBACK', ...FAILURE_ENDS],
  BACKUP: ['UPGRADE_BACKUP', 'ROLLBACK'],
  UPGRADE_BACKUP: ['VIP_SWITCH', 'ROLLBACK'],
  VIP_SWITCH: ['UPGRADE_MASTER', 'ROLLBACK'],
  UPGRADE_MASTER: ['VERIFY', 'ROLLBACK'],
  VERIFY: ['COMPLETE', 'ROLLBACK'],
  ROLLBACK: [...FAILURE_ENDS],
};

/** The HA upgrade machine: `HA_MACHINE.create('IDLE').transition('PREPARE', 'upgrade started')`. */
export const HA_MACHINE = defineMachine({ states: HA_STATES, transitions: HA_TRANSITIONS });

/** States in which the flow is changing the pair; each may fall back to ROLLBACK. */
export const WORKING_STATES: readonly HaState[] = [
  'PREPARE',
  'BACKUP',
  'UPGRADE_BACKUP',
  'VIP_SWITCH',
  'UPGRADE_MASTER',
  'VERIFY',
];

/**
 * Why a run did not complete: a cancel request, the deadline of the whole run (upgradeTimeoutMs),
 * or the error that stopped a step. `code` is an ERROR_CODES value, or whatever code a node's agent
 * answered with.
 */
export type StopCause =
  { kind: 'cancel'; reason: string } | { kind: 'deadline' } | { kind: 'error'; code: string };

/**
 * The final state a stopped run ends in: CANCELLED for a cancel, TIMEOUT only for the deadline of
 * the whole run, UNREACHABLE when a node could not be reached, FAILED for everything else, a
 * step's own timeout included (a call without an answer, replication or the VIP not moving in
 * time: the task's error names the step and the code TIMEOUT).
 */
export function failureStateOf(cause: StopCause): (typeof FAILURE_ENDS)[number] {
  if (cause.kind === 'cancel') return 'CANCELLED';
  if (cause.kind === 'deadline') return 'TIMEOUT';
  switch (cause.code) {
    case 'UNREACHABLE':
      return 'UNREACHABLE';
    default:
      return 'FAILED';
  }
}
