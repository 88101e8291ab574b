import { describe, expect, it } from 'vitest';
import { createRotation, type RotationState } from '../src/index.js';

describe('createRotation', () => {
  it('hands out each version twice in a row: A, A, B, B, A, A', () => {
    const rotation = createRotation(['A', 'B'], 2);
    expect(rotation.preview(null, 6)).toEqual(['A', 'A', 'B', 'B', 'A', 'A']);
  });

  it('resumes exactly after a restart in the middle of a pair', () => {
    const rotation = createRotation(['A', 'B'], 2);
    const first = rotation.next(null);
    // Only the state persisted after a finished use survives the restart.
    const persisted: RotationState = JSON.parse(JSON.stringify(first.state)) as RotationState;

    const restarted = createRotation(['A', 'B'], 2);
    const second = restarted.next(persisted);
    const third = restarted.next(second.state);
    expect([first.version, second.version, third.version]).toEqual(['A', 'A', 'B']);
  });

  it('repeats the same version when a use was not finished before the crash', () => {
    const rotation = createRotation(['A', 'B'], 2);
    const done = rotation.next(null).state; // A finished and persisted
    const started = rotation.next(done); // A again, crashed before persisting
    expect(started.version).toBe('A');
    expect(rotation.next(done).version).toBe('A');
  });

  it('honours other repeat counts and list lengths', () => {
    expect(createRotation(['x', 'y', 'z'], 1).preview(null, 4)).toEqual(['x', 'y', 'z', 'x']);
    expect(createRotation(['x', 'y'], 3).preview(null, 7)).toEqual(['x', 'x', 'x', 'y', 'y', 'y', 'x']);
  });

  it('resumes sanely from a state written under a larger configuration', () => {
    const rotation = createRotation(['A', 'B'], 2);
    expect(rotation.peek({ index: 5, used: 9 })).toBe('A');
    expect(rotation.peek({ index: -1, used: 0.5 })).toBe('A');
  });

  it('refuses an empty list and a non-positive repeat count', () => {
    expect(() => createRotation([], 2)).toThrow(RangeError);
    expect(() => createRotation(['A'], 0)).toThrow(RangeError);
  });
});
