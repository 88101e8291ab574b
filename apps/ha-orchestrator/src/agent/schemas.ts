// Checks of what arrives on stdin: the request envelope and each operation's arguments. The
// TypeScript shapes live in protocol.ts; these checks are kept equal to them by `satisfies`.
import { plainName, sha256Hex, version } from './names.js';
import type { AgentOp, ArgsOf } from './protocol.js';
import { arr, int, literal, obj, str, type Check } from './validate.js';

const empty = obj({});
const backupId = plainName;
const backupKind = literal('jar', 'config', 'root_key', 'database');
const service = obj({
  service: str({
    pattern: /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$/,
    hint: 'must be a service name from the agent config',
  }),
});
const staged = { stagedName: plainName, sha256: sha256Hex };

export const ARGS: { [O in AgentOp]: Check<ArgsOf<O>> } = {
  health: empty,
  'backup.create': obj({ backupId, retention: int({ min: 1, max: 100 }) }),
  'backup.verify': obj({
    backupId,
    files: arr(
      obj({
        kind: backupKind,
        path: str({ pattern: /^\//, hint: 'must be an absolute path' }),
        md5: str({ pattern: /^[0-9a-fA-F]{32}$/, hint: 'must be a hex MD5' }),
        sha256: sha256Hex,
      }),
      { min: 1, max: 16 },
    ),
  }),
  'backup.restore': obj({ backupId, kinds: arr(backupKind, { min: 1, max: 4 }) }),
  'keepalived.set_priority': obj({ priority: int({ min: 1, max: 254 }) }),
  'keepalived.status': empty,
  'rsync.pause': empty,
  'rsync.resume': empty,
  'rsync.status': empty,
  'config.lock': obj({ owner: plainName }),
  'config.unlock': empty,
  'config.checksums': empty,
  'service.stop': service,
  'service.start': service,
  'service.status': service,
  'jar.install': obj({ ...staged, version }),
  'schema.apply': obj(staged),
  'replication.status': empty,
  'backup.space': empty,
  'database.fence': empty,
  'database.unfence': empty,
  'database.promote': empty,
  'database.follow': obj({
    primaryHost: str({
      pattern: /^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$/,
      hint: 'must be a host name or IP address',
    }),
    primaryPort: int({ min: 1, max: 65_535 }),
  }),
  'staging.clean': obj({ prefix: plainName }),
};

/** Operations of the transport (SshNodeClient.putFile), not of the upgrade flow. */
export interface TransportOperations {
  'staging.info': { args: Record<string, never>; result: { dir: string } };
  'staging.sha256': {
    args: { stagedName: string };
    result: { stagedName: string; sha256: string; sizeBytes: number };
  };
}
export type TransportOp = keyof TransportOperations;

export const TRANSPORT_ARGS: { [O in TransportOp]: Check<TransportOperations[O]['args']> } = {
  'staging.info': empty,
  'staging.sha256': obj({ stagedName: plainName }),
};

export const envelope = obj({
  op: str({ max: 64 }),
  args: (value: unknown) => value,
  timeoutMs: int({ min: 1, max: 24 * 3_600_000 }),
  requestId: str({ pattern: /^[\x21-\x7e]+$/, max: 128, hint: 'must be printable ASCII without spaces' }),
});
