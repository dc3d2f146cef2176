// Issue 6's acceptance: the same PT job (same data, seed, 3 steps) with sequence_parallel_size 1
// (one rank) and 2 (two ranks splitting every sequence, Gloo all-to-alls) gives losses that agree
// to 1e-4 relative at every step; also the gradient norms the policy sees.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSp1AndSp2, writeSpModel } from './helpers/spJob.js';

t.test('sp 1 and sp 2 give the same losses (1e-4 relative) on the same PT job', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root);
  const lines = Array.from({ length: 40 }, (_, i) => `line ${i}: the quick brown fox ${'jumps '.repeat(1 + (i % 5))}over the lazy dog number ${i * 7}.`);
  writeFileSync(join(root, 'corpus.txt'), lines.join('\n') + '\n');
  // an odd cutoff, so the last shard is padded
  const { one, two } = await runSp1AndSp2(t, root, [
    `model_name_or_path: ${model}`, 'stage: pt', 'finetuning_type: full', `dataset: ${join(root, 'corpus.txt')}`, 'cutoff_len: 97', 'packing: true',
    'logging_steps: 1', 'save_steps: 100', 'max_steps: 3', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant',
  ], 3);
  const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
  const dLoss = Math.max(...one.metrics.map((m, i) => rel(two.metrics[i].loss, m.loss)));
  const dNorm = Math.max(...one.metrics.map((m, i) => rel(two.metrics[i].grad_norm, m.grad_norm)));
  t.ok(dLoss < 1e-4, `losses agree at every step: max relative difference ${dLoss.toExponential(3)} (${one.metrics.map((m) => m.loss.toFixed(6)).join(', ')})`);
  t.ok(dNorm < 1e-3, `gradient norms agree: max relative difference ${dNorm.toExponential(3)}`);
  t.equal(two.metrics[0].tokens, one.metrics[0].tokens, 'the two shards together hold the tokens of the whole sequence');
});
