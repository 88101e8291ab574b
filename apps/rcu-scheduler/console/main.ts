// The rcu-scheduler console: the round running now (live), rounds history, trends, failing hosts,
// and the one action an operator needs: run a round now.
import './style.css';
import { describeFailure, postJson } from './api.js';
import { createTrendCharts } from './charts.js';
import { createCurrentRoundView } from './current-round.js';
import { byId } from './dom.js';
import { connectEvents } from './events.js';
import { createFailingView } from './failing.js';
import { createHistoryView } from './history.js';

const current = createCurrentRoundView();
const history = createHistoryView();
const charts = createTrendCharts();
const failing = createFailingView();
const connection = byId('connection');
const runButton = byId<HTMLButtonElement>('run-round');
const runNote = byId('run-note');
const runError = byId('run-error');

/** The round this page started, until the stream shows it. */
let awaiting: string | null = null;

const updateRunButton = (): void => {
  const phase = current.round?.phase;
  runButton.disabled = awaiting !== null || phase === 'running' || phase === 'storing';
};

const refreshAll = (): void => {
  void history.refresh();
  void charts.refresh();
  void failing.refresh();
};

runButton.addEventListener('click', () => {
  runError.textContent = '';
  runNote.textContent = 'Starting a round…';
  runButton.disabled = true;
  postJson<{ roundId: string }>('/api/rounds').then(
    ({ roundId }) => {
      if (current.round?.roundId !== roundId) awaiting = roundId;
      runNote.textContent = `Round ${roundId} started.`;
      updateRunButton();
    },
    (error: unknown) => {
      runNote.textContent = '';
      runError.textContent = `The round could not start: ${describeFailure(error)}`;
      updateRunButton();
    },
  );
});

connectEvents({
  snapshot(snapshot) {
    current.showSnapshot(snapshot);
    updateRunButton();
    refreshAll();
  },
  round({ round, nextTickAt }) {
    if (round.roundId === awaiting) awaiting = null;
    current.showRound(round, nextTickAt);
    updateRunButton();
    void history.refresh();
    if (round.phase === 'finished') {
      if (runNote.textContent?.includes(round.roundId)) runNote.textContent = '';
      void charts.refresh();
      void failing.refresh();
    }
  },
  group(change) {
    current.showGroup(change);
    updateRunButton();
  },
  connection(state) {
    connection.textContent = state === 'live' ? 'Live' : 'Connection lost; reconnecting…';
    connection.className = `connection connection-${state}`;
  },
});
