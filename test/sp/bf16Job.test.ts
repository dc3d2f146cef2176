// bf16 under sequence parallelism (REFERENCE §2, §6): the same bf16 jobs with
// sequence_parallel_size 1 (one rank) and 2 (two ranks; the attention all-to-alls carry bf16 q, k,
// v, output and output gradient) give the same losses (and, for DPO, rewards) within 1e-3 relative
// at every step, and each bf16 run stays within 2e-2 of the fp32 one. Not bitwise: a shard's
// products and the gradient sums differ from the whole sequence's in fp32 rounding, which can flip
// a bf16 rounding of an activation.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSp1AndSp2, writeSpModel, writeSpPairs } from '../train/helpers/spJob.js';

const rel = (a: number, b: number, floor = 0) => Math.abs(a - b) / Math.max(floor, Math.abs(b));

t.test('bf16 PT job: sp 2 equals sp 1 within 1e-3 at every step', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root);
  const lines = Array.from({ length: 40 }, (_, i) => `line ${i}: the quick brown fox ${'jumps '.repeat(1 + (i % 5))}over the lazy dog number ${i * 7}.`);
  writeFileSync(join(root, 'corpus.txt'), lines.join('\n') + '\n');
  const job = (bf16: boolean) => [
    `model_name_or_path: ${model}`, 'stage: pt', 'finetuning_type: full', `dataset: ${join(root, 'corpus.txt')}`, 'cutoff_len: 97', 'packing: true',
    'logging_steps: 1', 'save_steps: 100', 'max_steps: 3', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', `bf16: ${bf16}`,
  ];
  const { one, two } = await runSp1AndSp2(t, root, job(true), 3);
  const dLoss = Math.max(...one.metrics.map((m, i) => rel(two.metrics[i].loss, m.loss)));
  const dNorm = Math.max(...one.metrics.map((m, i) => rel(two.metrics[i].grad_norm, m.grad_norm)));
  t.ok(dLoss < 1e-3, `losses agree at every step: max relative difference ${dLoss.toExponential(3)} (${one.metrics.map((m) => m.loss.toFixed(6)).join(', ')})`);
  t.ok(dNorm < 1e-2, `gradient norms agree: max relative difference ${dNorm.toExponential(3)}`);
  const fp32 = await runSp1AndSp2(t, join(root, 'fp32'), job(false), 3);
  const dPrec = Math.max(...one.metrics.map((m, i) => rel(m.loss, fp32.one.metrics[i].loss)));
  t.ok(dPrec < 2e-2, `bf16 tracks fp32: max relative difference ${dPrec.toExponential(3)}`);
});

t.test('bf16 DPO job: sp 2 equals sp 1 within 1e-3 (loss and rewards)', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root);
  const pairs = writeSpPairs(root);
  const { one, two } = await runSp1AndSp2(t, root, [
    `model_name_or_path: ${model}`, 'stage: dpo', 'finetuning_type: full', 'pref_beta: 0.5', `dataset: ${pairs}`, 'cutoff_len: 64',
    'logging_steps: 1', 'save_steps: 100', 'max_steps: 3', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'per_device_train_batch_size: 2', 'bf16: true',
  ], 3);
  for (const k of ['loss', 'rewards/chosen', 'rewards/rejected', 'logps/chosen', 'logps/rejected']) {
    // rewards start at exactly 0 (policy = reference, both bf16): an absolute floor
    const worst = Math.max(...one.metrics.map((m, i) => rel(two.metrics[i][k], m[k], 1e-2)));
    t.ok(worst < 1e-3, `${k} agrees at every step: worst difference ${worst.toExponential(3)} (sp1 ${one.metrics.map((m) => Number(m[k]).toFixed(6)).join(', ')})`);
  }
  t.ok(Math.abs(one.metrics[0].loss - Math.LN2) < 1e-6, `step 1 scores the initial weights against themselves: loss log 2 (${one.metrics[0].loss})`);
});
