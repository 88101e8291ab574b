// "The pair now": per node its version, app health, keepalived role and priority, database role
// and lag, rsync state, and which node holds the VIP; the report's reasons when it is not ok.
import { h, replace } from './dom.js';
import { formatBytes, formatTime } from './format.js';
import type { NodeHealth, PairReport } from './types.js';

type Tone = 'ok' | 'warn' | 'bad' | 'unknown';

const badge = (tone: Tone, text: string): HTMLElement => h('span', { class: `badge ${tone}` }, text);

export function renderPair(root: HTMLElement, report: PairReport | null): void {
  if (report === null) {
    replace(root, h('p', {}, 'Asking both nodes…'));
    return;
  }
  const tone: Tone = report.status === 'ok' ? 'ok' : report.status === 'degraded' ? 'warn' : 'bad';
  const holder = report.nodes.find((n) => n.keepalived.holds_vip === true);
  replace(
    root,
    h(
      'p',
      { class: 'summary' },
      'Pair: ',
      badge(tone, report.status),
      ` · VIP on ${holder?.id ?? 'no node'} · checked ${formatTime(report.timestamp)}`,
    ),
    report.reasons.length === 0
      ? null
      : h(
          'ul',
          { class: 'reasons', 'aria-label': 'why the pair is not ok' },
          ...report.reasons.map((r) => h('li', {}, r)),
        ),
    h(
      'div',
      { class: 'table-scroll' },
      h(
        'table',
        { id: 'pair-table' },
        h('caption', { class: 'visually-hidden' }, 'Each node of the pair'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Node', 'Version', 'Application', 'keepalived', 'Database', 'Config sync (rsync)', 'VIP'].map(
              (c) => h('th', { scope: 'col' }, c),
            ),
          ),
        ),
        h('tbody', {}, ...report.nodes.map(nodeRow)),
      ),
    ),
  );
}

function nodeRow(n: NodeHealth): HTMLTableRowElement {
  if (!n.reachable)
    return h(
      'tr',
      { 'data-node': n.id },
      h('th', { scope: 'row' }, n.id, h('br'), h('small', {}, n.address)),
      h('td', { colspan: 6 }, badge('bad', 'unreachable'), ` ${n.error ?? ''}`),
    );
  const app =
    n.app.healthy === null
      ? badge('unknown', 'unknown')
      : n.app.healthy
        ? badge('ok', 'healthy')
        : badge('bad', n.app.detail ?? 'unhealthy');
  const lag = n.database.lag_bytes === null ? '' : `, lag ${formatBytes(n.database.lag_bytes)}`;
  const db = h(
    'span',
    {},
    `${n.database.role ?? 'unknown'}${lag}`,
    n.database.streaming === false ? h('span', {}, ' ', badge('warn', 'not streaming')) : null,
  );
  const rsync =
    n.rsync.paused === null
      ? badge('unknown', 'unknown')
      : n.rsync.paused
        ? badge('warn', 'paused')
        : badge('ok', 'running');
  return h(
    'tr',
    { 'data-node': n.id },
    h('th', { scope: 'row' }, n.id, h('br'), h('small', {}, n.address)),
    h('td', {}, n.version ?? 'unknown'),
    h('td', {}, app),
    h(
      'td',
      {},
      `${n.keepalived.role ?? 'unknown'}${n.keepalived.priority === null ? '' : `, priority ${n.keepalived.priority}`}`,
    ),
    h('td', {}, db),
    h(
      'td',
      {},
      rsync,
      n.rsync.last_sync_at === null ? null : h('small', {}, ` last ${formatTime(n.rsync.last_sync_at)}`),
    ),
    h('td', {}, n.keepalived.holds_vip === true ? badge('ok', 'holds the VIP') : '—'),
  );
}
