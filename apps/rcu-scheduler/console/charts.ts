// Trends as uPlot line charts, each with its figures in a table beneath for those who would rather
// read them (or cannot see the canvas). Each figure carries the number of points it draws.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { describeFailure, getJson } from './api.js';
import { byId, h, replaceChildren, table } from './dom.js';
import { formatDuration, formatPercent, formatTime } from './format.js';
import type { TrendShare, Trends } from './types.js';

/** Distinct in hue and lightness, each >= 4.5:1 on white; dashes tell series apart without colour. */
const PALETTE = ['#1d4ed8', '#b45309', '#047857', '#7c3aed', '#be123c', '#0e7490'];
const DASHES: (number[] | undefined)[] = [undefined, [8, 4], [2, 3], [12, 4, 2, 4]];
const HEIGHT = 240;

interface Series {
  label: string;
  values: (number | null)[];
  format: (value: number | null) => string;
}

interface ChartSpec {
  id: string;
  title: string;
  unit: 'percent' | 'seconds';
}

const SPECS: readonly ChartSpec[] = [
  { id: 'chart-firmware', title: 'Success rate per firmware file', unit: 'percent' },
  { id: 'chart-room-type', title: 'Success rate per room type', unit: 'percent' },
  { id: 'chart-duration', title: 'Upgrade duration percentiles (completed hosts)', unit: 'seconds' },
];

export interface TrendCharts {
  refresh(): Promise<void>;
}

export function createTrendCharts(): TrendCharts {
  const root = byId('charts');
  const bucketSelect = byId<HTMLSelectElement>('trend-bucket');
  const plots = new Map<string, uPlot>();

  const widthOf = (element: HTMLElement): number => Math.max(280, Math.floor(element.clientWidth));
  const resizer = new ResizeObserver(() => {
    for (const [id, plot] of plots) {
      const holder = document.getElementById(`${id}-plot`);
      if (holder !== null) plot.setSize({ width: widthOf(holder), height: HEIGHT });
    }
  });

  const render = (trends: Trends): void => {
    for (const plot of plots.values()) plot.destroy();
    plots.clear();
    resizer.disconnect();
    const perRound = trends.bucket === 'round';
    const times = trends.overall.map((p) => p.at);
    const xs = times.map((at) => Date.parse(at) / 1000);
    const percent = (v: number | null): string => (v === null ? '–' : formatPercent(v / 100));
    const seconds = (v: number | null): string => (v === null ? '–' : formatDuration(v * 1000));
    const series: Record<string, Series[]> = {
      'chart-firmware': shareSeries(times, trends.byFirmware, (k) => k, percent),
      'chart-room-type': shareSeries(times, trends.byRoomType, (k) => `room type ${k}`, percent),
      'chart-duration': (['p50', 'p90', 'p99'] as const).map((name) => ({
        label: name,
        values: trends.overall.map((p) => {
          const ms = p[`${name}DurationMs`];
          return ms === null ? null : ms / 1000;
        }),
        format: seconds,
      })),
    };
    const xLabel = perRound ? 'Round start' : 'Day (UTC)';
    const figures = SPECS.map((spec) => {
      const lines = series[spec.id] ?? [];
      const holder = h('div', {
        id: `${spec.id}-plot`,
        class: 'plot',
        role: 'img',
        'aria-label': `${spec.title}: a line chart of ${xs.length} points; the table below lists them.`,
      });
      const figure = h(
        'figure',
        { id: spec.id, class: 'chart', 'data-points': xs.length, 'data-series': lines.length },
        h('figcaption', {}, h('h3', {}, spec.title)),
        xs.length === 0 ? h('p', {}, 'No finished rounds in this window yet.') : holder,
        h(
          'details',
          {},
          h('summary', {}, 'Show the figures as a table'),
          table(
            spec.title,
            [xLabel, ...lines.map((l) => l.label)],
            times.map((at, i) => [
              perRound ? formatTime(at) : at.slice(0, 10),
              ...lines.map((l) => l.format(l.values[i] ?? null)),
            ]),
            { captionHidden: true },
          ),
        ),
      );
      return { spec, figure, holder, lines };
    });
    replaceChildren(root, ...figures.map((f) => f.figure));
    if (xs.length === 0) return;
    for (const { spec, holder, lines } of figures) {
      const options: uPlot.Options = {
        width: widthOf(holder),
        height: HEIGHT,
        scales: {
          x: { time: true },
          y:
            spec.unit === 'percent'
              ? { range: [0, 100] }
              : { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
        },
        axes: [
          {},
          {
            label: spec.unit === 'percent' ? 'success rate (%)' : 'duration (s)',
            values: (_u, splits) => splits.map((v) => (spec.unit === 'percent' ? `${v} %` : `${v} s`)),
          },
        ],
        series: [
          {
            label: xLabel,
            value: (_u, v) =>
              v === null
                ? '–'
                : perRound
                  ? formatTime(new Date(v * 1000))
                  : new Date(v * 1000).toISOString().slice(0, 10),
          },
          ...lines.map((line, i) => ({
            label: line.label,
            stroke: PALETTE[i % PALETTE.length],
            dash: DASHES[i % DASHES.length],
            width: 2,
            spanGaps: true,
            points: { show: true, size: 7 },
            value: (_u: uPlot, v: number | null) => line.format(v),
          })),
        ],
      };
      const data: uPlot.AlignedData = [xs, ...lines.map((l) => l.values)];
      plots.set(spec.id, new uPlot(options, data, holder));
      resizer.observe(holder);
    }
  };

  const refresh = async (): Promise<void> => {
    const bucket = bucketSelect.value === 'day' ? 'day' : 'round';
    try {
      render(await getJson<Trends>(`/api/trends?bucket=${bucket}&limit=30`));
    } catch (error) {
      replaceChildren(root, h('p', { class: 'error-text', role: 'alert' }, describeFailure(error)));
    }
  };
  bucketSelect.addEventListener('change', () => void refresh());
  return { refresh };
}

/** One series per key (firmware file, room type), aligned to the points' times, gaps as null. */
function shareSeries(
  times: readonly string[],
  shares: readonly TrendShare[],
  label: (key: string) => string,
  format: (value: number | null) => string,
): Series[] {
  const index = new Map(times.map((at, i) => [at, i]));
  const byKey = new Map<string, (number | null)[]>();
  for (const share of shares) {
    let values = byKey.get(share.key);
    if (values === undefined) {
      values = times.map(() => null);
      byKey.set(share.key, values);
    }
    const i = index.get(share.at);
    if (i !== undefined) values[i] = Math.round(share.successRate * 1000) / 10;
  }
  return [...byKey.entries()]
    .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
    .map(([key, values]) => ({ label: label(key), values, format }));
}
