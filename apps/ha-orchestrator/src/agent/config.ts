// The node agent's config file: everything it may touch on this node. Callers name things from it
// (a service name, a staged file name); they never send paths, units or command lines.
import { readFile } from 'node:fs/promises';
import { UpgradeError } from '@upgrade/core';
import { PLAIN_NAME } from './names.js';
import { arr, bool, int, literal, obj, optional, parseWith, record, str, type Infer } from './validate.js';

/** Environment variable naming the config file when `--config` is not given. */
export const CONFIG_ENV = 'HA_AGENT_CONFIG';

const absPath = str({ pattern: /^\//, hint: 'must be an absolute path' });
const argv = arr(str(), { min: 1, max: 64 });
const env = record(
  str({ min: 0 }),
  str({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/, hint: 'must be an environment variable name' }),
);
const unit = str({
  pattern: /^[A-Za-z0-9_][A-Za-z0-9@._:-]{0,254}$/,
  hint: 'must be a systemd unit name',
});
const url = str({ pattern: /^https?:\/\/[^\s]+$/, hint: 'must be an http(s) URL' });
const port = int({ min: 1, max: 65_535 });
const ms = int({ min: 1, max: 24 * 3_600_000 });
/** An IPv4/IPv6 address or a CIDR block; checked properly by caller.ts when the allow-list is built. */
const addressOrCidr = str({
  pattern: /^[0-9A-Fa-f:.]+(\/\d{1,3})?$/,
  max: 64,
  hint: 'must be an IP address or CIDR',
});

const agentConfigSchema = obj({
  nodeId: str({ pattern: PLAIN_NAME, hint: 'must be a plain name such as node-a' }),
  /** Source addresses (from SSH_CONNECTION) allowed to call; the orchestrator's address(es). */
  allowedCallers: arr(addressOrCidr, { max: 256 }),
  /** Whether a call without SSH_CONNECTION (run locally on the node) is served. Default false. */
  allowLocal: optional(bool),
  stagingDir: absPath,
  backupDir: absPath,
  jar: obj({ path: absPath, versionFile: absPath }),
  /** The directory rsync keeps in sync between the nodes; backed up and checksummed. */
  configDir: absPath,
  rootKeyPath: absPath,
  services: arr(
    obj({
      name: str({ pattern: PLAIN_NAME, hint: 'must be a plain name' }),
      unit,
      port,
      healthUrl: optional(url),
    }),
    { max: 64 },
  ),
  systemctl: obj({ command: str(), env: optional(env) }),
  keepalived: obj({
    configFile: absPath,
    pidFile: absPath,
    vip: str({ pattern: /^[0-9A-Fa-f:.]+$/, hint: 'must be an IP address' }),
    interface: str({ pattern: /^[A-Za-z0-9_.@-]{1,15}$/, hint: 'must be a network interface name' }),
    /** argv prefix of iproute2's `ip`. Default ["ip"]. */
    ipCommand: optional(argv),
  }),
  rsync: obj({ unit, statusFile: absPath }),
  database: obj({
    kind: literal('postgresql', 'gaussdb'),
    /** argv prefixes; the agent appends connection and operation arguments (see node-agent.md). */
    client: argv,
    dump: argv,
    restore: argv,
    ctl: optional(argv),
    /** The data directory (switchover: standby.signal, primary_conninfo; pg_controldata / pg_rewind). */
    dataDir: optional(absPath),
    /** argv prefix of pg_controldata (switchover: the fenced primary's last checkpoint LSN). */
    controldata: optional(argv),
    /** argv prefix of pg_rewind (switchover: a former primary whose history diverged). */
    rewind: optional(argv),
    host: str(),
    port,
    user: str({ max: 128 }),
    dbname: str({ max: 128 }),
    env: optional(env),
  }),
  http: obj({ healthUrl: url }),
  timeouts: optional(
    obj({
      /** Upper bound for any operation, whatever the caller asks. Default 10 min. */
      defaultMs: optional(ms),
      /** Per-operation upper bounds, e.g. {"backup.create": 1800000}. */
      ops: optional(record(ms)),
    }),
  ),
});

export type AgentConfig = Infer<typeof agentConfigSchema>;
export type ServiceConfig = AgentConfig['services'][number];
export type DatabaseConfig = AgentConfig['database'];

export const DEFAULT_OP_TIMEOUT_MS = 10 * 60_000;

/** Validates a parsed config; CONFIG_INVALID names the field. */
export function parseAgentConfig(value: unknown): AgentConfig {
  const config = parseWith(agentConfigSchema, value, 'agent config', 'CONFIG_INVALID');
  const names = new Set<string>();
  for (const service of config.services) {
    if (names.has(service.name))
      throw new UpgradeError('CONFIG_INVALID', `agent config: services: "${service.name}" is listed twice`);
    names.add(service.name);
  }
  return config;
}

/** Reads and validates the config file at `path`. */
export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UpgradeError(
      'CONFIG_INVALID',
      `cannot read agent config ${path}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UpgradeError(
      'CONFIG_INVALID',
      `agent config ${path} is not valid JSON: ${(error as Error).message}`,
    );
  }
  return parseAgentConfig(json);
}

/** Where the config comes from: `--config <path>` / `--config=<path>`, else HA_AGENT_CONFIG. */
export function configPathFrom(argvList: readonly string[], environment: NodeJS.ProcessEnv): string {
  for (let i = 0; i < argvList.length; i++) {
    const arg = argvList[i] ?? '';
    if (arg === '--config') {
      const next = argvList[i + 1];
      if (next !== undefined) return next;
    } else if (arg.startsWith('--config=')) return arg.slice('--config='.length);
  }
  const fromEnv = environment[CONFIG_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  throw new UpgradeError('CONFIG_INVALID', `no agent config: pass --config <file> or set ${CONFIG_ENV}`);
}

/** The longest an operation may run on this node. */
export function opTimeoutCap(config: AgentConfig, op: string): number {
  return config.timeouts?.ops?.[op] ?? config.timeouts?.defaultMs ?? DEFAULT_OP_TIMEOUT_MS;
}
