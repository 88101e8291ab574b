// The operators' existing `.env` format (seed 000): parallel arrays instead of RCU_GROUPS and
// FIRMWARE_FILES. Read into the JSON variables, so one set of checks applies to both formats:
//
//   roomtype_id=[12,15]
//   host_list_str=["192.168.10.11,192.168.10.12","192.168.11.21"]
//   fileName=[["RCU_V2.3.1.bin",1],["RCU_V2.4.0.bin",1]]      (or ["A.bin","B.bin"] with file_type=1)
import type { ConfigIssue } from '@upgrade/service';

type Env = Readonly<Record<string, string | undefined>>;

/** The operators' variable names. */
export const OPERATOR_VARIABLES = ['roomtype_id', 'host_list_str', 'fileName', 'file_type'] as const;

export interface OperatorEnvResult {
  /** `env` plus RCU_GROUPS / FIRMWARE_FILES built from the operators' variables when those are set. */
  env: Record<string, string | undefined>;
  issues: ConfigIssue[];
  /** Which JSON variable came from which operators' variables, to name them in later messages. */
  derived: Partial<Record<'RCU_GROUPS' | 'FIRMWARE_FILES', string>>;
}

const set = (value: string | undefined): value is string => value !== undefined && value.trim() !== '';

/**
 * Builds `RCU_GROUPS` from `roomtype_id[i]` + `host_list_str[i]` (hosts separated by commas, or
 * an array of hosts) and `FIRMWARE_FILES` from `fileName` (names with `file_type`, or
 * `[name, type]` pairs). Setting both formats for the same thing is refused: one source of truth.
 */
export function readOperatorEnv(env: Env): OperatorEnvResult {
  const out: Record<string, string | undefined> = { ...env };
  const issues: ConfigIssue[] = [];
  const derived: OperatorEnvResult['derived'] = {};

  const hasGroups = set(env.roomtype_id) || set(env.host_list_str);
  if (hasGroups) {
    if (set(env.RCU_GROUPS)) {
      issues.push({
        variable: 'RCU_GROUPS',
        message: 'is set together with roomtype_id / host_list_str; keep one of the two formats',
      });
    } else {
      const groups = readGroups(env.roomtype_id, env.host_list_str, issues);
      if (groups !== undefined) {
        out.RCU_GROUPS = JSON.stringify(groups);
        derived.RCU_GROUPS = 'roomtype_id / host_list_str';
      }
    }
  }
  if (set(env.fileName) || set(env.file_type)) {
    if (set(env.FIRMWARE_FILES)) {
      issues.push({
        variable: 'FIRMWARE_FILES',
        message: 'is set together with fileName; keep one of the two formats',
      });
    } else {
      const files = readFiles(env.fileName, env.file_type, issues);
      if (files !== undefined) {
        out.FIRMWARE_FILES = JSON.stringify(files);
        derived.FIRMWARE_FILES = 'fileName';
      }
    }
  }
  return { env: out, issues, derived };
}

function readGroups(
  roomTypes: string | undefined,
  hostLists: string | undefined,
  issues: ConfigIssue[],
): { roomTypeId: number; hosts: string[] }[] | undefined {
  if (!set(roomTypes) || !set(hostLists)) {
    issues.push({
      variable: set(roomTypes) ? 'host_list_str' : 'roomtype_id',
      message:
        'is required with the other (roomtype_id[i] is the room type of the hosts in host_list_str[i])',
    });
    return undefined;
  }
  const before = issues.length;
  const ids = readArray('roomtype_id', roomTypes, issues);
  const lists = readArray('host_list_str', hostLists, issues);
  if (ids === undefined || lists === undefined) return undefined;
  const roomTypeIds: number[] = [];
  ids.forEach((raw, i) => {
    const id = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : raw;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0)
      issues.push({
        variable: 'roomtype_id',
        message: `entry ${i} (${JSON.stringify(raw)}) is not a room type id`,
      });
    else roomTypeIds.push(id);
  });
  const hostGroups: string[][] = [];
  lists.forEach((raw, i) => {
    const hosts = typeof raw === 'string' ? raw.split(',') : Array.isArray(raw) ? raw : undefined;
    if (hosts === undefined || !hosts.every((h) => typeof h === 'string')) {
      issues.push({
        variable: 'host_list_str',
        message: `entry ${i} must be "host,host,..." or ["host", ...]`,
      });
      return;
    }
    const trimmed = hosts.map((h) => h.trim()).filter((h) => h !== '');
    if (trimmed.length === 0) issues.push({ variable: 'host_list_str', message: `entry ${i} lists no host` });
    hostGroups.push(trimmed);
  });
  if (ids.length !== lists.length) {
    issues.push({
      variable: 'host_list_str',
      message: `has ${lists.length} entries but roomtype_id has ${ids.length}; give one host list per room type`,
    });
  }
  if (issues.length > before) return undefined;
  return roomTypeIds.map((roomTypeId, i) => ({ roomTypeId, hosts: hostGroups[i] ?? [] }));
}

function readFiles(
  names: string | undefined,
  fileType: string | undefined,
  issues: ConfigIssue[],
): { filename: string; fileType: number }[] | undefined {
  if (!set(names)) {
    issues.push({ variable: 'fileName', message: 'is required with file_type' });
    return undefined;
  }
  const before = issues.length;
  const entries = readArray('fileName', names, issues);
  if (entries === undefined) return undefined;
  const type = set(fileType) ? Number(fileType.trim()) : undefined;
  if (type !== undefined && (!Number.isInteger(type) || type < 0)) {
    issues.push({
      variable: 'file_type',
      message: `must be a whole number >= 0 (the vendor's file type code)`,
    });
    return undefined;
  }
  const files: { filename: string; fileType: number }[] = [];
  entries.forEach((entry, i) => {
    if (typeof entry === 'string') {
      if (type === undefined)
        issues.push({
          variable: 'file_type',
          message: `is required when fileName lists names (or give ["${entry}", <type>] pairs)`,
        });
      else files.push({ filename: entry, fileType: type });
    } else if (
      Array.isArray(entry) &&
      entry.length === 2 &&
      typeof entry[0] === 'string' &&
      Number.isInteger(entry[1])
    ) {
      files.push({ filename: entry[0], fileType: entry[1] as number });
    } else {
      issues.push({ variable: 'fileName', message: `entry ${i} must be "name" or ["name", fileType]` });
    }
  });
  return issues.length > before ? undefined : files;
}

/** A JSON array, or for plain values a comma-separated list (`12,15`). */
function readArray(variable: string, raw: string, issues: ConfigIssue[]): unknown[] | undefined {
  const text = raw.trim();
  if (text.startsWith('[')) {
    try {
      const parsed = JSON.parse(text) as unknown;
      if (Array.isArray(parsed)) return parsed as unknown[];
    } catch {
      // reported below
    }
    issues.push({ variable, message: 'is not a valid JSON array' });
    return undefined;
  }
  return text.split(',').map((part) => part.trim());
}
