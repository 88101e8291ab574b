// Hosts that failed most over the last week: the ones to visit first.
import { describeFailure, getJson } from './api.js';
import { byId, h, replaceChildren, table } from './dom.js';
import { formatPercent, formatTime } from './format.js';
import type { FailingHosts } from './types.js';

export interface FailingView {
  refresh(): Promise<void>;
}

export function createFailingView(): FailingView {
  const root = byId('failing');
  return {
    async refresh() {
      let data: FailingHosts;
      try {
        data = await getJson<FailingHosts>('/api/hosts/failing?limit=10');
      } catch (error) {
        replaceChildren(root, h('p', { class: 'error-text', role: 'alert' }, describeFailure(error)));
        return;
      }
      replaceChildren(
        root,
        data.items.length === 0
          ? h('p', {}, `No host failed since ${formatTime(data.since)}.`)
          : table(
              `Hosts with failures since ${formatTime(data.since)}, most failures first`,
              [
                'Rank',
                'Host',
                'Room type',
                'Failures',
                'Attempts',
                'Failure rate',
                'Last failure',
                'Last reason',
              ],
              data.items.map((x, i) => [
                String(i + 1),
                x.host,
                x.roomTypeId,
                `${x.failed + x.timeout} (${x.failed} failed, ${x.timeout} timed out)`,
                x.attempts,
                formatPercent(x.failureRate),
                formatTime(x.lastFailureAt),
                x.lastDetail ?? '–',
              ]),
              { rowHeader: 1 },
            ),
      );
    },
  };
}
