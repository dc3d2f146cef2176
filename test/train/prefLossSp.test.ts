// The reference-free preference losses across processes: the same full-weight ORPO and SimPO
// (with pref_ftx) jobs at sequence_parallel_size 1 and 2, and 1 and 4 on a model whose 4 kv heads
// split over 4 ranks, give the same loss, rewards, ORPO parts and gradient statistics at every step. Their log-probs are per-token averages, so this holds only if
// both the log-prob sums and the response token counts are added over the SP group before the loss.
import t from 'tap';
import { runSp1AndSp2, runSpDegrees, sameMetrics, writeSpModel, writeSpPairs } from './helpers/spJob.js';

const KEYS = ['loss', 'grad_norm', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'rewards/accuracies', 'logps/chosen', 'logps/rejected'];

for (const [loss, extra, keys] of [
  ['orpo', ['pref_beta: 0.2'], [...KEYS, 'sft_loss', 'odds_ratio_loss']],
  ['simpo', ['pref_beta: 2.0', 'simpo_gamma: 0.3', 'pref_ftx: 0.5'], KEYS],
] as const) {
  t.test(`sp 1 and sp 2 give the same ${loss} losses, metrics and gradient norms at every step`, async (t) => {
    const root = t.testdir();
    const model = writeSpModel(root);
    const pairs = writeSpPairs(root);
    const { one, two } = await runSp1AndSp2(t, root, [
      `model_name_or_path: ${model}`, 'stage: dpo', `pref_loss: ${loss}`, ...extra, 'finetuning_type: full', `dataset: ${pairs}`, 'cutoff_len: 64',
      'logging_steps: 1', 'save_steps: 100', 'max_steps: 3', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'per_device_train_batch_size: 2',
    ], 3);
    for (const k of keys) {
      t.ok(one.metrics.every((m) => Number.isFinite(m[k])), `${k} logged at every step`);
      const worst = Math.max(...one.metrics.map((m, i) => Math.abs(two.metrics[i][k] - m[k]) / Math.max(1e-3, Math.abs(m[k]))));
      t.ok(worst < 1e-4, `${k} agrees at every step: worst difference ${worst.toExponential(3)} (sp1 ${one.metrics.map((m) => Number(m[k]).toFixed(6)).join(', ')})`);
    }
    t.ok(one.metrics[2].loss < one.metrics[0].loss, `the loss falls (${one.metrics.map((m) => m.loss.toFixed(4)).join(' -> ')})`);
  });
}

for (const [loss, extra, keys] of [
  ['orpo', ['pref_beta: 0.2'], [...KEYS, 'max_abs_grad', 'sft_loss', 'odds_ratio_loss']],
  ['simpo', ['pref_beta: 2.0', 'simpo_gamma: 0.3', 'pref_ftx: 0.5'], [...KEYS, 'max_abs_grad']],
] as const) {
  t.test(`sp 1 and sp 4 give the same ${loss} losses, metrics and gradient statistics at every step`, async (t) => {
    const root = t.testdir();
    const model = writeSpModel(root, { kvHeads: 4 });
    const pairs = writeSpPairs(root);
    const runs = await runSpDegrees(t, root, [
      `model_name_or_path: ${model}`, 'stage: dpo', `pref_loss: ${loss}`, ...extra, 'finetuning_type: full', `dataset: ${pairs}`, 'cutoff_len: 64',
      'logging_steps: 1', 'save_steps: 100', 'max_steps: 3', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'per_device_train_batch_size: 2',
    ], 3, [1, 4]);
    sameMetrics(t, runs, keys, ['sp 1', 'sp 4']);
  });
}
