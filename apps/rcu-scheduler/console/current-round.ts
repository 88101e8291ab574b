// The round running in the service now: a summary read out as it changes, and each group's hosts.
import { byId, h, replaceChildren, stateBadge, table } from './dom.js';
import { formatDuration, formatTime } from './format.js';
import type { GroupChange, LiveGroup, LiveRound, Snapshot } from './types.js';

export interface CurrentRoundView {
  showSnapshot(snapshot: Snapshot): void;
  showRound(round: LiveRound, nextTickAt: string | null): void;
  showGroup(change: GroupChange): void;
  /** The round on screen, if any. */
  readonly round: LiveRound | null;
}

const TRIGGER_TEXT: Record<LiveRound['trigger'], string> = {
  schedule: 'on schedule',
  manual: 'started by hand',
  recovery: 'recovery',
};

export function createCurrentRoundView(): CurrentRoundView {
  const heading = byId('current-heading');
  const summary = byId('current-summary');
  const details = byId('current-details');
  const progress = byId<HTMLProgressElement>('current-progress');
  const groups = byId('current-groups');
  let round: LiveRound | null = null;
  let nextTickAt: string | null = null;

  const summaryText = (r: LiveRound): string => {
    const hosts = `${r.final} of ${r.total} hosts final`;
    switch (r.phase) {
      case 'running':
        return `Running: ${hosts}.`;
      case 'storing':
        return `Storing results: ${hosts}.`;
      case 'finished': {
        const s = r.summary ?? { completed: 0, failed: 0, timeout: 0, total: r.total };
        const took =
          r.finishedAt === null
            ? ''
            : ` in ${formatDuration(Date.parse(r.finishedAt) - Date.parse(r.startedAt))}`;
        const waiting =
          r.stored === false ? ' The results wait for the database and are stored once it answers.' : '';
        return `Finished${took}: ${s.completed} completed, ${s.failed} failed, ${s.timeout} timed out.${waiting}`;
      }
    }
  };

  const renderSummary = (): void => {
    if (round === null) {
      heading.textContent = 'No round yet';
      summary.textContent = 'No round has run since the service started.';
      progress.hidden = true;
      replaceChildren(
        details,
        nextTickAt === null ? null : h('p', {}, `Next scheduled round: ${formatTime(nextTickAt)}.`),
      );
      replaceChildren(groups);
      return;
    }
    heading.textContent = `${round.phase === 'finished' ? 'Last round' : 'Round'} with ${round.filename}`;
    summary.textContent = summaryText(round);
    progress.hidden = false;
    progress.max = Math.max(1, round.total);
    progress.value = round.final;
    progress.textContent = `${round.final} of ${round.total}`;
    replaceChildren(
      details,
      h(
        'p',
        {},
        `Round ${round.roundId}, ${TRIGGER_TEXT[round.trigger]}${round.resumed ? ', resumed after a restart' : ''}, started ${formatTime(round.startedAt)}.`,
        nextTickAt === null ? null : ` Next scheduled round: ${formatTime(nextTickAt)}.`,
      ),
    );
  };

  const groupBlock = (group: LiveGroup): HTMLElement => {
    const final = group.hosts.filter((x) => x.status !== 'pending' && x.status !== 'running').length;
    return h(
      'div',
      { class: 'group', 'data-room-type': group.roomTypeId },
      table(
        `Room type ${group.roomTypeId}`,
        ['Host', 'State', 'Progress'],
        group.hosts.map((x) => [x.host, stateBadge(x.status), `${Math.round(x.progress)} %`]),
      ),
      h(
        'p',
        { class: 'group-note' },
        `${final} of ${group.hosts.length} final. `,
        group.triggerError !== null
          ? h('span', { class: 'error-text' }, group.triggerError)
          : group.uuid !== null
            ? `Vendor upgrade ${group.uuid}.`
            : 'Waiting for the vendor to accept the upgrade.',
      ),
    );
  };

  const renderGroups = (): void => {
    replaceChildren(groups, ...(round?.groups ?? []).map(groupBlock));
  };

  return {
    showSnapshot(snapshot) {
      round = snapshot.round;
      nextTickAt = snapshot.nextTickAt;
      renderSummary();
      renderGroups();
    },
    showRound(next, nextTick) {
      round = next;
      nextTickAt = nextTick;
      renderSummary();
      renderGroups();
    },
    showGroup(change) {
      if (round === null || change.roundId !== round.roundId) return;
      const index = round.groups.findIndex((g) => g.roomTypeId === change.group.roomTypeId);
      if (index < 0) return;
      round.groups[index] = change.group;
      round.final = change.final;
      if (round.phase === 'running' && change.final === change.total) round.phase = 'storing';
      renderSummary();
      const old = groups.querySelector(`[data-room-type="${change.group.roomTypeId}"]`);
      if (old === null) renderGroups();
      else old.replaceWith(groupBlock(change.group));
    },
    get round() {
      return round;
    },
  };
}
