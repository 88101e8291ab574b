// A loopback stand-in for the boonlive RCU cloud, following spec/vendor-api.openapi.json: it
// validates requests with the spec's schemas, runs hosts that progress over real (compressible)
// time, and fails the ways the real service does on command. Used by the adapter's tests, the
// service's end-to-end tests, the demo and the benchmark.
import type { ServerResponse } from 'node:http';
import { systemClock, type Clock } from '@upgrade/core';
import { sendJson, startHttpSimulator, type RecordedRequest } from '@upgrade/testkit';
import { loadVendorSchemas, type VendorSchemaName } from '../../src/adapters/vendor-spec.js';

/** The two vendor calls. */
export type VendorEndpoint = 'Upgrade_V2' | 'QueryUpdateHostProgressBar';

/** How a failed host ends: vendor status 3 (failed), 4 (timeout) or 5 (offline). */
export type HostFailure = 'failed' | 'timeout' | 'offline';

/** Hosts by name, or a predicate over a host and the upgrade it is part of. */
export type HostSelector = Iterable<string> | ((host: string, upgrade: SimulatedUpgrade) => boolean);

/** Options of {@link startVendorSimulator}; times in milliseconds. */
export interface VendorSimulatorOptions {
  /** The only account accepted; default `{ username: 'rcu-test', password: 'rcu-test-password' }`. */
  credentials?: { username: string; password: string };
  /** Time a host takes from 0 to 100 %, before jitter. Default 2 000. */
  hostDurationMs?: number;
  /** Each host's duration varies by up to this fraction either way. Default 0.2. */
  jitter?: number;
  /** Each host waits (status 0) up to this long before it starts. Default hostDurationMs / 10. */
  startSpreadMs?: number;
  /** Seed of the jitter and the UUIDs: the same seed and calls give the same upgrades. Default 1. */
  seed?: number;
  /** The config version a completed host reports. Default `CFG-1.0.7`. */
  configVersion?: string;
  /** When set, `Upgrade_V2` refuses other file names (IsSuccess false), like the vendor's file store. */
  knownFiles?: readonly string[];
  /** Delay before every answer. Default 0. */
  latencyMs?: number;
  /** Progress is computed from `clock.now()` at each query. Default the system clock. */
  clock?: Pick<Clock, 'now'>;
  /** Path prefix of the endpoints. Default `/api`, like the production base URL. */
  basePath?: string;
}

/** Spec deviations of progress answers, see {@link VendorSimulator.misreport}. */
export type Misreport = 'duplicate-hosts' | 'conflicting-duplicate' | 'percent-text';

/** One upgrade as the simulator received it. */
export interface SimulatedUpgrade {
  readonly uuid: string;
  readonly roomTypeId: number;
  readonly hosts: readonly string[];
  readonly filename: string;
  readonly fileType: number;
  /** `clock.now()` when Upgrade_V2 was answered. */
  readonly startedAt: number;
}

/** A running simulator: its address, its control API and what it has seen. */
export interface VendorSimulator {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** `url` + base path: what the adapter's `baseUrl` should be. */
  readonly baseUrl: string;
  readonly credentials: { username: string; password: string };
  /** Every upgrade ever started, by UUID, including lost ones. */
  readonly upgrades: ReadonlyMap<string, SimulatedUpgrade>;
  /** Requests received per endpoint, including the ones answered with a fault or left hanging. */
  readonly calls: Readonly<Record<VendorEndpoint, number>>;
  /** Selected hosts fail halfway (offline: as they would start), in current and future upgrades. */
  failHosts(hosts: HostSelector, options?: { as?: HostFailure; message?: string }): void;
  /** Selected hosts stop at half their progress and stay running for ever: for timeout tests. */
  stickHosts(hosts: HostSelector): void;
  /** The next `n` calls (of `on`, or of any endpoint) answer `status`; 5xx with an HTML page. */
  failNext(n: number, status?: number, on?: VendorEndpoint): void;
  /** Accept requests (all, or of one endpoint) and never answer; `false` stops hanging new ones. */
  hang(on: boolean | VendorEndpoint): void;
  /**
   * Progress queries of the upgrades of these room types are accepted and never answered, while
   * every other group is answered as usual: one slow group among healthy ones.
   */
  hangGroups(roomTypeIds: Iterable<number>): void;
  /**
   * The next `n` progress answers (default: all until `reset`) deviate from the spec the way the
   * real vendor has been seen to: every host listed twice with the same status, the first host
   * listed again with an earlier status, or Progress as text ("100%").
   */
  misreport(kind: Misreport, n?: number): void;
  /** The next `n` answers are broken JSON (`json`) or valid JSON off the spec (`schema`). */
  malformed(n: number, kind?: 'json' | 'schema', on?: VendorEndpoint): void;
  /** Forgets an upgrade: queries of it answer the unknown-UUID refusal. */
  loseUuid(uuid: string): void;
  /** Changes the delay before every answer. */
  setLatency(ms: number): void;
  /** Clears every fault, failing and stuck host; keeps the upgrades. */
  reset(): void;
  /** Stops listening; hanging and delayed requests are cut. */
  close(): Promise<void>;
}

const DEFAULT_CREDENTIALS = { username: 'rcu-test', password: 'rcu-test-password' };
const ENDPOINTS: readonly VendorEndpoint[] = ['Upgrade_V2', 'QueryUpdateHostProgressBar'];
const REQUEST_SCHEMA: Readonly<Record<VendorEndpoint, VendorSchemaName>> = {
  Upgrade_V2: 'UpgradeV2Request',
  QueryUpdateHostProgressBar: 'QueryUpdateHostProgressBarRequest',
};
const FAILURE_CODE: Readonly<Record<HostFailure, 3 | 4 | 5>> = { failed: 3, timeout: 4, offline: 5 };
const FAILURE_MESSAGE: Readonly<Record<HostFailure, string>> = {
  failed: 'Host did not acknowledge the firmware package',
  timeout: 'No answer from the host within the upgrade window',
  offline: 'Host offline',
};

interface UpgradeState extends SimulatedUpgrade {
  /** Per host (same index as `hosts`): when it starts and when it would complete, epoch ms. */
  readonly startAt: Float64Array;
  readonly doneAt: Float64Array;
  readonly firmwareVersion: string;
}

interface HostRule {
  kind: 'fail' | 'stick';
  as: HostFailure;
  message: string | null;
  matches: (host: string, upgrade: SimulatedUpgrade) => boolean;
  /** Rules do not reach back: a host that completed before the rule was made stays completed. */
  since: number;
}

interface Fault {
  remaining: number;
  on: VendorEndpoint | undefined;
}

interface WireHost {
  HostNumber: string;
  Status: number;
  Progress: number;
  ConfigVersion: string;
  FirmwareVersion: string;
  Message: string;
}

/**
 * Starts the simulator on an ephemeral loopback port. Progress is computed from the clock at each
 * query (no timer per host), so 10 000 hosts in 100 upgrades cost nothing between polls.
 *
 * @example const sim = await startVendorSimulator({ hostDurationMs: 500 }); createVendorApi({ baseUrl: sim.baseUrl, ...sim.credentials })
 */
export async function startVendorSimulator(options: VendorSimulatorOptions = {}): Promise<VendorSimulator> {
  const credentials = options.credentials ?? DEFAULT_CREDENTIALS;
  const hostDurationMs = options.hostDurationMs ?? 2_000;
  const jitter = options.jitter ?? 0.2;
  const startSpreadMs = options.startSpreadMs ?? hostDurationMs / 10;
  const seed = options.seed ?? 1;
  const configVersion = options.configVersion ?? 'CFG-1.0.7';
  const knownFiles = options.knownFiles === undefined ? undefined : new Set(options.knownFiles);
  const clock = options.clock ?? systemClock;
  const basePath = (options.basePath ?? '/api').replace(/\/$/, '');
  let latencyMs = options.latencyMs ?? 0;

  const schemas = loadVendorSchemas();
  const nextRandom = mulberry32(seed);
  const upgrades = new Map<string, UpgradeState>();
  const lost = new Set<string>();
  // Per room type and host, how many upgrades it has had: varies the jitter between rounds while
  // keeping it independent of the order in which concurrent triggers arrive.
  const attempts = new Map<string, number>();
  const calls: Record<VendorEndpoint, number> = { Upgrade_V2: 0, QueryUpdateHostProgressBar: 0 };
  let rules: HostRule[] = [];
  let failures: (Fault & { status: number })[] = [];
  let breakages: (Fault & { kind: 'json' | 'schema' })[] = [];
  let misreports: (Fault & { kind: Misreport })[] = [];
  const hanging = new Set<VendorEndpoint>();
  const hangingGroups = new Set<number>();
  const delayed = new Set<NodeJS.Timeout>();

  const answer = (response: ServerResponse, status: number, body: unknown, raw?: string): void => {
    const send = (): void => {
      if (response.destroyed) return;
      if (raw === undefined) {
        sendJson(response, status, body);
        return;
      }
      response.writeHead(status, {
        'content-type': status >= 500 ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(raw),
      });
      response.end(raw);
    };
    if (latencyMs <= 0) {
      send();
      return;
    }
    const timer = setTimeout(() => {
      delayed.delete(timer);
      send();
    }, latencyMs);
    delayed.add(timer);
  };
  const refuse = (response: ServerResponse, status: number, message: string): void =>
    answer(response, status, { IsSuccess: false, Message: message, Data: null });

  const startUpgrade = (body: Record<string, unknown>): unknown => {
    const filename = body.FileName as string;
    if (knownFiles !== undefined && !knownFiles.has(filename))
      return { IsSuccess: false, Message: `File ${filename} does not exist on the server`, Data: null };
    const roomTypeId = body.RoomTypeID as number;
    const hosts = [...(body.HostList as string[])];
    let uuid = randomUuid(nextRandom);
    while (upgrades.has(uuid)) uuid = randomUuid(nextRandom);
    const startedAt = clock.now();
    const startAt = new Float64Array(hosts.length);
    const doneAt = new Float64Array(hosts.length);
    hosts.forEach((host, i) => {
      const key = `${roomTypeId}:${host}`;
      const attempt = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, attempt);
      const random = mulberry32(hashString(`${seed}:${key}:${attempt}`));
      startAt[i] = startedAt + random() * startSpreadMs;
      doneAt[i] = (startAt[i] ?? startedAt) + hostDurationMs * (1 + jitter * (2 * random() - 1));
    });
    upgrades.set(uuid, {
      uuid,
      roomTypeId,
      hosts,
      filename,
      fileType: body.FileType as number,
      startedAt,
      startAt,
      doneAt,
      firmwareVersion: versionOf(filename),
    });
    return { IsSuccess: true, Message: '', Data: { UUID: uuid } };
  };

  const hostState = (upgrade: UpgradeState, index: number, now: number): WireHost => {
    const host = upgrade.hosts[index] ?? '';
    const start = upgrade.startAt[index] ?? upgrade.startedAt;
    const done = upgrade.doneAt[index] ?? start;
    const percentAt = (t: number): number =>
      t <= start ? 0 : Math.min(99, Math.floor((100 * (t - start)) / (done - start)));
    let effect: { at: number; rule: HostRule } | undefined;
    for (const rule of rules) {
      if (!rule.matches(host, upgrade)) continue;
      const natural = rule.kind === 'fail' && rule.as === 'offline' ? start : start + (done - start) / 2;
      const at = Math.max(natural, rule.since);
      if (at >= done) continue;
      if (effect === undefined || at < effect.at) effect = { at, rule };
    }
    const blank = { HostNumber: host, ConfigVersion: '', FirmwareVersion: '' };
    if (effect !== undefined && now >= effect.at) {
      const { rule } = effect;
      if (rule.kind === 'stick')
        return { ...blank, Status: 1, Progress: percentAt(effect.at), Message: 'Upgrading' };
      return {
        ...blank,
        Status: FAILURE_CODE[rule.as],
        Progress: rule.as === 'offline' ? 0 : percentAt(effect.at),
        Message: rule.message ?? FAILURE_MESSAGE[rule.as],
      };
    }
    if (now < start) return { ...blank, Status: 0, Progress: 0, Message: 'Waiting' };
    if (now < done) return { ...blank, Status: 1, Progress: percentAt(now), Message: 'Upgrading' };
    return {
      HostNumber: host,
      Status: 2,
      Progress: 100,
      ConfigVersion: configVersion,
      FirmwareVersion: upgrade.firmwareVersion,
      Message: 'Upgrade succeeded',
    };
  };

  const queryProgress = (body: Record<string, unknown>): unknown => {
    const uuid = body.UUID as string;
    const upgrade = upgrades.get(uuid);
    if (upgrade === undefined || lost.has(uuid))
      return { IsSuccess: false, Message: `Upgrade task ${uuid} does not exist`, Data: null };
    const now = clock.now();
    let hosts: (Omit<WireHost, 'Progress'> & { Progress: number | string })[] = upgrade.hosts.map((_, i) =>
      hostState(upgrade, i, now),
    );
    // Every active kind applies, each using up one of its own answers.
    const active = new Set(
      (['duplicate-hosts', 'percent-text', 'conflicting-duplicate'] as const).filter(
        (kind) => take(misreports, 'QueryUpdateHostProgressBar', (f) => f.kind === kind) !== undefined,
      ),
    );
    if (active.has('duplicate-hosts')) hosts = [...hosts, ...hosts.map((h) => ({ ...h }))];
    if (active.has('percent-text')) hosts = hosts.map((h) => ({ ...h, Progress: `${h.Progress}%` }));
    if (active.has('conflicting-duplicate') && hosts[0] !== undefined) {
      const first = hosts[0];
      const earlier = first.Status >= 2 ? 1 : first.Status === 1 ? 0 : 1;
      hosts = [
        ...hosts,
        {
          ...first,
          Status: earlier,
          Progress: earlier === 1 ? 99 : 0,
          ConfigVersion: '',
          FirmwareVersion: '',
          Message: 'Upgrading',
        },
      ];
    }
    return { IsSuccess: true, Message: '', Data: hosts };
  };

  const handle = (request: RecordedRequest, response: ServerResponse): void => {
    // testkit keeps every request for inspection; this simulator has its own counters, and a long
    // demo or benchmark run must not grow memory with every poll.
    server.requests.length = 0;
    const endpoint = ENDPOINTS.find((e) => request.path === `${basePath}/${e}`);
    if (endpoint === undefined) {
      refuse(response, 404, `No HTTP resource was found that matches the request URI ${request.path}`);
      return;
    }
    if (request.method !== 'POST') {
      refuse(response, 405, `The requested resource does not support http method '${request.method}'`);
      return;
    }
    calls[endpoint]++;
    if (hanging.has(endpoint)) return; // accepted, never answered
    const failure = take(failures, endpoint);
    if (failure !== undefined) {
      if (failure.status >= 500) answer(response, failure.status, null, errorPage(failure.status));
      else refuse(response, failure.status, `HTTP ${failure.status}`);
      return;
    }
    if (!(request.headers['content-type'] ?? '').toLowerCase().startsWith('application/json')) {
      refuse(response, 415, 'The request entity media type is not supported; send application/json');
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(request.body);
    } catch {
      refuse(response, 400, 'Invalid request: the body is not JSON');
      return;
    }
    const invalid = schemas.check(REQUEST_SCHEMA[endpoint], body);
    if (invalid !== null) {
      refuse(response, 400, `Invalid request: ${invalid}`);
      return;
    }
    const fields = body as Record<string, unknown>;
    if (fields.UserName !== credentials.username || fields.Password !== credentials.password) {
      refuse(response, 401, 'Invalid user name or password');
      return;
    }
    if (endpoint === 'QueryUpdateHostProgressBar') {
      const upgrade = upgrades.get(fields.UUID as string);
      if (upgrade !== undefined && hangingGroups.has(upgrade.roomTypeId)) return; // never answered
    }
    // The call takes effect before a broken answer: the client cannot tell whether it did.
    const result = endpoint === 'Upgrade_V2' ? startUpgrade(fields) : queryProgress(fields);
    const breakage = take(breakages, endpoint);
    if (breakage === undefined) answer(response, 200, result);
    else if (breakage.kind === 'json') answer(response, 200, null, truncatedJson(result));
    else answer(response, 200, offSpec(result));
  };

  const server = await startHttpSimulator(handle);

  const selector = (hosts: HostSelector): HostRule['matches'] => {
    if (typeof hosts === 'function') return hosts;
    const set = new Set(hosts);
    return (host) => set.has(host);
  };

  return {
    url: server.url,
    baseUrl: `${server.url}${basePath}`,
    credentials,
    upgrades,
    calls,
    failHosts(hosts, failOptions = {}) {
      rules.push({
        kind: 'fail',
        as: failOptions.as ?? 'failed',
        message: failOptions.message ?? null,
        matches: selector(hosts),
        since: clock.now(),
      });
    },
    stickHosts(hosts) {
      rules.push({
        kind: 'stick',
        as: 'failed',
        message: null,
        matches: selector(hosts),
        since: clock.now(),
      });
    },
    failNext(n, status = 503, on) {
      failures.push({ remaining: n, status, on });
    },
    hang(on) {
      if (on === false) hanging.clear();
      else if (on === true) ENDPOINTS.forEach((e) => hanging.add(e));
      else hanging.add(on);
    },
    hangGroups(roomTypeIds) {
      for (const id of roomTypeIds) hangingGroups.add(id);
    },
    misreport(kind, n = Number.POSITIVE_INFINITY) {
      misreports.push({ remaining: n, kind, on: 'QueryUpdateHostProgressBar' });
    },
    malformed(n, kind = 'json', on) {
      breakages.push({ remaining: n, kind, on });
    },
    loseUuid(uuid) {
      lost.add(uuid);
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    reset() {
      rules = [];
      failures = [];
      breakages = [];
      misreports = [];
      hanging.clear();
      hangingGroups.clear();
    },
    async close() {
      delayed.forEach((timer) => clearTimeout(timer));
      delayed.clear();
      await server.close();
    },
  };
}

/** Uses up one of the first matching fault; spent faults are dropped. */
function take<T extends Fault>(
  faults: T[],
  endpoint: VendorEndpoint,
  which: (fault: T) => boolean = () => true,
): T | undefined {
  const fault = faults.find((f) => f.remaining > 0 && (f.on === undefined || f.on === endpoint) && which(f));
  if (fault === undefined) return undefined;
  fault.remaining--;
  if (fault.remaining <= 0) faults.splice(faults.indexOf(fault), 1);
  return fault;
}

/** `RCU_V2.3.1.bin` -> `2.3.1`; a name without a dotted number reports itself without extension. */
export function versionOf(filename: string): string {
  return /(\d+(?:\.\d+)+)/.exec(filename)?.[1] ?? filename.replace(/\.[^.]*$/, '');
}

/** What an overloaded IIS answers: HTML, not the JSON envelope. */
function errorPage(status: number): string {
  return `<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body><h1>HTTP Error ${status}. The service is unavailable.</h1></body></html>`;
}

/** The answer cut off mid-way, as a dropped proxy connection leaves it. */
function truncatedJson(result: unknown): string {
  const text = JSON.stringify(result);
  return text.slice(0, Math.max(1, Math.floor(text.length / 2)));
}

/** Valid JSON that breaks the spec the way vendor drift would: a renamed field, a status as text. */
function offSpec(result: unknown): unknown {
  const envelope = result as { IsSuccess: boolean; Message: string; Data: unknown };
  if (Array.isArray(envelope.Data)) {
    const hosts = envelope.Data as WireHost[];
    return {
      ...envelope,
      Data:
        hosts.length === 0
          ? { Hosts: [] }
          : hosts.map((h, i) => (i === 0 ? { ...h, Status: h.Status === 2 ? 'SUCCESS' : 'UPGRADING' } : h)),
    };
  }
  if (typeof envelope.Data === 'object' && envelope.Data !== null && 'UUID' in envelope.Data)
    return { ...envelope, Data: { Uuid: (envelope.Data as { UUID: string }).UUID } };
  return { ...envelope, IsSuccess: envelope.IsSuccess ? 'true' : 'false' };
}

/** A small seeded PRNG (mulberry32): deterministic jitter and UUIDs per seed. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a, 32 bits: a seed per host from its name. */
function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** A version-4-shaped UUID from the seeded PRNG, lower-case like .NET's Guid.ToString(). */
function randomUuid(random: () => number): string {
  const bytes = Array.from({ length: 16 }, () => Math.floor(random() * 256));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
