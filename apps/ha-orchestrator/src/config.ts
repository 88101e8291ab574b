// Every setting of the service, from env / .env. `.env.example` documents each one. Upgrade timeouts
// and health parameters are not here: they live in the upgrade_config table (`ha-orchestrator
// config show|set`), so they can be tuned without a restart.
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { ConfigError, Type, loadConfig, type ConfigIssue, type Static } from '@upgrade/service';
import { parseAllowList, parseApiTokens, type ApiToken } from './auth.js';

const Ms = (def: number, description: string, minimum = 0) =>
  Type.Integer({ default: def, minimum, description: `${description} (milliseconds)` });

const NodeSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' }),
    host: Type.String({ minLength: 1 }),
    port: Type.Integer({ minimum: 1, maximum: 65535, default: 22 }),
    username: Type.String({ minLength: 1 }),
    privateKeyFile: Type.String({ minLength: 1 }),
    agentCommand: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false },
);

export type NodeSettings = Static<typeof NodeSchema>;

export const EnvSchema = Type.Object({
  PORT: Type.Integer({ default: 8090, minimum: 0, maximum: 65535, description: 'HTTP port of the API' }),
  HOST: Type.String({ default: '0.0.0.0', description: 'address the API listens on' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  LOG_FILE: Type.Optional(
    Type.String({ minLength: 1, description: 'also write the JSON log here, rotated at 10 MB x 3' }),
  ),
  DATABASE_URL: Type.Optional(
    Type.String({ pattern: '^postgres(ql)?://', description: 'PostgreSQL URL (the audit trail)' }),
  ),
  DATA_DIR: Type.String({
    default: './data/ha-orchestrator',
    description: 'embedded PGlite database when DATABASE_URL is unset',
  }),
  MIGRATE_ON_START: Type.Boolean({ default: true, description: 'apply pending migrations at start-up' }),
  WORK_DIR: Type.Optional(
    Type.String({ minLength: 1, description: 'uploads are unpacked here (default $DATA_DIR/work)' }),
  ),
  API_TOKENS: Type.String({
    minLength: 1,
    description: 'comma-separated `name:token` pairs; the name is recorded as the caller',
  }),
  API_ALLOWED_IPS: Type.Array(Type.String({ minLength: 1 }), {
    default: ['127.0.0.1/32', '::1/128'],
    description: 'comma-separated addresses / CIDR blocks allowed to call the API (not /health)',
  }),
  TRUST_PROXY: Type.Boolean({
    default: false,
    description: 'take the client address from X-Forwarded-For (only behind a trusted reverse proxy)',
  }),
  HA_NODES: Type.Array(NodeSchema, {
    minItems: 2,
    maxItems: 2,
    description:
      'JSON: the two nodes, the current primary first: [{"id","host","port","username","privateKeyFile","agentCommand"}, ...]',
  }),
  SSH_KNOWN_HOSTS_FILE: Type.String({
    minLength: 1,
    description: "known_hosts file pinning both nodes' host keys (no unknown key is ever accepted)",
  }),
  SSH_CONNECT_TIMEOUT_MS: Ms(10_000, 'SSH connect + handshake', 1),
  SSH_CALL_TIMEOUT_MS: Ms(120_000, 'default deadline of one agent call', 1),
  SSH_KEEPALIVE_INTERVAL_MS: Ms(
    5_000,
    'SSH keepalive on the reused connection; 3 unanswered make the node unreachable, so keep 4x it below healthCheckTimeoutMs',
    1,
  ),
  VIP: Type.String({ minLength: 1, description: 'the virtual IP keepalived moves between the nodes' }),
  SIGNING_PUBLIC_KEYS_DIR: Type.Optional(
    Type.String({ minLength: 1, description: 'directory of *.pem ed25519 public keys trusted for packages' }),
  ),
  SIGNING_PUBLIC_KEYS: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'PEM ed25519 public keys, concatenated (instead of or besides the dir)',
    }),
  ),
  MAX_PACKAGE_BYTES: Type.Integer({
    default: 512 * 1024 * 1024,
    minimum: 1024,
    description: 'largest accepted upload (bytes); larger answers 413',
  }),
  MAX_UNPACKED_BYTES: Type.Integer({
    default: 2 * 1024 * 1024 * 1024,
    minimum: 1024,
    description: 'largest total size a package may unpack to (bytes)',
  }),
  HEALTH_NODE_TIMEOUT_MS: Ms(3_000, "one node's check in GET /health", 1),
  SHUTDOWN_TIMEOUT_MS: Ms(
    900_000,
    'how long a shutdown waits for a running upgrade to stop at a safe point and roll back',
    1,
  ),
  RECOVERY_POLICY: Type.Union([Type.Literal('finish-forward'), Type.Literal('roll-back')], {
    default: 'finish-forward',
    description:
      'a task found interrupted at start-up: finish-forward completes it when it was past the VIP switch and the pair allows (else rolls back); roll-back always rolls back',
  }),
  HA_INSTANCE_ID: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      description:
        "this installation's name in task leases (default: host name and DATA_DIR); unique per running process",
    }),
  ),
});

export type Env = Static<typeof EnvSchema>;

/** The configuration after the cross-field checks, with files read. */
export interface HaConfig extends Env {
  tokens: ApiToken[];
  workDir: string;
  /**
   * Name in task leases, stable across restarts of this installation: a restarted process takes
   * over its own task at once instead of waiting for the lease to expire.
   */
  instanceId: string;
  knownHosts: string;
  /** Private key text by node id. */
  privateKeys: Map<string, Buffer>;
}

type EnvSource = Readonly<Record<string, string | undefined>>;

/**
 * Loads and checks the configuration; a ConfigError names every problem at once (the CLI exits 2).
 * Reads the SSH key and known_hosts files named, so a typo fails here and not at the first upgrade.
 */
export function loadHaConfig(env: EnvSource = process.env): HaConfig {
  const config = loadConfig(EnvSchema, env);
  const issues: ConfigIssue[] = [];
  const tokens = parseApiTokens(config.API_TOKENS);
  if (tokens.length === 0) issues.push({ variable: 'API_TOKENS', message: 'holds no token' });
  for (const t of tokens) {
    if (t.token.length < 16)
      issues.push({
        variable: 'API_TOKENS',
        message: `token "${t.name}" is shorter than 16 characters; use a random one (openssl rand -hex 32)`,
      });
  }
  if (new Set(tokens.map((t) => t.name)).size !== tokens.length)
    issues.push({ variable: 'API_TOKENS', message: 'names a token twice; give each token its own name' });
  try {
    parseAllowList(config.API_ALLOWED_IPS);
  } catch (error) {
    issues.push({ variable: 'API_ALLOWED_IPS', message: (error as Error).message });
  }
  const ids = config.HA_NODES.map((n) => n.id);
  if (new Set(ids).size !== ids.length)
    issues.push({ variable: 'HA_NODES', message: 'both nodes have the same id' });
  const privateKeys = new Map<string, Buffer>();
  for (const node of config.HA_NODES) {
    const key = readConfigFile(node.privateKeyFile, 'HA_NODES', `node ${node.id}'s privateKeyFile`, issues);
    if (key !== null) privateKeys.set(node.id, key);
  }
  const knownHosts = readConfigFile(config.SSH_KNOWN_HOSTS_FILE, 'SSH_KNOWN_HOSTS_FILE', 'the file', issues);
  if (config.SIGNING_PUBLIC_KEYS_DIR === undefined && config.SIGNING_PUBLIC_KEYS === undefined)
    issues.push({
      variable: 'SIGNING_PUBLIC_KEYS_DIR',
      message: 'set it (or SIGNING_PUBLIC_KEYS): packages are only accepted with a verified signature',
    });
  else if (config.SIGNING_PUBLIC_KEYS_DIR !== undefined && !existsSync(config.SIGNING_PUBLIC_KEYS_DIR))
    issues.push({
      variable: 'SIGNING_PUBLIC_KEYS_DIR',
      message: `${config.SIGNING_PUBLIC_KEYS_DIR} does not exist`,
    });
  if (issues.length > 0) throw new ConfigError(issues);
  return {
    ...config,
    tokens,
    workDir: config.WORK_DIR ?? `${config.DATA_DIR}/work`,
    instanceId: config.HA_INSTANCE_ID ?? `${hostname()}:${resolve(config.DATA_DIR)}`,
    knownHosts: (knownHosts ?? Buffer.alloc(0)).toString('utf8'),
    privateKeys,
  };
}

function readConfigFile(path: string, variable: string, what: string, issues: ConfigIssue[]): Buffer | null {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    issues.push({ variable, message: `${what} ${path} cannot be read (${code})` });
    return null;
  }
}

/** Just the database settings: `migrate` and `config` run without nodes, tokens or keys. */
export const DatabaseEnvSchema = Type.Object({
  DATABASE_URL: EnvSchema.properties.DATABASE_URL,
  DATA_DIR: EnvSchema.properties.DATA_DIR,
});

export function loadDatabaseConfig(env: EnvSource = process.env): Static<typeof DatabaseEnvSchema> {
  return loadConfig(DatabaseEnvSchema, env);
}
