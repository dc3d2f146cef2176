/**
 * A rank's reports to the coordinator that must not be lost to a coordinator pause: step reports
 * are kept until the coordinator's heartbeat says it has aggregated their step (this attempt's
 * steps), and replayed when it comes back from a silence; a final report (rank.done or
 * rank.failed) is resent until the coordinator acknowledges it (`peer.ack`), within a bound.
 * The coordinator ignores duplicates, so a replay never counts a step twice. Holds no socket of
 * its own and never throws from a send.
 */
import type { BodyOf } from '../../transport/messages.js';
import type { Transport } from '../../transport/Transport.js';

type StepReport = BodyOf<'rank.step.done'>;
type FinalType = 'rank.done' | 'rank.failed';

export interface FinalOptions {
  /** give up waiting for the receipt after this long (the coordinator grace) */
  timeoutMs: number;
  /** resend the report (and the unacknowledged steps) this often while waiting */
  resendMs: number;
  /** stop waiting when this aborts (the coordinator ended the job) */
  signal?: AbortSignal;
}

export class ReportChannel {
  private pending: StepReport[] = [];
  private waiting = new Map<string, () => void>();
  /** reports dropped from the replay buffer because it was full (the oldest go first) */
  overflowed = 0;

  constructor(
    private readonly link: Transport,
    private readonly maxPending = 10_000,
  ) {}

  /** Sends a step report and keeps it until the coordinator has aggregated its step. */
  step(r: StepReport): void {
    this.pending.push(r);
    if (this.pending.length > this.maxPending) {
      this.pending.shift();
      this.overflowed++;
    }
    this.link.send('coord', 'rank.step.done', r);
  }

  /** The coordinator has aggregated every step up to `step` of this attempt. */
  aggregated(step: number): void {
    if (this.pending.length && this.pending[0]!.step <= step) this.pending = this.pending.filter((r) => r.step > step);
  }

  get unacknowledged(): number {
    return this.pending.length;
  }

  /** Sends the step reports the coordinator has not aggregated again; returns how many. */
  replay(): number {
    for (const r of this.pending) this.link.send('coord', 'rank.step.done', r);
    return this.pending.length;
  }

  /** The coordinator's receipt of a final report. */
  acked(of: string): void {
    this.waiting.get(of)?.();
  }

  /** Sends a final report and waits for its receipt (resending it); true when it came. */
  final<K extends FinalType>(type: K, body: BodyOf<K>, o: FinalOptions): Promise<boolean> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let every: NodeJS.Timeout | undefined;
      const done = (ok: boolean) => {
        clearTimeout(timer);
        clearInterval(every);
        this.waiting.delete(type);
        o.signal?.removeEventListener('abort', onAbort);
        resolve(ok);
      };
      const onAbort = () => done(false);
      this.waiting.set(type, () => done(true));
      if (o.signal?.aborted) return done(false);
      o.signal?.addEventListener('abort', onAbort, { once: true });
      timer = setTimeout(() => done(false), o.timeoutMs);
      every = setInterval(() => {
        this.replay();
        this.link.send('coord', type, body);
      }, o.resendMs);
      this.link.send('coord', type, body);
    });
  }
}
