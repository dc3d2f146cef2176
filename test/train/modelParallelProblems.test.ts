// Invalid model / sequence-parallel combinations are refused before any process starts.
import t from 'tap';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { modelParallelProblems } from '../../src/train/modelParallelProblems.js';
import { runCli } from '../helpers/cli.js';

const model = (dir: string, heads: number, kv: number) => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', num_attention_heads: heads, num_key_value_heads: kv, hidden_size: heads * 16, intermediate_size: 64, num_hidden_layers: 1, vocab_size: 256 }));
  return dir;
};

t.test('head counts vs P, kv replication and world divisibility', async (t) => {
  const dir = t.testdir();
  t.same(modelParallelProblems(model(join(dir, 'ok'), 8, 4), 2, 4), [], 'GQA 8/4 over P=2');
  t.same(modelParallelProblems(model(join(dir, 'rep'), 8, 2), 4, 4), [], 'kv replication: Hkv=2 over P=4');
  const heads = modelParallelProblems(model(join(dir, 'h6'), 6, 6), 4, 4);
  t.match(heads[0]?.message, /6 attention heads are not divisible by sequence_parallel_size 4/);
  const kv = modelParallelProblems(model(join(dir, 'kv3'), 12, 3), 4, 4);
  t.match(kv.map((p) => p.message).join(' '), /3/, `kv heads 3 with P=4 refused: ${kv.map((p) => p.message).join('; ')}`);
  t.ok(modelParallelProblems(model(join(dir, 'w'), 8, 8), 4, 6).length > 0, 'world 6 is not divisible by P=4');
  t.match(modelParallelProblems(join(dir, 'missing'), 2, 2)[0]?.message, /no config\.json/);
});

t.test('`up` refuses an unsplittable model with exit 2 before starting anything', async (t) => {
  const dir = model(join(t.testdir(), 'm'), 6, 3);
  const r = runCli(['up', '--model_name_or_path', dir, '--sequence_parallel_size', '4', '--output_dir', join(dir, 'out')]);
  t.equal(r.status, 2, r.stderr);
  t.match(r.stderr, /not divisible by sequence_parallel_size 4/);
  t.notOk(r.stdout.includes('control plane'), 'nothing was started');
});
