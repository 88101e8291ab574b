// Every setting of the service, from env / .env. `.env.example` documents each one.
import { Type, loadConfig, type Static } from '@upgrade/service';

const Ms = (def: number, description: string) =>
  Type.Integer({ default: def, minimum: 1, description: `${description} (milliseconds)` });
const Bytes = (def: number, description: string) =>
  Type.Integer({ default: def, minimum: 1, description: `${description} (bytes)` });

export const EnvSchema = Type.Object({
  PORT: Type.Integer({ default: 12315, minimum: 0, maximum: 65535, description: 'HTTP port of the API' }),
  HOST: Type.String({ default: '0.0.0.0', description: 'address the API listens on' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  LOG_FILE: Type.Optional(
    Type.String({ description: 'write JSON logs to this file, rotated by size, instead of stdout' }),
  ),
  LOG_FILE_MAX_BYTES: Bytes(10 * 1024 * 1024, 'size at which the log file is rotated'),
  LOG_FILE_COUNT: Type.Integer({
    default: 3,
    minimum: 1,
    maximum: 20,
    description: 'log files kept, the current one included',
  }),
  OTA_ROOT: Type.String({
    default: '/opt/tope',
    description: 'install root: versions/<v>/ and the links versions/current, previous, factory',
  }),
  OTA_DATA_DIR: Type.Optional(
    Type.String({ description: 'state.json and downloads/ (default: <OTA_ROOT>/.ota)' }),
  ),
  DEVICE_API_URL: Type.String({
    default: 'http://127.0.0.1:9080/api/v1.0/ota/progress',
    pattern: '^https?://',
    description: 'where progress is POSTed',
  }),
  DEVICE_API_TIMEOUT_MS: Ms(2_000, 'timeout of one progress report'),
  OTA_PUBLIC_KEY_FILE: Type.Optional(
    Type.String({ description: 'ed25519 public key (PEM); when set, every package must be signed' }),
  ),
  DOWNLOAD_CONNECT_TIMEOUT_MS: Ms(10_000, 'connect timeout of the package server'),
  DOWNLOAD_HEADERS_TIMEOUT_MS: Ms(30_000, 'wait for the answer headers'),
  DOWNLOAD_STALL_TIMEOUT_MS: Ms(30_000, 'a body silent this long is a stalled server'),
  DOWNLOAD_TOTAL_TIMEOUT_MS: Ms(2 * 60 * 60 * 1000, 'the whole download, retries included'),
  DOWNLOAD_RETRIES: Type.Integer({
    default: 3,
    minimum: 0,
    maximum: 20,
    description: 'retries in a row without progress',
  }),
  DOWNLOAD_RETRY_DELAY_MS: Ms(1_000, 'first retry delay, doubled per retry'),
  DOWNLOAD_CHECKPOINT_BYTES: Bytes(
    64 * 1024 * 1024,
    'a download checkpoint (fsync + state.json) every this many bytes, or every DOWNLOAD_CHECKPOINT_INTERVAL_MS',
  ),
  DOWNLOAD_CHECKPOINT_INTERVAL_MS: Ms(5_000, 'a download checkpoint at least this often while bytes arrive'),
  UNPACK_MAX_ENTRY_BYTES: Bytes(512 * 1024 * 1024, 'largest file in a package'),
  UNPACK_MAX_TOTAL_BYTES: Bytes(2 * 1024 * 1024 * 1024, 'largest unpacked package'),
  UNPACK_MAX_ENTRIES: Type.Integer({ default: 50_000, minimum: 1, description: 'most files in a package' }),
  KEEP_LAST_PACKAGE: Type.Boolean({
    default: false,
    description:
      'keep the last verified package in downloads/ after it was deployed, rolled back or cancelled, for a quick re-deploy',
  }),
  DISK_MIN_FREE_BYTES: Bytes(
    16 * 1024 * 1024,
    '/healthz reports the disk down below this much free space on the install file system',
  ),
  KEEP_VERSIONS: Type.Integer({
    default: 2,
    minimum: 0,
    description: 'versions kept besides current, previous and factory',
  }),
  SYSTEMCTL: Type.String({ default: 'systemctl', description: 'the systemctl executable' }),
  SYSTEMCTL_TIMEOUT_MS: Ms(90_000, 'bound on systemctl start / stop'),
  HEALTH_TIMEOUT_MS: Ms(60_000, 'budget for the services to become healthy after a start'),
  HEALTH_INTERVAL_MS: Ms(1_000, 'wait between two health rounds'),
  HEALTH_CONSECUTIVE_OK: Type.Integer({
    default: 2,
    minimum: 1,
    description: 'healthy rounds in a row required',
  }),
  SHUTDOWN_TIMEOUT_MS: Ms(10_000, 'how long SIGTERM waits for in-flight requests'),
});

export type Env = Static<typeof EnvSchema>;

/** Loads and checks the configuration; a ConfigError names every problem at once. */
export function loadOtaConfig(env: Readonly<Record<string, string | undefined>> = process.env): Env {
  return loadConfig(EnvSchema, env);
}
