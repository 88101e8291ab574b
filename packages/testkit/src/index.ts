// @upgrade/testkit: helpers for tests only; never import it from production code.

/* Page tests import the browser helpers from `@upgrade/testkit/browser` (playwright-core loads only there). */

/** A clock that moves only when a test advances it (re-exported from @upgrade/core). */
export { FakeClock } from '@upgrade/core';
/** A fresh PostgreSQL database per test file, dropped afterwards. */
export {
  createTestDatabase,
  testDatabaseServerUrl,
  useTestDatabase,
  type CreateTestDatabaseOptions,
  type TestDatabase,
  type TestDatabaseRef,
} from './postgres.js';
/** A Redis key prefix per test, with its keys deleted afterwards. */
export {
  deleteKeysWithPrefix,
  redisTestPrefix,
  testRedisUrl,
  useRedisPrefix,
  type RedisPrefixRef,
  type RedisTestPrefix,
} from './redis.js';
/** A loopback HTTP server to build simulators of outside systems on. */
export {
  sendJson,
  sendText,
  startHttpSimulator,
  type HttpSimulator,
  type RecordedRequest,
  type SimulatorHandler,
  type SimulatorRoutes,
} from './http-simulator.js';
/** A TCP proxy a test can cut, to make PostgreSQL or Redis look down. */
export { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
/** Assertion helpers: the UpgradeError a promise rejects with; waiting on a condition. */
export { rejectionOf, waitFor } from './assertions.js';
/** The one fake systemctl (real detached processes, real exit codes) and its helpers. */
export {
  FAKES_DIR,
  TEST_SERVICE,
  createFakeSystemd,
  freePort,
  getHealth,
  livePidsWithTagPrefix,
  type FakeSystemd,
  type FakeUnit,
} from './fake-systemd.js';
/** A real service process made to crash (unhandled rejection / uncaught exception) and how it ended. */
export {
  PROVOKE_CRASH_MODULE,
  probeCrash,
  type CrashProbeOptions,
  type CrashProbeResult,
  type ProvokedCrash,
} from './crash-probe.js';
