// The live stream of the service (GET /api/events, server-sent events). EventSource reconnects by
// itself after a drop; when the browser gives up (the service answered an error), this reconnects
// with a growing delay. Each connect starts with a snapshot, so nothing missed while away is lost.
import type { GroupChange, LiveRound, Snapshot } from './types.js';

export interface EventHandlers {
  snapshot(snapshot: Snapshot): void;
  round(update: { round: LiveRound; nextTickAt: string | null }): void;
  group(change: GroupChange): void;
  connection(state: 'live' | 'reconnecting'): void;
}

export function connectEvents(handlers: EventHandlers): void {
  let delayMs = 1_000;
  const open = (): void => {
    const source = new EventSource('/api/events');
    const on = <T>(name: string, handle: (data: T) => void): void => {
      source.addEventListener(name, (event) => handle(JSON.parse((event as MessageEvent<string>).data) as T));
    };
    on<Snapshot>('snapshot', (snapshot) => {
      delayMs = 1_000;
      handlers.connection('live');
      handlers.snapshot(snapshot);
    });
    on<{ round: LiveRound; nextTickAt: string | null }>('round', (update) => handlers.round(update));
    on<GroupChange>('group', (change) => handlers.group(change));
    source.addEventListener('error', () => {
      handlers.connection('reconnecting');
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(open, delayMs);
        delayMs = Math.min(delayMs * 2, 30_000);
      }
    });
  };
  open();
}
