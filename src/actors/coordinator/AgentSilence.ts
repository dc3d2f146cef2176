/**
 * Node agents that missed their heartbeats: one may be cut off for a while (its ranks, lost too,
 * are restarted through their own heartbeats), so the job fails only if it stays silent past the
 * grace that agents give the coordinator (`cluster.coordinator_grace_s`). Heard again, it is
 * watched again and its silence is logged as an event. Owns only its timers.
 */
import type { Clock } from '../../util/Clock.js';
import type { Logger } from '../../util/Logger.js';
import type { EventLog } from '../events/EventLog.js';
import { jobEvents } from '../events/jobEvents.js';

export interface AgentSilenceOptions {
  clock: Clock;
  logger: Logger;
  events: EventLog;
  graceMs: number;
  hostName(i: number): string;
  /** no timer is started once the job is closing */
  closing(): boolean;
  /** the agent is heard again: watch its heartbeats again */
  rewatch(i: number): void;
  fail(reason: string): void;
}

export class AgentSilence {
  private readonly agents = new Map<number, { since: number; timer: { cancel(): void } }>();

  constructor(private readonly o: AgentSilenceOptions) {}

  /** Agent `i` missed its heartbeats (`why`): the job fails unless it is heard within the grace. */
  silent(i: number, why: string): void {
    if (this.agents.has(i) || this.o.closing()) return;
    const host = this.o.hostName(i);
    const grace = this.o.graceMs;
    this.o.events.emit(jobEvents.agentSilent({ host, hostIndex: i, reason: why }));
    this.o.logger.warn(`node agent of ${host} is silent (${why}): waiting up to ${grace / 1000} s for it (cluster.coordinator_grace_s)`);
    const timer = this.o.clock.setTimeout(() => this.o.fail(`node agent of ${host} lost: ${why}, and silent for more than ${grace / 1000} s (cluster.coordinator_grace_s)`), grace);
    this.agents.set(i, { since: this.o.clock.now(), timer });
  }

  /** A frame from agent `i`: if it was silent, it is back. */
  heard(i: number): void {
    const s = this.agents.get(i);
    if (!s) return;
    s.timer.cancel();
    this.agents.delete(i);
    this.o.rewatch(i);
    this.o.events.emit(jobEvents.agentBack({ host: this.o.hostName(i), hostIndex: i, silentMs: Math.round(this.o.clock.now() - s.since) }));
  }

  cancelAll(): void {
    for (const s of this.agents.values()) s.timer.cancel();
    this.agents.clear();
  }
}
