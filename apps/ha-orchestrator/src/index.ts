// @upgrade/ha-orchestrator as a library: the ports, the app builder and the adapters, for tools and
// tests that embed the orchestrator.
export * from './ports.js';
export { buildApp, type AppDeps } from './app.js';
export {
  createPgApiRequestLog,
  createPgAuditTrail,
  createPgTaskStore,
  createPgUpgradeConfigStore,
} from './adapters/pg-store.js';
export { loadHaConfig, type HaConfig } from './config.js';
export { startHaOrchestrator, openHaDatabase, type RunningService, type StartOptions } from './main.js';
export {
  MANIFEST_FILE,
  parsePackageManifest,
  unpackUpgradePackage,
  verifyPackageSignature,
  type PackageManifest,
  type PackageRejection,
} from './package.js';
export { createTaskRunner, type TaskRunner, type RunUpgrade } from './task-runner.js';
export { SERVICE_NAME, SERVICE_VERSION } from './version.js';
