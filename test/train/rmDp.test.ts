// Stage rm across data-parallel replicas: 2 replicas (sp 1 x dp 2, sp 2 x dp 2) train as one with
// their global batch: loss, accuracy, the chosen - rejected score margin and the gradient
// statistics (one norm over the model and the value head, both reduced over the replicas) agree
// at every step within 1e-4.
import t from 'tap';
import { join } from 'node:path';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { sameMetrics, writeSpModel, writeSpPairs } from './helpers/spJob.js';

t.test('2 data-parallel replicas train a reward model as one with their global batch', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root);
  const pairs = writeSpPairs(root);
  const run = (name: string, sp: number, world: number, batch: number) =>
    runCoordinatedJob(name, [
      `model_name_or_path: ${model}`, 'stage: rm', 'finetuning_type: full', `dataset: ${pairs}`, 'cutoff_len: 64',
      'logging_steps: 1', 'save_steps: 100', 'max_steps: 3', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'max_grad_norm: 0.5',
      `per_device_train_batch_size: ${batch}`, `output_dir: ${join(root, name)}`, `sequence_parallel_size: ${sp}`,
    ].join('\n'), world);
  const runs = [await run('dp1', 1, 1, 4), await run('dp2', 1, 2, 2), await run('sp2dp2', 2, 4, 2)];
  for (const [i, r] of runs.entries()) {
    t.equal(r.result.ok, true, `job ${i}: ${String(r.result.reason)}`);
    t.same(r.metrics.map((m) => m.step), [1, 2, 3]);
  }
  // The scores' common level is the head's bias, whose true gradient is 0 (the loss reads score
  // differences): AdamW turns its rounding-level gradient into steps of about the learning rate
  // either way, so the level drifts with the summation order. What the loss trains (the margin)
  // must agree.
  const withMargin = runs.map((r) => ({ metrics: r.metrics.map((m) => ({ ...m, score_margin: m.chosen_score - m.rejected_score })) }));
  sameMetrics(t, withMargin, ['loss', 'grad_norm', 'max_abs_grad', 'accuracy', 'score_margin'], ['dp 1 (batch 4)', 'sp 1 x dp 2', 'sp 2 x dp 2']);
  t.ok(runs[0]!.metrics.some((m) => m.grad_norm > 0.5), 'the clip acts (grad_norm above max_grad_norm)');
});
