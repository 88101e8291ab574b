import { systemClock, type Clock } from './clock.js';
import { UpgradeError } from './errors.js';

/** One recorded move of a machine. */
export interface Transition<S extends string> {
  from: S;
  to: S;
  /** Milliseconds since the epoch, from the machine's clock. */
  at: number;
  reason: string;
}

export type TransitionListener<S extends string> = (transition: Transition<S>) => void;

/** The legal moves, by source state. A state with no entry (or an empty list) is final. */
export type TransitionTable<S extends string> = { readonly [K in S]?: readonly S[] };

export interface MachineDefinition<S extends string> {
  readonly states: readonly S[];
  readonly transitions: TransitionTable<S>;
  /** True when `to` is a legal next state of `from`. */
  canTransition(from: S, to: S): boolean;
  /** True when no move leaves `state`. */
  isFinal(state: S): boolean;
  /** Throws ILLEGAL_TRANSITION unless `from -> to` is legal. */
  assertTransition(from: S, to: S): void;
  /** A running instance, starting in `initial` (or resumed in a persisted state). */
  create(initial: S, options?: { clock?: Clock; history?: readonly Transition<S>[] }): Machine<S>;
}

export interface Machine<S extends string> {
  readonly state: S;
  readonly history: readonly Transition<S>[];
  readonly definition: MachineDefinition<S>;
  /** Moves to `to`, recording why. Throws ILLEGAL_TRANSITION and changes nothing when not allowed. */
  transition(to: S, reason: string): Transition<S>;
  can(to: S): boolean;
  isFinal(): boolean;
  /** Called synchronously after each transition; listener errors are isolated from the machine. */
  onTransition(listener: TransitionListener<S>): () => void;
}

/**
 * Declares a typed state machine. Each service declares its own states on it.
 *
 * @example
 * const rcu = defineMachine({
 *   states: ['triggered', 'polling', 'completed', 'failed', 'timeout'],
 *   transitions: { triggered: ['polling', 'failed'], polling: ['completed', 'failed', 'timeout'] },
 * });
 * const m = rcu.create('triggered');
 * m.transition('polling', 'vendor accepted the upgrade');
 */
export function defineMachine<const S extends string>(spec: {
  states: readonly S[];
  transitions: TransitionTable<S>;
}): MachineDefinition<S> {
  const known = new Set<string>(spec.states);
  for (const [from, targets] of Object.entries<readonly string[] | undefined>(spec.transitions)) {
    if (!known.has(from)) throw new Error(`transition table names unknown state ${from}`);
    for (const to of targets ?? []) {
      if (!known.has(to)) throw new Error(`transition ${from} -> ${to} names unknown state ${to}`);
    }
  }
  const definition: MachineDefinition<S> = {
    states: spec.states,
    transitions: spec.transitions,
    canTransition: (from, to) => spec.transitions[from]?.includes(to) ?? false,
    isFinal: (state) => (spec.transitions[state]?.length ?? 0) === 0,
    assertTransition(from, to) {
      if (!definition.canTransition(from, to)) {
        const allowed = spec.transitions[from] ?? [];
        throw new UpgradeError(
          'ILLEGAL_TRANSITION',
          `cannot move from ${from} to ${to}; allowed from ${from}: ${allowed.length > 0 ? allowed.join(', ') : 'none (final state)'}`,
          { details: { from, to, allowed: [...allowed] } },
        );
      }
    },
    create: (initial, options = {}) =>
      createMachine(definition, initial, options.clock ?? systemClock, options.history),
  };
  return definition;
}

function createMachine<S extends string>(
  definition: MachineDefinition<S>,
  initial: S,
  clock: Clock,
  history: readonly Transition<S>[] = [],
): Machine<S> {
  if (!definition.states.includes(initial)) throw new Error(`unknown initial state ${initial}`);
  let state = initial;
  const recorded: Transition<S>[] = [...history];
  const listeners = new Set<TransitionListener<S>>();
  return {
    get state() {
      return state;
    },
    get history() {
      return recorded;
    },
    definition,
    can: (to) => definition.canTransition(state, to),
    isFinal: () => definition.isFinal(state),
    transition(to, reason) {
      definition.assertTransition(state, to);
      const t: Transition<S> = { from: state, to, at: clock.now(), reason };
      state = to;
      recorded.push(t);
      for (const listener of listeners) {
        try {
          listener(t);
        } catch {
          // A broken observer must not undo or block a state change that already happened.
        }
      }
      return t;
    },
    onTransition(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
