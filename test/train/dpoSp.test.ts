// Stage dpo across processes: the same full-weight DPO job with sequence_parallel_size 1 (one
// rank) and 2 (two ranks splitting every chosen and rejected sequence) gives the same loss and
// rewards at every step. Under SP each rank holds part of every response, so this holds only if
// the sequence log-prob sums are added over the SP group before the loss.
import t from 'tap';
import { runSp1AndSp2, writeSpModel, writeSpPairs } from './helpers/spJob.js';

t.test('sp 1 and sp 2 give the same DPO losses and rewards at every step', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root);
  const pairs = writeSpPairs(root);
  const { one, two } = await runSp1AndSp2(t, root, [
    `model_name_or_path: ${model}`, 'stage: dpo', 'finetuning_type: full', 'pref_beta: 0.5', `dataset: ${pairs}`, 'cutoff_len: 64',
    'logging_steps: 1', 'save_steps: 100', 'max_steps: 3', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'per_device_train_batch_size: 2',
  ], 3);
  const keys = ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'rewards/accuracies', 'logps/chosen', 'logps/rejected'];
  for (const k of keys) {
    // rewards start at exactly 0 (policy = reference): compare with an absolute floor
    const worst = Math.max(...one.metrics.map((m, i) => Math.abs(two.metrics[i][k] - m[k]) / Math.max(1e-3, Math.abs(m[k]))));
    t.ok(worst < 1e-4, `${k} agrees at every step: worst difference ${worst.toExponential(3)} (sp1 ${one.metrics.map((m) => Number(m[k]).toFixed(6)).join(', ')})`);
  }
  t.ok(Math.abs(one.metrics[0].loss - Math.LN2) < 1e-6, `step 1 scores the initial weights against themselves: loss log 2 (${one.metrics[0].loss})`);
  t.ok(one.metrics[2]['rewards/margins'] > 0, `the margin grows (${one.metrics[2]['rewards/margins']})`);
});
