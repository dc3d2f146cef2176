// Stage kto across processes: the same full-weight KTO job (gradient accumulation 2, pref_ftx,
// unequal weights) at sequence_parallel_size 1, 2 and 4 logs the same loss, gradient statistics,
// rewards, log-probs and KL estimate at every step (every log-prob sum, of the trained and of
// the KL sequences, is added over the SP group before any nonlinearity); and 2 data-parallel
// replicas (sp 1 and sp 2; and with ZeRO stage 1) train as one replica with their global batch, the KL estimate being
// the mean over the world's micro-batches as TRL gathers it.
import t from 'tap';
import { join } from 'node:path';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { runSpDegrees, sameMetrics, writeKtoRows, writeSpModel } from './helpers/spJob.js';

const KEYS = ['loss', 'grad_norm', 'max_abs_grad', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'kl'];

/**
 * 8 answers of different lengths (shards cut prompts and answers at different places), tags
 * alternating, read in file order: every micro-batch holds both kinds.
 */

const jobLines = (model: string, data: string, extra: string[]) => [
  `model_name_or_path: ${model}`, 'stage: kto', 'finetuning_type: full', `dataset: ${data}`, 'cutoff_len: 64',
  'pref_beta: 0.5', 'kto_chosen_weight: 1.2', 'kto_rejected_weight: 0.8',
  'logging_steps: 1', 'save_steps: 100', 'max_steps: 3', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'disable_shuffling: true', ...extra,
];

t.test('sp 1, 2 and 4 give the same KTO losses, metrics and gradient statistics at every step', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root, { kvHeads: 4 });
  const data = writeKtoRows(root);
  const sps = [1, 2, 4];
  const runs = await runSpDegrees(t, root, jobLines(model, data, ['pref_ftx: 0.3', 'per_device_train_batch_size: 2', 'gradient_accumulation_steps: 2']), 3, sps);
  sameMetrics(t, runs, KEYS, sps.map((sp) => `sp ${sp}`));
  const one = runs[0]!.metrics;
  t.ok(one[0].kl === 0 && one[2].kl > 0, `the KL estimate is 0 against the initial weights and positive later (${one.map((m) => m.kl).join(', ')})`);
  t.ok(one[2].loss < one[0].loss, `the loss falls (${one.map((m) => m.loss.toFixed(4)).join(' -> ')})`);
});

t.test('2 data-parallel replicas train as one with their global batch (sp 1 x dp 2, sp 2 x dp 2, and with zero_stage 1)', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root, { kvHeads: 4 });
  const data = writeKtoRows(root);
  const run = (name: string, sp: number, world: number, batch: number, zero = 0) =>
    runCoordinatedJob(name, [...jobLines(model, data, [`per_device_train_batch_size: ${batch}`, `zero_stage: ${zero}`]), `output_dir: ${join(root, name)}`, `sequence_parallel_size: ${sp}`].join('\n'), world);
  const runs = [await run('dp1', 1, 1, 4), await run('dp2', 1, 2, 2), await run('sp2dp2', 2, 4, 2), await run('dp2z1', 1, 2, 2, 1)];
  for (const [i, r] of runs.entries()) {
    t.equal(r.result.ok, true, `job ${i}: ${String(r.result.reason)}`);
    t.same(r.metrics.map((m) => m.step), [1, 2, 3]);
  }
  sameMetrics(t, runs, KEYS, ['dp 1 (batch 4)', 'sp 1 x dp 2', 'sp 2 x dp 2', 'sp 1 x dp 2, zero_stage 1']);
});
