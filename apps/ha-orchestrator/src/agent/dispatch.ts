// Operation name -> handler. Arguments reach a handler only after their schema check.
import type { AgentContext } from './context.js';
import { createBackup, restoreBackup, verifyBackup } from './ops/backup.js';
import { configChecksums } from './ops/config-checksums.js';
import { lockConfig, unlockConfig } from './ops/config-lock.js';
import { health } from './ops/health.js';
import { installJar } from './ops/jar.js';
import { keepalivedStatus, setPriority } from './ops/keepalived.js';
import { replicationStatus } from './ops/replication.js';
import { pauseRsync, resumeRsync, rsyncStatus } from './ops/rsync.js';
import { applySchema } from './ops/schema.js';
import { backupSpace } from './ops/space.js';
import { fenceDatabase, followPrimary, promoteDatabase, unfenceDatabase } from './ops/switchover.js';
import { serviceStatus, startService, stopService } from './ops/services.js';
import { cleanStaging, stagedDigest, stagingInfo } from './ops/staging.js';
import type { AgentOp, ArgsOf, ResultOf } from './protocol.js';
import type { TransportOp, TransportOperations } from './schemas.js';

type Handlers = { [O in AgentOp]: (ctx: AgentContext, args: ArgsOf<O>) => Promise<ResultOf<O>> } & {
  [O in TransportOp]: (
    ctx: AgentContext,
    args: TransportOperations[O]['args'],
  ) => Promise<TransportOperations[O]['result']>;
};

export const HANDLERS: Handlers = {
  health: (ctx) => health(ctx),
  'backup.create': createBackup,
  'backup.verify': verifyBackup,
  'backup.restore': restoreBackup,
  'keepalived.set_priority': setPriority,
  'keepalived.status': (ctx) => keepalivedStatus(ctx),
  'rsync.pause': (ctx) => pauseRsync(ctx),
  'rsync.resume': (ctx) => resumeRsync(ctx),
  'rsync.status': (ctx) => rsyncStatus(ctx),
  'config.lock': lockConfig,
  'config.unlock': (ctx) => unlockConfig(ctx),
  'config.checksums': (ctx) => configChecksums(ctx),
  'service.stop': stopService,
  'service.start': startService,
  'service.status': serviceStatus,
  'jar.install': installJar,
  'schema.apply': applySchema,
  'replication.status': (ctx) => replicationStatus(ctx),
  'staging.clean': cleanStaging,
  'backup.space': (ctx) => backupSpace(ctx),
  'database.fence': (ctx) => fenceDatabase(ctx),
  'database.unfence': (ctx) => unfenceDatabase(ctx),
  'database.promote': (ctx) => promoteDatabase(ctx),
  'database.follow': followPrimary,
  'staging.info': async (ctx) => stagingInfo(ctx),
  'staging.sha256': stagedDigest,
};
