// Rounds, newest first, a page at a time.
import { getJson, describeFailure } from './api.js';
import { byId, h, replaceChildren, stateBadge, table } from './dom.js';
import { formatDuration, formatTime } from './format.js';
import type { RoundPage } from './types.js';

const PAGE_SIZE = 10;

export interface HistoryView {
  refresh(): Promise<void>;
}

export function createHistoryView(): HistoryView {
  const root = byId('history');
  const newer = byId<HTMLButtonElement>('history-newer');
  const older = byId<HTMLButtonElement>('history-older');
  const position = byId('history-position');
  let page = 1;

  const load = async (): Promise<void> => {
    let data: RoundPage;
    try {
      data = await getJson<RoundPage>(`/api/rounds?page=${page}&page_size=${PAGE_SIZE}`);
    } catch (error) {
      replaceChildren(root, h('p', { class: 'error-text', role: 'alert' }, describeFailure(error)));
      return;
    }
    const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
    if (page > pages) {
      page = pages;
      return load();
    }
    replaceChildren(
      root,
      data.items.length === 0
        ? h('p', {}, 'No rounds yet.')
        : table(
            'Rounds, newest first',
            ['Started', 'Firmware file', 'Trigger', 'Status', 'Completed', 'Failed', 'Timed out', 'Duration'],
            data.items.map((r) => [
              formatTime(r.startedAt),
              r.filename,
              r.trigger,
              stateBadge(r.status),
              r.status === 'finished' ? r.summary.completed : '–',
              r.status === 'finished' ? r.summary.failed : '–',
              r.status === 'finished' ? r.summary.timeout : '–',
              r.finishedAt === null
                ? '–'
                : formatDuration(Date.parse(r.finishedAt) - Date.parse(r.startedAt)),
            ]),
            { captionHidden: true },
          ),
    );
    position.textContent = `Page ${page} of ${pages}, ${data.total} round${data.total === 1 ? '' : 's'}`;
    newer.disabled = page <= 1;
    older.disabled = page >= pages;
  };

  newer.addEventListener('click', () => {
    page = Math.max(1, page - 1);
    void load();
  });
  older.addEventListener('click', () => {
    page += 1;
    void load();
  });

  return { refresh: load };
}
