// The ha-orchestrator console: the token form, then the pair, the task followed (live from the
// event stream), the upload form and the history.
import './style.css';
import { ApiError, api, forgetToken, saveToken, savedToken, whenUnauthorized } from './api.js';
import { confirmAction } from './dialog.js';
import { byId, h, replace } from './dom.js';
import { shortId, utcOffset } from './format.js';
import { createHistory } from './history.js';
import { renderPair } from './pair-view.js';
import { openFeed, type StreamStatus } from './stream.js';
import { appendLog, renderTask, resetLog, type TaskViewElements } from './task-view.js';
import type { LogEvent, PackagePolicy, PairReport, Progress, Snapshot, Task, TaskEvent } from './types.js';
import { setUpUpload } from './upload.js';

const login = byId('login');
const loginForm = byId<HTMLFormElement>('login-form');
const tokenInput = byId<HTMLInputElement>('token');
const loginMessage = byId('login-message');
const consoleRoot = byId('console');
const feedStatus = byId('feed-status');
const signOut = byId<HTMLButtonElement>('sign-out');
const actionResult = byId('task-action-result');
const taskView: TaskViewElements = {
  summary: byId('task-summary'),
  timeline: byId<HTMLOListElement>('timeline'),
  status: byId('task-status'),
  details: byId('task-details'),
  log: byId<HTMLOListElement>('task-log'),
  logCount: byId('task-log-count'),
  cancel: byId<HTMLButtonElement>('cancel-task'),
  rollback: byId<HTMLButtonElement>('rollback-task'),
};
const history = createHistory();
let feed: { close(): void } | null = null;
let task: Progress | null = null;

byId('log-offset').textContent = `times in ${utcOffset()}`;

function showLogin(message: string | null): void {
  feed?.close();
  feed = null;
  consoleRoot.hidden = true;
  signOut.hidden = true;
  login.hidden = false;
  loginMessage.textContent = message ?? '';
  loginMessage.hidden = message === null;
  feedStatus.textContent = 'Not connected';
  tokenInput.value = '';
  tokenInput.focus();
}

whenUnauthorized((message) => {
  forgetToken();
  showLogin(`The token was refused: ${message}. Enter it again.`);
});

loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (token === '') return;
  saveToken(token);
  void api<PackagePolicy>('/api/v1/upgrade/package-policy')
    .then(() => openConsole())
    .catch((error: unknown) => {
      // A 401 has shown the form again already.
      if (error instanceof ApiError && error.status === 401) return;
      forgetToken();
      showLogin(
        error instanceof ApiError
          ? `The orchestrator refused the console (${error.code}): ${error.message}`
          : 'The orchestrator could not be reached.',
      );
    });
});

signOut.addEventListener('click', () => {
  forgetToken();
  showLogin(null);
});

function openConsole(): void {
  login.hidden = true;
  consoleRoot.hidden = false;
  signOut.hidden = false;
  feed?.close();
  feed = openFeed({ event: onEvent, status: onStatus });
  void history.refresh().catch(() => undefined);
}

function onStatus(status: StreamStatus, detail: string): void {
  const text: Record<StreamStatus, string> = {
    connecting: 'Connecting…',
    live: 'Live',
    retrying: detail,
    stopped: 'Not connected',
  };
  feedStatus.textContent = text[status];
  feedStatus.dataset.status = status;
}

function onEvent(name: string, data: unknown): void {
  switch (name) {
    case 'snapshot': {
      const snapshot = data as Snapshot;
      const changed = snapshot.task?.task_id !== task?.task_id;
      task = snapshot.task;
      renderTask(taskView, task, snapshot.visited);
      resetLog(taskView, snapshot.logs, snapshot.log_total);
      renderPair(byId('pair-body'), snapshot.pair);
      if (changed) void history.refresh().catch(() => undefined);
      break;
    }
    case 'task': {
      const event = data as TaskEvent;
      const ended = task !== null && !task.final && event.task.final;
      task = event.task;
      renderTask(taskView, task, event.visited);
      if (ended) void history.refresh().catch(() => undefined);
      break;
    }
    case 'log': {
      const event = data as LogEvent;
      if (event.task_id === task?.task_id) appendLog(taskView, event.lines, event.total);
      break;
    }
    case 'pair':
      renderPair(byId('pair-body'), data as PairReport);
      break;
    default:
      break;
  }
}

taskView.cancel.addEventListener('click', () => {
  const current = task;
  if (current === null) return;
  void (async () => {
    const answer = await confirmAction({
      title: `Cancel task ${shortId(current.task_id)}?`,
      explain: [
        `The upgrade to ${current.to_version} (now in ${current.state}) stops at its next safe point: it does not stop in the middle of a step.`,
        'Whatever it changed on the pair is then undone in reverse order (the VIP moved back, the old software and schema put back, config sync resumed), and the task ends CANCELLED.',
      ],
      confirmLabel: 'Cancel the upgrade',
      reasonLabel: 'Reason (recorded with the task)',
    });
    if (!answer.confirmed) return;
    await act(
      `cancel/${current.task_id}`,
      { reason: answer.reason },
      'Cancel requested: the task stops at its next safe point.',
    );
  })();
});

taskView.rollback.addEventListener('click', () => {
  const current = task;
  if (current === null) return;
  const id = shortId(current.task_id);
  void (async () => {
    const answer = await confirmAction({
      title: `Restore the pair from task ${id}'s backups?`,
      explain: [
        `Both nodes go back to what task ${id} backed up before it upgraded to ${current.to_version}, one at a time so clients do not notice: the node without the VIP is restored (jar, configuration, root key) and checked first, the database primary and the VIP move to it, then the other node is restored. For a completed upgrade the schema change is undone by the package's rollback scripts; no database row is lost.`,
        'Ticking the box below replaces the database from the backup as well: both nodes are stopped first, and every write made since the backup is lost.',
        'The backups are re-checked against their checksums first; if one does not match, nothing is changed.',
      ],
      confirmLabel: 'Restore from backups',
      optionLabel: "Also replace the database from the backup's dump (writes since the backup are lost)",
    });
    if (!answer.confirmed) return;
    const query = answer.option ? '?restore_database=true' : '';
    await act(
      `rollback/${current.task_id}${query}`,
      undefined,
      (done) => `Restored: ${done.last_message ?? 'the pair is back on the backed-up version.'}`,
      answer.option ? 'Restoring both nodes and the database from the backups…' : 'Restoring node by node…',
    );
  })();
});

async function act(
  path: string,
  body: unknown,
  done: string | ((task: Task) => string),
  pending?: string,
): Promise<void> {
  replace(actionResult, pending === undefined ? null : h('p', {}, pending));
  try {
    const answer = await api<Task>(`/api/v1/upgrade/${path}`, { method: 'POST', body: body ?? {} });
    replace(actionResult, h('p', { class: 'success' }, typeof done === 'string' ? done : done(answer)));
  } catch (error) {
    replace(
      actionResult,
      h(
        'p',
        { class: 'error' },
        error instanceof ApiError
          ? `Refused (HTTP ${error.status} ${error.code}): ${error.message}`
          : 'The request failed.',
      ),
    );
  }
}

setUpUpload(() => {
  replace(actionResult);
});

if (savedToken() === null) showLogin(null);
else openConsole();
