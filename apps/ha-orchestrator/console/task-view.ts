// The task followed: the 13-state timeline with where it is now, the current step, percent and
// estimated completion, its live log, and the cancel / roll back actions.
import { h, replace } from './dom.js';
import { formatClock, formatDuration, formatTime, shortId } from './format.js';
import { FINAL, STATES, type LogLine, type Progress, type State } from './types.js';

/** The way of a successful upgrade; the other states are where a run goes when it does not. */
const MAIN_PATH: readonly State[] = STATES.slice(0, 8);

/** At most this many log lines stay on the page (the history has the full log). */
const MAX_LOG_LINES = 500;

export interface TaskViewElements {
  summary: HTMLElement;
  timeline: HTMLOListElement;
  status: HTMLElement;
  details: HTMLElement;
  log: HTMLOListElement;
  logCount: HTMLElement;
  cancel: HTMLButtonElement;
  rollback: HTMLButtonElement;
}

export function renderTask(el: TaskViewElements, task: Progress | null, visited: readonly State[]): void {
  if (task === null) {
    el.summary.textContent = 'No upgrade has run yet. Start one below.';
    el.status.textContent = '';
    replace(el.details);
    renderTimeline(el.timeline, null, []);
    el.cancel.disabled = true;
    el.rollback.disabled = true;
    return;
  }
  el.summary.textContent = `Task ${shortId(task.task_id)}: ${task.from_version ?? '?'} → ${task.to_version}`;
  el.summary.title = task.task_id;
  const step = task.current_step === null ? '' : `, step ${task.current_step}`;
  el.status.textContent = task.final
    ? `Ended ${task.state}${task.error === null ? '' : ` (${task.error.code})`}, ${task.percent} %`
    : `${task.state}${step}, ${task.percent} %`;
  renderTimeline(el.timeline, task, visited);
  replace(el.details, ...details(task));
  el.cancel.disabled = task.final;
  el.rollback.disabled = !task.final;
}

function details(task: Progress): HTMLElement[] {
  const rows: [string, Node | string][] = [
    ['Progress', progressBar(task.percent)],
    ['Current step', task.current_step ?? '—'],
    ['Last message', task.last_message ?? '—'],
    ['Started', formatTime(task.started_at)],
    [task.final ? 'Took' : 'Elapsed', formatDuration(task.elapsed_ms)],
  ];
  if (!task.final) rows.push(['Estimated completion', eta(task.estimated_completion_at)]);
  else rows.push(['Finished', formatTime(task.finished_at)]);
  rows.push(['Downtime', task.downtime_ms === null ? 'not measured yet' : formatDuration(task.downtime_ms)]);
  rows.push([
    'VIP holder',
    `${task.primary_before ?? '?'} before${task.primary_after === null ? '' : `, ${task.primary_after} after`}`,
  ]);
  rows.push(['Requested by', task.requested_by ?? '—']);
  if (task.cancel_requested_at !== null)
    rows.push(['Cancel requested', `${formatTime(task.cancel_requested_at)}: ${task.cancel_reason ?? ''}`]);
  const list = h('dl', { class: 'facts' });
  for (const [term, value] of rows) list.append(h('dt', {}, term), h('dd', {}, value));
  const out: HTMLElement[] = [list];
  if (task.error !== null)
    out.unshift(
      h(
        'p',
        { class: 'error', role: 'alert' },
        h('strong', {}, `${task.error.code}`),
        `${task.error.step === null ? '' : ` in ${task.error.step}`}: ${task.error.message}`,
      ),
    );
  return out;
}

function progressBar(percent: number): HTMLElement {
  return h(
    'span',
    { class: 'progress-row' },
    h('progress', { max: 100, value: percent, 'aria-label': 'percent done' }),
    ` ${percent} %`,
  );
}

function eta(at: string | null): string {
  if (at === null) return 'once the first step reports progress';
  const left = Date.parse(at) - Date.now();
  return `${formatTime(at)} (in about ${formatDuration(Math.max(0, left))})`;
}

/** Each of the 13 states as a list item saying, in words and colour, whether the task was there. */
function renderTimeline(root: HTMLOListElement, task: Progress | null, visited: readonly State[]): void {
  const seen = new Set(visited);
  replace(
    root,
    ...STATES.map((state) => {
      const current = task?.state === state;
      const failedEnd = current && task.final && state !== 'COMPLETE';
      const status = current
        ? task.final
          ? 'ended here'
          : 'in progress'
        : seen.has(state)
          ? 'passed'
          : 'not reached';
      const tone = failedEnd
        ? 'failed'
        : current
          ? task.final
            ? 'done'
            : 'current'
          : seen.has(state)
            ? 'done'
            : 'pending';
      return h(
        'li',
        {
          class: `state ${tone}${MAIN_PATH.includes(state) ? '' : ' side'}`,
          'data-state': state,
          'aria-current': current ? 'step' : null,
        },
        h('span', { class: 'state-name' }, state),
        h('span', { class: 'state-status' }, status),
      );
    }),
  );
}

/** Replaces the log with `lines` (oldest first). */
export function resetLog(el: TaskViewElements, lines: readonly LogLine[], total: number): void {
  replace(el.log);
  appendLog(el, lines, total);
}

export function appendLog(el: TaskViewElements, lines: readonly LogLine[], total: number): void {
  for (const line of lines) el.log.append(logItem(line));
  while (el.log.childElementCount > MAX_LOG_LINES) el.log.firstElementChild?.remove();
  const shown = el.log.childElementCount;
  el.logCount.textContent =
    total > shown ? `last ${shown} of ${total} lines (the full log is in the history)` : `${total} lines`;
  el.log.scrollTop = el.log.scrollHeight;
}

function logItem(line: LogLine): HTMLLIElement {
  return h(
    'li',
    { class: `log-line ${line.level.toLowerCase()}` },
    h('time', { datetime: line.at }, formatClock(line.at)),
    ' ',
    h('span', { class: 'level' }, line.level),
    ' ',
    h('span', { class: 'source' }, line.source),
    ' ',
    line.to_state === null
      ? null
      : h('span', { class: 'transition' }, `${line.from_state ?? '?'} → ${line.to_state} `),
    h('span', { class: 'message' }, line.message),
  );
}

export const isFinal = (state: State): boolean => FINAL.includes(state);
