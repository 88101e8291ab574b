// Tasks newest first, a page at a time, and the full log and downtime of the task chosen.
import { api } from './api.js';
import { byId, h, replace } from './dom.js';
import { formatClock, formatDuration, formatTime, shortId } from './format.js';
import type { LogLine, Page, Task } from './types.js';

const PAGE_SIZE = 10;
const LOG_PAGE_SIZE = 100;

export function createHistory(): { refresh(): Promise<void> } {
  const body = byId('history-body');
  const logRegion = byId('history-log');
  let page = 1;

  async function refresh(): Promise<void> {
    const result = await api<Page<Task>>(`/api/v1/upgrade/history?page=${page}&page_size=${PAGE_SIZE}`);
    const pages = Math.max(1, Math.ceil(result.total / PAGE_SIZE));
    if (page > pages) {
      page = pages;
      return refresh();
    }
    const previous = h('button', { type: 'button', disabled: page <= 1 }, 'Newer tasks');
    const next = h('button', { type: 'button', disabled: page >= pages }, 'Older tasks');
    previous.addEventListener('click', () => {
      page -= 1;
      void refresh();
    });
    next.addEventListener('click', () => {
      page += 1;
      void refresh();
    });
    replace(
      body,
      result.total === 0
        ? h('p', {}, 'No upgrade task yet.')
        : h(
            'div',
            { class: 'table-scroll' },
            h(
              'table',
              { id: 'history-table' },
              h(
                'caption',
                {},
                `Upgrade tasks, newest first: page ${page} of ${pages} (${result.total} tasks)`,
              ),
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ...[
                    'Task',
                    'Created',
                    'Versions',
                    'Ended in',
                    'Took',
                    'Downtime',
                    'Requested by',
                    'Log',
                  ].map((c) => h('th', { scope: 'col' }, c)),
                ),
              ),
              h('tbody', {}, ...result.items.map((task) => row(task, () => void showLog(task)))),
            ),
          ),
      h('nav', { class: 'pager', 'aria-label': 'history pages' }, previous, ' ', next),
    );
  }

  async function showLog(task: Task): Promise<void> {
    replace(logRegion, h('p', { role: 'status' }, `Reading the log of task ${shortId(task.task_id)}…`));
    const lines: LogLine[] = [];
    for (let p = 1; ; p += 1) {
      const result = await api<Page<LogLine>>(
        `/api/v1/upgrade/logs/${task.task_id}?page=${p}&page_size=${LOG_PAGE_SIZE}`,
      );
      lines.push(...result.items);
      if (result.items.length < LOG_PAGE_SIZE || lines.length >= result.total) break;
    }
    lines.reverse();
    const heading = h(
      'h3',
      { tabindex: -1 },
      `Log of task ${shortId(task.task_id)} (${task.from_version ?? '?'} → ${task.to_version})`,
    );
    replace(
      logRegion,
      heading,
      h(
        'p',
        {},
        `${task.state}, ${lines.length} lines, downtime ${task.downtime_ms === null ? 'not measured' : formatDuration(task.downtime_ms)}` +
          `${task.error === null ? '' : `, error ${task.error.code}: ${task.error.message}`}.`,
      ),
      h(
        'div',
        { class: 'table-scroll log-table' },
        h(
          'table',
          {},
          h('caption', { class: 'visually-hidden' }, 'Log lines, oldest first'),
          h(
            'thead',
            {},
            h('tr', {}, ...['Time', 'Level', 'Source', 'Message'].map((c) => h('th', { scope: 'col' }, c))),
          ),
          h(
            'tbody',
            {},
            ...lines.map((l) =>
              h(
                'tr',
                { class: `log-line ${l.level.toLowerCase()}` },
                h('td', {}, h('time', { datetime: l.at, title: formatTime(l.at) }, formatClock(l.at))),
                h('td', {}, h('span', { class: 'level' }, l.level)),
                h('td', {}, l.source),
                h('td', {}, l.to_state === null ? '' : `${l.from_state ?? '?'} → ${l.to_state}: `, l.message),
              ),
            ),
          ),
        ),
      ),
    );
    heading.focus();
  }

  return { refresh };
}

function row(task: Task, onLog: () => void): HTMLTableRowElement {
  const took =
    task.started_at === null || task.finished_at === null
      ? null
      : Date.parse(task.finished_at) - Date.parse(task.started_at);
  const button = h(
    'button',
    { type: 'button', 'aria-label': `Show the log of task ${shortId(task.task_id)}` },
    'Show log',
  );
  button.addEventListener('click', onLog);
  const tone = task.state === 'COMPLETE' ? 'ok' : task.final ? 'bad' : 'warn';
  return h(
    'tr',
    { 'data-task': task.task_id },
    h('td', { title: task.task_id }, h('code', {}, shortId(task.task_id))),
    h('td', {}, formatTime(task.created_at)),
    h('td', {}, `${task.from_version ?? '?'} → ${task.to_version}`),
    h('td', {}, h('span', { class: `badge ${tone}` }, task.final ? task.state : `${task.state} (running)`)),
    h('td', {}, formatDuration(took)),
    h('td', {}, task.downtime_ms === null ? '—' : formatDuration(task.downtime_ms)),
    h('td', {}, task.requested_by ?? '—'),
    h('td', {}, button),
  );
}
