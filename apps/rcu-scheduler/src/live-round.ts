// The round this process runs, as the console shows it live: folded from the round's own events,
// so a page watching it costs no vendor call and no query. A round another instance runs is not
// seen here; its results appear in the history once stored.
import { isFinalStatus, type RoundSummary, type RoundTrigger } from './ports.js';
import type { HostSnapshot, RoundEvent } from './rounds.js';

export interface LiveGroup {
  roomTypeId: number;
  uuid: string | null;
  triggerError: string | null;
  hosts: HostSnapshot[];
}

/** `running` until the last host is final, `storing` while results are written, then `finished`. */
export type LivePhase = 'running' | 'storing' | 'finished';

export interface LiveRound {
  roundId: string;
  filename: string;
  trigger: RoundTrigger;
  resumed: boolean;
  startedAt: Date;
  phase: LivePhase;
  groups: LiveGroup[];
  /** Hosts in a final state, of `total`. */
  final: number;
  total: number;
  /** Set once the round is finished. */
  summary: RoundSummary | null;
  /** False when the results wait in the spool for the database; null before the end. */
  stored: boolean | null;
  finishedAt: Date | null;
}

/**
 * What changed: a whole round (as it starts and ends), or one group (its trigger answered, its
 * hosts polled): a round of thousands of hosts is not resent for every group's poll.
 */
export type LiveChange =
  | { type: 'round'; round: LiveRound }
  | { type: 'group'; roundId: string; group: LiveGroup; final: number; total: number };

export interface LiveRounds {
  /** Feeds one round event; wire it to the scheduler's `onEvent`. */
  record(event: RoundEvent): void;
  /** The running round, else the last one this process finished, else null. */
  current(): LiveRound | null;
  /** Calls `listener` on every change until the returned function is called. */
  subscribe(listener: (change: LiveChange) => void): () => void;
}

/** The live view of this process's rounds. `now` stamps the end of a round. */
export function createLiveRounds(now: () => number): LiveRounds {
  let round: LiveRound | null = null;
  const listeners = new Set<(change: LiveChange) => void>();
  const notify = (change: LiveChange): void => {
    for (const listener of listeners) listener(change);
  };
  const countFinal = (r: LiveRound): number =>
    r.groups.reduce((n, g) => n + g.hosts.filter((h) => isFinalStatus(h.status)).length, 0);
  const groupOf = (roomTypeId: number): LiveGroup | undefined =>
    round?.groups.find((g) => g.roomTypeId === roomTypeId);

  return {
    record(event) {
      if (event.type === 'started') {
        round = {
          roundId: event.roundId,
          filename: event.filename,
          trigger: event.trigger,
          resumed: event.resumed,
          startedAt: event.startedAt,
          phase: 'running',
          groups: event.groups.map((g) => ({
            roomTypeId: g.roomTypeId,
            uuid: null,
            triggerError: null,
            hosts: g.hosts.map((host) => ({ host, status: 'pending', progress: 0 })),
          })),
          final: 0,
          total: event.hosts,
          summary: null,
          stored: null,
          finishedAt: null,
        };
        notify({ type: 'round', round });
        return;
      }
      if (round === null || event.roundId !== round.roundId) return;
      switch (event.type) {
        case 'triggered': {
          const group = groupOf(event.roomTypeId);
          if (group === undefined) return;
          group.uuid = event.uuid;
          group.triggerError = event.error;
          notify({ type: 'group', roundId: round.roundId, group, final: round.final, total: round.total });
          return;
        }
        case 'hosts': {
          const group = groupOf(event.roomTypeId);
          if (group === undefined) return;
          group.hosts = event.hosts.map((h) => ({ ...h }));
          round.final = countFinal(round);
          if (round.final === round.total && round.phase === 'running') round.phase = 'storing';
          notify({ type: 'group', roundId: round.roundId, group, final: round.final, total: round.total });
          return;
        }
        case 'finished':
          round.phase = 'finished';
          round.summary = { ...event.summary };
          round.stored = event.stored;
          round.finishedAt = new Date(now());
          round.final = countFinal(round);
          notify({ type: 'round', round });
          return;
        case 'progress':
        case 'stored':
        case 'store-retry':
          return;
      }
    },
    current: () => round,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
