// ZeRO stage 1 over the whole world (REFERENCE §8): the same PT job with zero_stage 0 and 1 on
// two ranks (data parallel) and on four (SP 2 x DP 2) ends with the same weights (bitwise: the
// plan runs on the same reduced gradient and AdamW is elementwise), the same losses, gradient
// figures and policy decisions (every rank's plan digest, from its step reports), and the same
// consolidated moments in the checkpoint; two stage-1 runs are bitwise the same; a stage-1
// checkpoint resumes on another world size (its parts are re-cut) with the same losses.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Partition } from '../../src/train/zero/partition.js';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { writeSpModel } from './helpers/spJob.js';

function jobYaml(root: string, model: string, name: string, extra: string[]): string {
  return [
    `model_name_or_path: ${model}`, 'stage: pt', 'finetuning_type: full', `dataset: ${join(root, 'corpus.txt')}`, 'cutoff_len: 64', 'packing: true',
    'logging_steps: 1', 'save_steps: 2', 'max_steps: 4', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'weight_decay: 0.01',
    `output_dir: ${join(root, name)}`, ...extra,
  ].join('\n');
}

const bytes = (dir: string, file: string) => readFileSync(join(dir, file));

t.test('partition map: contiguous per-tensor parts in rank order, packed and gathered back', async (t) => {
  const p = new Partition([{ offset: 0, numel: 5 }, { offset: 16, numel: 2 }, { offset: 32, numel: 7 }], 3);
  t.equal(p.partLength, 2 + 1 + 3, 'ceil(5/3) + ceil(2/3) + ceil(7/3)');
  t.same(p.segments(0), [{ tensor: 0, offset: 0, numel: 2, packed: 0 }, { tensor: 1, offset: 16, numel: 1, packed: 2 }, { tensor: 2, offset: 32, numel: 3, packed: 3 }]);
  t.same(p.segments(2), [{ tensor: 0, offset: 4, numel: 1, packed: 0 }, { tensor: 2, offset: 38, numel: 1, packed: 3 }], 'the last rank: short parts, an empty one left out');
  const full = Float32Array.from({ length: 39 }, (_, i) => i + 1);
  const gathered = new Float32Array(3 * p.partLength);
  for (let r = 0; r < 3; r++) gathered.set(p.pack(full, r), r * p.partLength);
  const back = new Float32Array(39);
  p.unpackAll(gathered, back);
  for (const [o, n] of [[0, 5], [16, 2], [32, 7]] as const) t.same([...back.subarray(o, o + n)], [...full.subarray(o, o + n)], `tensor at ${o} rebuilt`);
  t.throws(() => new Partition([], 0), /positive integer/);
});

t.test('zero_stage 1 gives the weights, losses and plans of stage 0 (DP 2 and SP 2 x DP 2), bitwise run to run', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root);
  const lines = Array.from({ length: 48 }, (_, i) => `line ${i}: the quick brown fox ${'jumps '.repeat(1 + (i % 5))}over the lazy dog number ${i * 7}.`);
  writeFileSync(join(root, 'corpus.txt'), lines.join('\n') + '\n');
  const run = async (name: string, world: number, extra: string[]) => {
    const r = await runCoordinatedJob(name, jobYaml(root, model, name, extra), world);
    t.equal(r.result.ok, true, `${name}: ${String(r.result.reason ?? 'ok')}`);
    t.same(r.metrics.map((m) => m.step), [1, 2, 3, 4], `${name}: four steps`);
    return { ...r, dir: join(root, name) };
  };
  let w2z1: Awaited<ReturnType<typeof run>> | undefined;
  for (const [world, sp] of [[2, 1], [4, 2]] as const) {
    const z0 = await run(`w${world}z0`, world, [`sequence_parallel_size: ${sp}`, 'zero_stage: 0']);
    const z1 = await run(`w${world}z1`, world, [`sequence_parallel_size: ${sp}`, 'zero_stage: 1']);
    t.same(z1.metrics.map((m) => [m.loss, m.grad_norm, m.grad_mean, m.policy_state]), z0.metrics.map((m) => [m.loss, m.grad_norm, m.grad_mean, m.policy_state]), `world ${world} (sp ${sp}): the same losses, gradient figures and states`);
    const d0 = z0.planDigests;
    t.ok(d0.length >= 4 * world, `world ${world}: ${d0.length} plan digests reported`);
    t.same(z1.planDigests, d0, `world ${world}: every rank's plan digest equal to stage 0`);
    t.ok(bytes(z1.dir, 'model.safetensors').equals(bytes(z0.dir, 'model.safetensors')), `world ${world}: final weights bitwise equal to stage 0`);
    t.ok(bytes(join(z1.dir, 'checkpoint-4'), 'optimizer.safetensors').equals(bytes(join(z0.dir, 'checkpoint-4'), 'optimizer.safetensors')), `world ${world}: consolidated moments bitwise equal to stage 0`);
    if (world === 2) {
      w2z1 = z1;
      const again = await run('w2z1again', 2, ['sequence_parallel_size: 1', 'zero_stage: 1']);
      t.ok(bytes(again.dir, 'model.safetensors').equals(bytes(z1.dir, 'model.safetensors')), 'a second stage-1 run: bitwise the same weights');
    }
  }
  // world 2 (DP 2) -> world 4 (SP 2 x DP 2): the same replicas and data, the moments re-cut into 4 parts
  const resumed = await runCoordinatedJob('resumed', jobYaml(root, model, 'resumed', ['sequence_parallel_size: 2', 'zero_stage: 1', `resume_from_checkpoint: ${join(w2z1!.dir, 'checkpoint-2')}`]), 4);
  t.equal(resumed.result.ok, true, String(resumed.result.reason ?? 'ok'));
  const tail = w2z1!.metrics.filter((m) => m.step > 2);
  t.same(resumed.metrics.map((m) => m.step), [3, 4], 'resumed at step 3');
  const rel = Math.max(...tail.map((m, i) => Math.abs(resumed.metrics[i]!.loss - m.loss) / Math.abs(m.loss)));
  t.ok(rel <= 1e-5, `stage-1 checkpoint of world 2 resumed on world 4: losses within ${rel.toExponential(2)} <= 1e-5 relative`);
});
