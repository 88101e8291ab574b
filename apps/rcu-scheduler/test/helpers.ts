// Shared wiring for the round tests: the real vendor adapter against the simulator, with time
// compressed by settings (never by faking the clock inside the flow).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { systemClock } from '@upgrade/core';
import { createFileSpool } from '../src/adapters/file-spool.js';
import { createVendorApi, type VendorApiClient } from '../src/adapters/vendor-api.js';
import type { RoundDeps, RoundEvent, RoundLogger, RoundSettings } from '../src/rounds.js';
import type { HostGroup, RoundStore } from '../src/ports.js';
import type { VendorSimulator } from './simulator/vendor-simulator.js';

export const FILES = [
  { filename: 'RCU_V2.3.1.bin', fileType: 1 },
  { filename: 'RCU_V2.4.0.bin', fileType: 1 },
] as const;

/** `count` groups of `size` hosts: room types 100, 101, ...; hosts `rt100-h000`, ... */
export function makeGroups(count: number, size: number): HostGroup[] {
  return Array.from({ length: count }, (_, g) => ({
    roomTypeId: 100 + g,
    hosts: Array.from({ length: size }, (_, h) => `rt${100 + g}-h${String(h).padStart(3, '0')}`),
  }));
}

export function fastSettings(overrides: Partial<RoundSettings> = {}): RoundSettings {
  return {
    files: FILES,
    repeats: 2,
    groups: makeGroups(2, 3),
    initialDelayMs: 50,
    pollIntervalMs: 50,
    pollTimeoutMs: 2_000,
    concurrency: 4,
    storeRetryMaxMs: 100,
    ...overrides,
  };
}

export interface CapturingLogger extends RoundLogger {
  lines: { level: string; msg: string; obj: object }[];
}

export function captureLogger(): CapturingLogger {
  const lines: CapturingLogger['lines'] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', msg, obj }),
    warn: (obj, msg) => lines.push({ level: 'warn', msg, obj }),
    error: (obj, msg) => lines.push({ level: 'error', msg, obj }),
  };
}

export function vendorFor(
  sim: VendorSimulator,
  overrides: { responseTimeoutMs?: number; retries?: number; retryDelayMs?: number } = {},
): VendorApiClient {
  return createVendorApi({
    baseUrl: sim.baseUrl,
    ...sim.credentials,
    connectTimeoutMs: 500,
    responseTimeoutMs: overrides.responseTimeoutMs ?? 1_000,
    retries: overrides.retries ?? 1,
    retryDelayMs: overrides.retryDelayMs ?? 10,
  });
}

/** A temp directory removed by the returned cleanup. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export function roundDeps(
  vendor: VendorApiClient,
  store: RoundStore,
  spoolDir: string,
  extra: { logger?: RoundLogger; events?: RoundEvent[] } = {},
): RoundDeps {
  return {
    vendor,
    store,
    spool: createFileSpool(spoolDir),
    clock: systemClock,
    logger: extra.logger ?? captureLogger(),
    newId: randomUUID,
    onEvent: (e) => extra.events?.push(e),
  };
}
