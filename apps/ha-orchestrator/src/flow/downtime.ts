// Downtime as the flow observes it: time during which no node was known to serve through the VIP.
// An interval opens when the flow does something that takes the VIP away from a serving node
// (raising the standby's keepalived priority; stopping services on the node holding the VIP) and
// closes once the node then holding the VIP has answered a healthy check. The flow only sees what
// it polls, so each interval is an upper bound, rounded up by at most one poll interval.
import type { Clock } from '@upgrade/core';

export interface DowntimeInterval {
  reason: string;
  from: number;
  to: number;
}

export class DowntimeMeter {
  private openSince: { at: number; reason: string } | null = null;
  private readonly closed: DowntimeInterval[] = [];

  constructor(private readonly clock: Clock) {}

  /** Starts an interval unless one is already open (the earlier start counts). */
  open(reason: string): void {
    this.openSince ??= { at: this.clock.now(), reason };
  }

  /** Adds intervals measured earlier (by the run a restart interrupted). */
  seed(intervals: readonly DowntimeInterval[]): void {
    this.closed.push(...intervals);
  }

  /** Ends the open interval, if any. */
  close(): void {
    if (this.openSince === null) return;
    this.closed.push({ reason: this.openSince.reason, from: this.openSince.at, to: this.clock.now() });
    this.openSince = null;
  }

  get isOpen(): boolean {
    return this.openSince !== null;
  }

  /** Sum of all intervals, an open one counted up to now. */
  get totalMs(): number {
    const open = this.openSince === null ? 0 : this.clock.now() - this.openSince.at;
    return this.closed.reduce((sum, i) => sum + (i.to - i.from), open);
  }

  get intervals(): readonly DowntimeInterval[] {
    return this.closed;
  }
}
