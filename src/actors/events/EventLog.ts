/**
 * Appends job events (jobEvents.ts) to `events.ndjson`, one JSON object per line, stamped with
 * the wall-clock time and the job's clock, and fans them out to live listeners (the visualizer,
 * `up`'s progress, the chaos harness). Writes are serialized; a failed write is reported once and
 * never crashes the coordinator.
 */
import { appendFile } from 'node:fs/promises';
import type { Logger } from '../../util/Logger.js';
import type { JobEvent, JobEventBody } from './jobEvents.js';

export type EventListener = (e: JobEvent) => void;

export class EventLog {
  private chain: Promise<void> = Promise.resolve();
  private listeners = new Set<EventListener>();
  private warned = false;
  readonly recent: JobEvent[] = [];

  constructor(
    private readonly path: string | null,
    private readonly now: () => number,
    private readonly logger: Logger,
    private readonly keepRecent = 10_000,
  ) {}

  emit(event: JobEventBody): JobEvent {
    // `type` first, then the stamps, then the fields: the line layout events.ndjson has always had
    const e: JobEvent = Object.assign({ type: event.type, time: new Date().toISOString(), t: Math.round(this.now()) }, event);
    this.recent.push(e);
    if (this.recent.length > this.keepRecent) this.recent.splice(0, this.recent.length - this.keepRecent);
    if (this.path) {
      const line = JSON.stringify(e) + '\n';
      const path = this.path;
      this.chain = this.chain.then(() =>
        appendFile(path, line).catch((err: Error) => {
          if (!this.warned) this.logger.error('cannot write events.ndjson', { path, error: err.message });
          this.warned = true;
        }),
      );
    }
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        /* a broken listener must not break the log */
      }
    }
    return e;
  }

  subscribe(l: EventListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  flush(): Promise<void> {
    return this.chain;
  }
}
