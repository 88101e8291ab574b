// The `report` CLI's table: the same figures as GET /api/stats.
import type { Stats, StatsRow } from './ports.js';

const HEADERS = ['', 'attempts', 'completed', 'failed', 'timeout', 'success', 'p50', 'p95'];

/** Renders stats as two plain-text tables, per firmware file and per host. */
export function formatStatsReport(stats: Stats): string {
  return [
    `upgrade results since ${stats.since.toISOString()}`,
    '',
    'per firmware file',
    table(stats.byFirmware),
    '',
    'per host',
    table(stats.byHost),
  ].join('\n');
}

function table(rows: readonly StatsRow[]): string {
  if (rows.length === 0) return '  (no results)';
  const body = rows.map((r) => [
    r.key,
    String(r.attempts),
    String(r.completed),
    String(r.failed),
    String(r.timeout),
    `${(r.successRate * 100).toFixed(1)}%`,
    formatDuration(r.p50DurationMs),
    formatDuration(r.p95DurationMs),
  ]);
  const all = [HEADERS, ...body];
  const widths = HEADERS.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  return all
    .map(
      (row) =>
        '  ' +
        row
          .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
          .join('  '),
    )
    .join('\n');
}

/** `1m 05s`, `42.0s`, `850ms`, or `-` without data. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
}
