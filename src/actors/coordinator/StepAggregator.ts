/**
 * Step aggregation: every rank reports each optimizer step (`rank.step.done`); once the whole
 * world has reported a step, their plan digests must agree (replicas that disagree on the
 * gradient policy's decision fail the job), and rank 0's figures become the step's row of
 * metrics.jsonl. A report of a step already complete in this attempt (a rank replaying its
 * reports after a coordinator pause) is ignored; a step done again (after a restart, or by a new
 * `up` resuming the same output_dir) replaces the rows from that step on; a step only some ranks
 * reported before a restart is summarized from them; so metrics.jsonl holds every step exactly
 * once, in order. Writes are chained so rows land in step order even when the
 * disk is slow; a failed write is logged, never thrown.
 */
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';
import type { BodyOf } from '../../transport/messages.js';
import type { Logger } from '../../util/Logger.js';
import { metricsRowSteps, type MetricsRowStep } from '../../train/metricsRows.js';

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

export type StepOutcome = { kind: 'pending' } | { kind: 'duplicate' } | { kind: 'diverged'; reason: string } | { kind: 'complete'; row: MetricsRow };

async function readRows(path: string): Promise<MetricsRowStep[]> {
  try {
    return metricsRowSteps(await readFile(path, 'utf8'));
  } catch {
    return [];
  }
}

export class StepAggregator {
  private reports = new Map<number, Map<number, StepReport>>();
  /** steps complete in this attempt (reports of them are replays) */
  private completed = new Set<number>();
  private diverged = false;
  private chain: Promise<void> = Promise.resolve();
  /** evaluations whose step row is not complete yet (they are written right after it) */
  private pendingEvals: EvalRow[] = [];
  /** the highest step in metrics.jsonl (null: not read yet) */
  private written: number | null = null;
  /** the highest step every rank has completed */
  lastStep = 0;
  /** the highest step every rank has completed in this attempt (peers' heartbeats carry it) */
  attemptStep = 0;

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
    if (this.completed.has(step)) return { kind: 'duplicate' };
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
    this.completed.add(step);
    this.lastStep = Math.max(this.lastStep, step);
    this.attemptStep = Math.max(this.attemptStep, step);
    const row = this.rowOf(step, m);
    this.write(row, 'replace');
    const ready = this.pendingEvals.filter((e) => e.step <= this.lastStep);
    this.pendingEvals = this.pendingEvals.filter((e) => e.step > this.lastStep);
    for (const e of ready) this.write(e, 'eval');
    return { kind: 'complete', row };
  }

  /** An evaluation after step `step`: its row lands after that step's row (held until it is written). */
  addEval(body: { step: number; metrics: Record<string, number> }): EvalRow {
    const row: EvalRow = { step: body.step, ...body.metrics, restarts: this.o.restarts() };
    if (body.step <= this.lastStep) this.write(row, 'eval');
    else this.pendingEvals.push(row);
    return row;
  }

  /** The row of a step: the figures of its lowest reporting rank (rank 0 when all reported), tokens summed. */
  private rowOf(step: number, m: Map<number, StepReport>): MetricsRow {
    const first = m.get(Math.min(...m.keys()))!;
    return {
      step,
      loss: first.loss,
      tokens: [...m.values()].reduce((a, b) => a + b.tokens, 0),
      ...first.stats,
      policy_state: first.policyState,
      step_ms: first.stepMs,
      restarts: this.o.restarts(),
      ...(m.size < this.o.world ? { ranks_reported: m.size } : {}),
    };
  }

  /**
   * `replace`: a step done again replaces the rows from it on; `once`: a row of a step already
   * written is dropped; `eval`: an evaluation row, appended after its step's row.
   */
  private write(row: MetricsRow | EvalRow, mode: 'replace' | 'once' | 'eval'): void {
    const path = this.o.metricsPath;
    const line = JSON.stringify(row) + '\n';
    this.chain = this.chain.then(async () => {
      try {
        if (this.written === null) this.written = await this.repairTail(path);
        if (mode === 'eval') {
          await appendFile(path, line);
          return;
        }
        if (row.step <= this.written && mode === 'once') return;
        if (row.step <= this.written) {
          // the step is done again: the rows from it on belong to the run that is being replaced
          const kept = (await readRows(path)).filter((r) => r.step < row.step).map((r) => r.line + '\n');
          const tmp = `${path}.tmp-${process.pid}`;
          await writeFile(tmp, kept.join(''));
          await rename(tmp, path);
        }
        await appendFile(path, line);
        this.written = row.step;
      } catch (e) {
        this.o.logger.error('cannot write metrics.jsonl', { error: (e as Error).message });
      }
    });
  }

  /**
   * The highest step in metrics.jsonl, read once per coordinator. A previous coordinator killed
   * mid-append leaves a torn last line; the next row would be glued to it, so the file is first
   * cut back to its whole lines.
   */
  private async repairTail(path: string): Promise<number> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return 0;
    }
    if (text.length > 0 && !text.endsWith('\n')) {
      const whole = text.slice(0, text.lastIndexOf('\n') + 1);
      const tmp = `${path}.tmp-${process.pid}`;
      await writeFile(tmp, whole);
      await rename(tmp, path);
      text = whole;
    }
    return metricsRowSteps(text).reduce((m, r) => Math.max(m, r.step), 0);
  }

  /**
   * Forgets the reports of an attempt that was restarted. A step that only some ranks reported
   * (the others' reports were cut off with them, or died with their process) still gets its row,
   * from the ranks that did, marked `ranks_reported`: the restart may resume from a checkpoint
   * past it, so it would not come again; if it does come again, its new row replaces this one.
   */
  clear(): void {
    for (const step of [...this.reports.keys()].sort((a, b) => a - b)) this.write(this.rowOf(step, this.reports.get(step)!), 'once');
    this.reports.clear();
    this.pendingEvals = [];
    this.completed.clear();
    this.attemptStep = 0;
  }

  /** Resolves when every row so far is written. */
  flush(): Promise<void> {
    return this.chain;
  }
}
