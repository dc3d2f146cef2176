/**
 * Where the visualizer's events and metrics come from: the coordinator's live EventLog, or the
 * files of a run directory (events.ndjson + metrics.jsonl) read once for a replay or polled as they
 * grow. Lines that are not JSON objects with a string `type` (events) or a numeric `step`
 * (metrics) are skipped and counted. Never writes to the run directory.
 */
import { join } from 'node:path';
import type { EventLog } from '../actors/events/EventLog.js';
import type { Logger } from '../util/Logger.js';
import { EventStore } from './EventStore.js';
import { NdjsonTail } from './NdjsonTail.js';

export type VizMode = 'live' | 'follow' | 'replay' | 'empty';

function isEventLine(line: string): boolean {
  try {
    const v = JSON.parse(line) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { type?: unknown }).type === 'string';
  } catch {
    return false;
  }
}

function isMetricsLine(line: string): boolean {
  try {
    const v = JSON.parse(line) as unknown;
    return typeof v === 'object' && v !== null && typeof (v as { step?: unknown }).step === 'number';
  } catch {
    return false;
  }
}

export interface RunSourcesOptions {
  live?: EventLog;
  runDir?: string;
  follow?: boolean;
  pollMs?: number;
  capacity?: number;
  logger: Logger;
}

export class RunSources {
  readonly events: EventStore;
  readonly metrics: EventStore;
  readonly mode: VizMode;
  skipped = { events: 0, metrics: 0 };
  private eventsTail: NdjsonTail | null = null;
  private metricsTail: NdjsonTail | null = null;
  private unsubscribe: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly o: RunSourcesOptions) {
    this.events = new EventStore(o.capacity);
    this.metrics = new EventStore(o.capacity);
    this.mode = o.live ? 'live' : o.runDir ? (o.follow ? 'follow' : 'replay') : 'empty';
    if (o.runDir) {
      this.metricsTail = new NdjsonTail(join(o.runDir, 'metrics.jsonl'));
      if (!o.live) this.eventsTail = new NdjsonTail(join(o.runDir, 'events.ndjson'));
    }
  }

  async start(): Promise<void> {
    const live = this.o.live;
    if (live) {
      for (const e of live.recent) this.events.append(JSON.stringify(e));
      this.unsubscribe = live.subscribe((e) => this.events.append(JSON.stringify(e)));
    }
    await this.refresh();
    if (this.mode === 'follow') {
      this.timer = setInterval(() => {
        this.refresh().catch((e: Error) => this.o.logger.warn('cannot read the run directory', { error: e.message }));
      }, this.o.pollMs ?? 500);
      this.timer.unref();
    }
  }

  /** Picks up lines appended to the run's files since the last look. */
  async refresh(): Promise<void> {
    if (this.closed) return;
    if (this.eventsTail) {
      const before = this.skipped.events;
      for (const line of await this.eventsTail.read()) {
        if (isEventLine(line)) this.events.append(line);
        else this.skipped.events++;
      }
      if (this.skipped.events > before) this.o.logger.warn('skipped malformed lines in events.ndjson', { count: this.skipped.events - before });
    }
    if (this.metricsTail) {
      for (const line of await this.metricsTail.read()) {
        if (isMetricsLine(line)) this.metrics.append(line);
        else this.skipped.metrics++;
      }
    }
  }

  /** Metrics are read on demand in live mode (the coordinator appends them as steps finish). */
  async refreshMetrics(): Promise<void> {
    if (this.mode === 'live' && this.metricsTail) await this.refresh();
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
