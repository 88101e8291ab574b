import { FakeClock, isUpgradeError } from '@upgrade/core';
import { describe, expect, it } from 'vitest';
import { HA_MACHINE, HA_TRANSITIONS, WORKING_STATES, failureStateOf } from '../src/machine.js';
import { FINAL_STATES, HA_STATES, type HaState } from '../src/ports.js';

const allPairs = HA_STATES.flatMap((from) => HA_STATES.map((to) => [from, to] as const));

describe('HA_MACHINE', () => {
  it('declares the 13 states', () => {
    expect(HA_MACHINE.states).toEqual(HA_STATES);
    expect(HA_STATES).toHaveLength(13);
  });

  it('walks the success path and records each move with the clock and the reason', () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const m = HA_MACHINE.create('IDLE', { clock });
    const path: HaState[] = [
      'PREPARE',
      'BACKUP',
      'UPGRADE_BACKUP',
      'VIP_SWITCH',
      'UPGRADE_MASTER',
      'VERIFY',
      'COMPLETE',
    ];
    for (const to of path) m.transition(to, `to ${to}`);
    expect(m.state).toBe('COMPLETE');
    expect(m.isFinal()).toBe(true);
    expect(m.history.map((t) => `${t.from}>${t.to}`)).toEqual([
      'IDLE>PREPARE',
      'PREPARE>BACKUP',
      'BACKUP>UPGRADE_BACKUP',
      'UPGRADE_BACKUP>VIP_SWITCH',
      'VIP_SWITCH>UPGRADE_MASTER',
      'UPGRADE_MASTER>VERIFY',
      'VERIFY>COMPLETE',
    ]);
    expect(m.history[0]).toEqual({
      from: 'IDLE',
      to: 'PREPARE',
      at: Date.UTC(2026, 0, 1),
      reason: 'to PREPARE',
    });
  });

  it('reaches ROLLBACK from every working state, and ROLLBACK ends only in a failure state', () => {
    for (const state of WORKING_STATES) expect(HA_MACHINE.canTransition(state, 'ROLLBACK'), state).toBe(true);
    expect(HA_TRANSITIONS.ROLLBACK).toEqual(['CANCELLED', 'FAILED', 'TIMEOUT', 'UNREACHABLE']);
    expect(HA_MACHINE.canTransition('ROLLBACK', 'COMPLETE')).toBe(false);
    expect(HA_MACHINE.canTransition('IDLE', 'ROLLBACK')).toBe(false);
  });

  it('treats exactly the final states of the ports as final', () => {
    expect(HA_STATES.filter((s) => HA_MACHINE.isFinal(s))).toEqual(FINAL_STATES);
  });

  it('lets a failure end a task directly only before anything changed (IDLE, PREPARE)', () => {
    const direct = allPairs
      .filter(
        ([from, to]) =>
          ['FAILED', 'CANCELLED'].includes(to) && from !== 'ROLLBACK' && HA_MACHINE.canTransition(from, to),
      )
      .map(([from, to]) => `${from}>${to}`);
    expect(direct).toEqual(['IDLE>CANCELLED', 'IDLE>FAILED', 'PREPARE>CANCELLED', 'PREPARE>FAILED']);
  });

  it('refuses illegal moves with ILLEGAL_TRANSITION and changes nothing', () => {
    const illegal: [HaState, HaState][] = [
      ['IDLE', 'COMPLETE'],
      ['IDLE', 'VIP_SWITCH'],
      ['PREPARE', 'UPGRADE_BACKUP'],
      ['BACKUP', 'FAILED'],
      ['UPGRADE_BACKUP', 'UPGRADE_MASTER'],
      ['VIP_SWITCH', 'COMPLETE'],
      ['VERIFY', 'FAILED'],
      ['ROLLBACK', 'COMPLETE'],
      ['COMPLETE', 'ROLLBACK'],
      ['FAILED', 'PREPARE'],
      ['CANCELLED', 'IDLE'],
      ['TIMEOUT', 'ROLLBACK'],
      ['UNREACHABLE', 'FAILED'],
    ];
    for (const [from, to] of illegal) {
      const m = HA_MACHINE.create(from);
      let caught: unknown;
      try {
        m.transition(to, 'test');
      } catch (error) {
        caught = error;
      }
      expect(isUpgradeError(caught, 'ILLEGAL_TRANSITION'), `${from} -> ${to}`).toBe(true);
      expect(m.state).toBe(from);
      expect(m.history).toEqual([]);
    }
  });

  it('has no move out of a final state and no move into IDLE', () => {
    for (const [from, to] of allPairs) {
      if (FINAL_STATES.includes(from)) expect(HA_MACHINE.canTransition(from, to)).toBe(false);
      if (to === 'IDLE') expect(HA_MACHINE.canTransition(from, to)).toBe(false);
    }
  });
});

describe('failureStateOf', () => {
  it('maps the cause to the final state', () => {
    expect(failureStateOf({ kind: 'cancel', reason: 'operator' })).toBe('CANCELLED');
    expect(failureStateOf({ kind: 'deadline' })).toBe('TIMEOUT');
    // A step's own timeout is a failure of that step, not the run's deadline.
    expect(failureStateOf({ kind: 'error', code: 'TIMEOUT' })).toBe('FAILED');
    expect(failureStateOf({ kind: 'error', code: 'UNREACHABLE' })).toBe('UNREACHABLE');
    expect(failureStateOf({ kind: 'error', code: 'HEALTH_CHECK_FAILED' })).toBe('FAILED');
    expect(failureStateOf({ kind: 'error', code: 'SOMETHING_THE_AGENT_SAID' })).toBe('FAILED');
  });
});
