/**
 * A run's evaluations as the workload drives them: the Evaluator's schedule after each optimizer
 * step (Trainer's afterStep hook), rank 0's report of each result to the coordinator (which
 * writes the eval row to metrics.jsonl and events.ndjson and prints it), the final evaluation of
 * do_eval (the last step's when it was just evaluated) and eval_results.json as HF Trainer writes
 * it (sorted keys, 4-space indent). Every rank calls the same methods at the same points; only
 * rank 0 reports and writes. Must never evaluate on one rank alone.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Evaluator, EvalMetrics } from './loop/Evaluator.js';
import type { WorkloadContext } from './Workload.js';

/** JSON with keys sorted at every level and a 4-space indent (Python's json.dump(sort_keys=True, indent=4)). */
export function sortedJson(v: unknown): string {
  const sort = (x: unknown): unknown =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, sort((x as Record<string, unknown>)[k])])) : x;
  return JSON.stringify(sort(v), null, 4) + '\n';
}

export class JobEvaluation {
  constructor(
    private readonly evaluator: Evaluator,
    private readonly ctx: Pick<WorkloadContext, 'logger' | 'setPhase' | 'reportEval'>,
    private readonly rank: number,
  ) {}

  /** The Trainer's afterStep hook: evaluates when the schedule says so. */
  async afterStep(step: number): Promise<void> {
    if (this.evaluator.due(step)) await this.evaluate(step, 'training');
  }

  /** do_eval: the metrics of the final weights (reused when the last step was just evaluated). */
  async final(step: number): Promise<EvalMetrics> {
    const last = this.evaluator.last;
    if (last && last.step === step) return last.metrics;
    return this.evaluate(step, 'evaluating');
  }

  private async evaluate(step: number, after: string): Promise<EvalMetrics> {
    this.ctx.setPhase('evaluating', true);
    const metrics = await this.evaluator.run(step);
    if (this.rank === 0) {
      this.ctx.reportEval?.({ step, metrics });
      this.ctx.logger.debug(`eval after step ${step}`, metrics);
    }
    this.ctx.setPhase(after, true);
    return metrics;
  }
}

/** Writes output_dir/eval_results.json (rank 0 only calls it). */
export async function writeEvalResults(outputDir: string, results: Record<string, unknown>): Promise<void> {
  await writeFile(join(outputDir, 'eval_results.json'), sortedJson(results));
}
