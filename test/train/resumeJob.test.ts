// Exact resume as a real 2-rank job with sequence_parallel_size 2 (coordinator, node agent, rank
// processes, Gloo): a job resumed from the step-4 checkpoint of another run (resume_from_checkpoint:
// true over a copy of it) ends with the same weights hash as the uninterrupted run, on both ranks.
import t from 'tap';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { writeMicroModelDir } from './helpers/trainFixtures.js';

function runJob(dir: string, modelDir: string, extra: string[] = []) {
  const yaml = [
    `model_name_or_path: ${modelDir}`, 'stage: sft', 'finetuning_type: full', 'dataset: builtin:recall', 'cutoff_len: 130', 'max_samples: 32',
    `output_dir: ${dir}`, 'logging_steps: 1', 'save_steps: 4', 'max_steps: 8', 'learning_rate: 5.0e-3', 'lr_scheduler_type: cosine', 'warmup_steps: 2',
    'weight_decay: 0.1', 'sequence_parallel_size: 2', 'gradient_policy:', '  loss_scale_schedule: "3-6:1.0e-6"', ...extra,
  ].join('\n');
  return runCoordinatedJob('resume', yaml, 2);
}

t.test('2 ranks, sp 2: resumed from a checkpoint, bitwise the uninterrupted weights', async (t) => {
  const root = t.testdir();
  const modelDir = writeMicroModelDir(root, { model_type: 'qwen2', vocab_size: 256, rms_norm_eps: 1e-6 });
  const ref = await runJob(join(root, 'ref'), modelDir);
  t.equal(ref.result.ok, true, String(ref.result.reason));
  t.equal(ref.result.finalHashes[0], ref.result.finalHashes[1], 'the SP ranks hold the same weights');
  t.ok(ref.metrics.some((m) => m.policy_state === 'vanishing-intervention'), 'the policy intervenes across the checkpoint');

  const dir = join(root, 'resumed');
  mkdirSync(dir);
  cpSync(join(root, 'ref', 'checkpoint-4'), join(dir, 'checkpoint-4'), { recursive: true });
  const res = await runJob(dir, modelDir, ['resume_from_checkpoint: true']);
  t.equal(res.result.ok, true, String(res.result.reason));
  t.same(res.metrics.map((m) => m.step), [5, 6, 7, 8], 'only the steps after the checkpoint run');
  t.equal(res.result.finalHashes[0], ref.result.finalHashes[0], 'final weights hash equals the uninterrupted run');
  t.equal(res.result.finalHashes[1], ref.result.finalHashes[1]);
  const pick = (ms: Record<string, unknown>[]) => ms.filter((m) => (m.step as number) > 4).map((m) => [m.step, m.loss, m.policy_state, m.lr, m.grad_norm]);
  t.same(pick(res.metrics), pick(ref.metrics), 'steps 5..8 report the same loss, state, LR and gradient norm');
});
