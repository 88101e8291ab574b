// Times in the reader's locale with the UTC offset; durations the way people say them.

const TIME = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  timeZoneName: 'shortOffset',
});

/** `2 Dec 2026, 17:40:02 GMT+1` (the reader's locale). */
export function formatTime(iso: string | Date): string {
  return TIME.format(typeof iso === 'string' ? new Date(iso) : iso);
}

/** `850 ms`, `12 s`, `1 m 12 s`, `2 h 5 m`. */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '–';
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  const seconds = Math.round(ms / 1_000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return seconds % 60 === 0 ? `${minutes} m` : `${minutes} m ${seconds % 60} s`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 === 0 ? `${hours} h` : `${hours} h ${minutes % 60} m`;
}

/** `87.5 %` */
export function formatPercent(fraction: number | null): string {
  if (fraction === null) return '–';
  return `${(fraction * 100).toFixed(fraction === 1 || fraction === 0 ? 0 : 1)} %`;
}
