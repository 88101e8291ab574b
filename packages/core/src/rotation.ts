/**
 * Where a rotation stands: which entry of the version list is in use and how many times it has
 * been handed out. Plain data, so a service persists it as is and resumes exactly after a restart.
 */
export interface RotationState {
  index: number;
  used: number;
}

export interface RotationPolicy<V> {
  readonly versions: readonly V[];
  readonly repeats: number;
  /** The version to use now, and the state to persist once that use is finished. */
  next(state: RotationState | null | undefined): { version: V; state: RotationState };
  /** The version `next` would hand out, without advancing. */
  peek(state: RotationState | null | undefined): V;
  /** The first `count` versions from `state`, for status pages: A, A, B, B, ... */
  preview(state: RotationState | null | undefined, count: number): V[];
}

export const initialRotationState: RotationState = { index: 0, used: 0 };

/**
 * A pure rotation over `versions`, each used `repeats` times in a row: with [A, B] and 2,
 * A, A, B, B, A, A, ...
 *
 * Persist the returned state only when the use is done: a crash before that re-runs the same
 * version instead of skipping one.
 */
export function createRotation<V>(versions: readonly V[], repeats = 2): RotationPolicy<V> {
  if (versions.length === 0) throw new RangeError('rotation needs at least one version');
  if (!Number.isInteger(repeats) || repeats < 1) throw new RangeError('repeats must be a positive integer');
  const normalise = (state: RotationState | null | undefined): RotationState => {
    const s = state ?? initialRotationState;
    // A state written under another configuration (fewer versions, fewer repeats) still resumes sanely.
    let index = Number.isInteger(s.index) && s.index >= 0 ? s.index % versions.length : 0;
    let used = Number.isInteger(s.used) && s.used >= 0 ? s.used : 0;
    if (used >= repeats) {
      index = (index + 1) % versions.length;
      used = 0;
    }
    return { index, used };
  };
  const versionAt = (index: number): V => versions[index] as V;
  const policy: RotationPolicy<V> = {
    versions,
    repeats,
    next(state) {
      const s = normalise(state);
      return { version: versionAt(s.index), state: { index: s.index, used: s.used + 1 } };
    },
    peek: (state) => versionAt(normalise(state).index),
    preview(state, count) {
      const out: V[] = [];
      let s: RotationState = normalise(state);
      for (let i = 0; i < count; i++) {
        const step = policy.next(s);
        out.push(step.version);
        s = step.state;
      }
      return out;
    },
  };
  return policy;
}
