// Shared types and the narrow interfaces of the OTA flow. Adapters implement the interfaces; the
// flow (download.ts, deploy.ts) never calls systemctl or HTTP directly.

/** Stages a watcher sees in GET /api/v1.0/progress, in the order a good update passes them. */
export const OTA_STAGES = [
  'idle',
  'downloading',
  'verifying',
  'downloaded',
  'deploying',
  'health_check',
  'success',
  'rolling_back',
  'rolled_back',
  'failed',
] as const;
export type OtaStage = (typeof OTA_STAGES)[number];

/** `POST /api/v1.0/download`, after validation (wire names mapped to camelCase at the edge). */
export interface DownloadRequest {
  version: string;
  packageUrl: string;
  packageName: string;
  /** Bytes. */
  packageSize: number;
  /** Lower-case hex. */
  packageMd5: string;
  /** Lower-case hex; checked when given. */
  packageSha256?: string;
  /** Base64 ed25519 signature over the package bytes; mandatory when a public key is configured. */
  signature?: string;
}

/** A package on disk whose every configured check passed. */
export interface VerifiedPackage {
  version: string;
  path: string;
  size: number;
  md5: string;
  /** Hex SHA-256; null when nothing asked for it (no package_sha256, no public key configured). */
  sha256: string | null;
}

/** Where a download stands, persisted in state.json so a restart can resume it with HTTP Range. */
export interface DownloadCheckpoint {
  request: DownloadRequest;
  /** The partial file. */
  partialPath: string;
  /** Bytes known to be on disk (fsync'd) in the partial file. */
  offset: number;
  /** The server's validator for If-Range, when it gave one. */
  etag: string | null;
}

/** One systemd unit as the manifest names it, with an optional HTTP health URL. */
export interface ServiceSpec {
  unit: string;
  /** GET must answer 2xx within the health timeout. */
  healthUrl?: string;
}

/** The package's manifest.json, validated. See docs/ota-updater.md for the format. */
export interface Manifest {
  version: string;
  modules: ManifestModule[];
}

export interface ManifestModule {
  name: string;
  /** Paths inside the package (and the version snapshot), relative, forward slashes. */
  files: { path: string; mode: number }[];
  /** The units that run this module: stopped before the switch, started and checked after. */
  services: ServiceSpec[];
}

/** systemd, through `systemctl`. Every call is bounded by a timeout; failures are UpgradeErrors. */
export interface ServiceManager {
  stop(units: readonly string[], signal?: AbortSignal): Promise<void>;
  start(units: readonly string[], signal?: AbortSignal): Promise<void>;
  /** `systemctl is-active`: true only for `active`. */
  isActive(unit: string, signal?: AbortSignal): Promise<boolean>;
}

/** Progress for the device API and GET /progress. */
export interface OtaProgress {
  stage: OtaStage;
  /** 0-100 */
  progress: number;
  message: string;
  error: { code: string; message: string } | null;
}
