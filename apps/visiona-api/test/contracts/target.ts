// What a contract suite needs from one implementation of the persistent stores.
import type { FakeClock } from '@upgrade/testkit';
import type { PersistentStores } from '../../src/stores/index.js';

/** One backend under test: `fresh` empties it and hands stores on a new fake clock. */
export interface StoresTarget {
  fresh(): Promise<{ stores: PersistentStores; clock: FakeClock }>;
  /** Makes revoking a device's session tokens fail inside unpairing, until the next `fresh`. */
  breakTokenRevocation(): Promise<void>;
  close(): Promise<void>;
}

/** Registers `beforeEach` and returns accessors for the current test's stores and clock. */
export type Fresh = () => { stores: PersistentStores; clock: FakeClock };
