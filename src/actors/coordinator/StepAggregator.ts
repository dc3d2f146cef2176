/**
 * Step aggregation: every rank reports each optimizer step (`rank.step.done`); once the whole
 * world has reported a step, their plan digests must agree (replicas that disagree on the
 * gradient policy's decision fail the job), and rank 0's figures become the step's row of
 * metrics.jsonl. Appends are chained so rows land in step order even when the disk is slow; a
 * failed write is logged, never thrown.
 */
import { appendFile } from 'node:fs/promises';
import type { BodyOf } from '../../transport/messages.js';
import type { Logger } from '../../util/Logger.js';

type StepReport = BodyOf<'rank.step.done'>;

/** One line of metrics.jsonl: rank 0's figures of a completed step, tokens summed over the world. */
export interface MetricsRow {
  step: number;
  loss: number;
  tokens: number;
  policy_state: string;
  step_ms?: number;
  restarts: number;
  /** the step's statistics as rank 0 reported them (lr, grad_mean, grad_norm, ...) */
  [stat: string]: number | string | undefined;
}

/** One evaluation row of metrics.jsonl: the step it followed and rank 0's eval_* metrics. */
export interface EvalRow {
  step: number;
  restarts: number;
  [metric: string]: number;
}

export type StepOutcome = { kind: 'pending' } | { kind: 'diverged'; reason: string } | { kind: 'complete'; row: MetricsRow };

export class StepAggregator {
  private reports = new Map<number, Map<number, StepReport>>();
  private diverged = false;
  private chain: Promise<void> = Promise.resolve();
  /** evaluations whose step row is not complete yet (they are written right after it) */
  private pendingEvals: EvalRow[] = [];
  /** the highest step every rank has completed */
  lastStep = 0;

  constructor(
    private readonly o: {
      world: number;
      metricsPath: string;
      logger: Logger;
      /** the group's restarts so far, for the row */
      restarts(): number;
    },
  ) {}

  /** A rank's report; the step's outcome once the whole world has reported it. */
  add(rank: number, body: StepReport): StepOutcome {
    const { step } = body;
    let m = this.reports.get(step);
    if (!m) this.reports.set(step, (m = new Map()));
    m.set(rank, body);
    if (m.size < this.o.world) return { kind: 'pending' };
    this.reports.delete(step);
    const digests = new Map<string, number[]>();
    for (const [r, b] of m) digests.set(b.planDigest, [...(digests.get(b.planDigest) ?? []), r]);
    if (digests.size > 1 && !this.diverged) {
      this.diverged = true;
      const groups = [...digests.entries()]
        .map(([d, rs]) => [d, [...rs].sort((a, b) => a - b)] as const)
        .sort((a, b) => a[1][0]! - b[1][0]!)
        .map(([d, rs]) => `ranks ${rs.join(',')}: ${d}`)
        .join('; ');
      return { kind: 'diverged', reason: `replicas disagree on the gradient policy at step ${step} (${groups})` };
    }
    this.lastStep = Math.max(this.lastStep, step);
    const r0 = m.get(0)!;
    const row: MetricsRow = {
      step,
      loss: r0.loss,
      tokens: [...m.values()].reduce((a, b) => a + b.tokens, 0),
      ...r0.stats,
      policy_state: r0.policyState,
      step_ms: r0.stepMs,
      restarts: this.o.restarts(),
    };
    this.append(row);
    const ready = this.pendingEvals.filter((e) => e.step <= this.lastStep);
    this.pendingEvals = this.pendingEvals.filter((e) => e.step > this.lastStep);
    for (const e of ready) this.append(e);
    return { kind: 'complete', row };
  }

  /** An evaluation after step `step`: its row lands after that step's row (held until it is written). */
  addEval(body: { step: number; metrics: Record<string, number> }): EvalRow {
    const row: EvalRow = { step: body.step, ...body.metrics, restarts: this.o.restarts() };
    if (body.step <= this.lastStep) this.append(row);
    else this.pendingEvals.push(row);
    return row;
  }

  private append(row: MetricsRow | EvalRow): void {
    const line = JSON.stringify(row) + '\n';
    this.chain = this.chain.then(() => appendFile(this.o.metricsPath, line).catch((e: Error) => this.o.logger.error('cannot write metrics.jsonl', { error: e.message })));
  }

  /** Forgets the reports of an attempt that was restarted. */
  clear(): void {
    this.reports.clear();
    this.pendingEvals = [];
  }

  /** Resolves when every row so far is written. */
  flush(): Promise<void> {
    return this.chain;
  }
}
