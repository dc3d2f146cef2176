// ZeRO stage 3 with the tiled MLP (REFERENCE §8): a layer's gathered run is its attention block,
// and its MLP is gathered in slices of the intermediate dimension (every rank's rows of gate and
// up, the same columns of down), so no layer is ever gathered whole. In process, a world of one:
// the sharded model's losses and gradients equal the unsharded tiled model's within fp32
// summation order (the products over the intermediate dimension are summed slice by slice), with
// intermediate sizes that cut into equal and unequal slices, several tiles, checkpointing and
// attention adapters on the frozen base; the flat buffers hold nothing after the passes, and at
// most less than one layer's weights is gathered at once. Then jobs on loopback (the gathers on
// their worker thread): DP 2 and SP 2 x DP 2 with checkpointing give stage 0's plan digests, its
// losses (1e-5) and first gradient norm (1e-6), its final weights within 1e-4 (AdamW carries the
// summation order of near-zero gradients into the weights), and a second run is bitwise the first.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig } from '../../src/engine/modelConfig.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { Partition } from '../../src/train/zero/partition.js';
import { shardModel } from '../../src/train/zero/shardModel.js';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { weightsDiff, writeSpModel } from './helpers/spJob.js';
import { microHfConfig, passLosses, progressionData } from './helpers/trainFixtures.js';

const maxAbs = (x: Float32Array) => x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);

t.test('world of one: the sliced MLP gives the unsharded tiled model\'s losses and gradients, never gathering a layer whole', async (t) => {
  const seqs = progressionData({ count: 2, len: 40 });
  // 64: two slices of 32 rows; 70: three slices of 24 (the last with two padding rows)
  for (const intermediate of [64, 70]) {
    for (const tile of [true, 16] as const) {
      for (const checkpointing of [false, true]) {
        const name = `I ${intermediate}, tile ${tile === true ? 'auto' : tile}${checkpointing ? ', checkpointing' : ''}`;
        const cfg = parseModelConfig({ ...microHfConfig, intermediate_size: intermediate }, 'micro');
        const ref = await Model.create(cfg, { seed: 3, checkpointing, tiledMlp: tile });
        const z3 = await Model.create(cfg, { seed: 3, checkpointing, tiledMlp: tile });
        const whole = Float32Array.from(z3.params);
        const sh = await shardModel(z3, singleProcessRuntime());
        const losses = await passLosses([ref, z3], seqs);
        const lossRel = Math.max(...losses[0]!.map((l, i) => Math.abs(losses[1]![i]! - l) / Math.abs(l)));
        t.ok(lossRel <= 1e-6, `${name}: losses within ${lossRel.toExponential(2)} <= 1e-6`);
        t.equal(maxAbs(z3.params) + maxAbs(z3.grads), 0, `${name}: nothing left in the flat buffers after the passes`);
        const partition = new Partition(z3.views, 1);
        const want = partition.pack(ref.grads, 0);
        let worst = 0, mlpCompared = 0;
        for (const [i, v] of z3.views.entries()) {
          const s = partition.segments(0).find((x) => x.tensor === i)!;
          const a = want.subarray(s.packed, s.packed + s.numel);
          const b = sh.grads.subarray(s.packed, s.packed + s.numel);
          const mx = Math.max(maxAbs(a), 1e-30);
          if (v.name.includes('.mlp.') && maxAbs(a) > 0) mlpCompared++;
          for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!) / mx);
        }
        t.equal(mlpCompared, 3 * cfg.numHiddenLayers, `${name}: every MLP matrix got a gradient`);
        t.ok(worst <= 1e-6, `${name}: gradients within ${worst.toExponential(2)} <= 1e-6 (relative to each tensor's largest)`);
        await z3.gatherParameters();
        t.ok(z3.params.every((x, i) => x === whole[i]), `${name}: gathered, the parameters are the weights`);
        z3.releaseParameters();
        const layer = z3.views.filter((v) => v.name.startsWith('model.layers.0.')).reduce((a, v) => a + Math.ceil(v.numel / 16) * 64, 0);
        const st = z3.shardStats()!;
        t.ok(st.peakResidentBytes > 0 && st.peakResidentBytes < layer, `${name}: at most ${st.peakResidentBytes} bytes of weights and gradients gathered at once, under one layer's weights (${layer})`);
      }
    }
  }
});

t.test('world of one: attention adapters on a sharded base with the sliced MLP give the unsharded adapter gradients', async (t) => {
  const seqs = progressionData({ count: 2, len: 40 });
  const cfg = parseModelConfig(microHfConfig, 'micro');
  const lora = { rank: 4, alpha: 8, dropout: 0, targets: ['q_proj', 'v_proj'], seed: 3 };
  const ref = await Model.create(cfg, { seed: 4, tiledMlp: 16 });
  const z3 = await Model.create(cfg, { seed: 4, tiledMlp: 16 });
  for (const m of [ref, z3]) {
    await m.attachLora(lora);
    // B starts at zero: one step's worth of adapter weights so the adapters change the outputs
    for (let i = 0; i < m.lora!.params.length; i++) m.lora!.params[i] = Math.sin(i) * 0.05;
  }
  await shardModel(z3, singleProcessRuntime());
  const losses = await passLosses([ref, z3], seqs);
  const lossRel = Math.max(...losses[0]!.map((l, i) => Math.abs(losses[1]![i]! - l) / Math.abs(l)));
  t.ok(lossRel <= 1e-6, `losses within ${lossRel.toExponential(2)} <= 1e-6`);
  const a = ref.lora!.grads, b = z3.lora!.grads;
  t.ok(maxAbs(a) > 0, 'the adapters got gradients');
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  t.ok(worst <= 1e-6 * maxAbs(a), `adapter gradients within ${(worst / maxAbs(a)).toExponential(2)} <= 1e-6 of the largest`);
  t.equal(maxAbs(z3.grads), 0, 'the frozen base got no gradient');
});

t.test('zero_stage 3 with tiled_mlp tracks stage 0 (plans, losses, weights within 1e-4) at DP 2 and SP 2 x DP 2, bitwise run to run', async (t) => {
  const root = t.testdir();
  const model = writeSpModel(root);
  const lines = Array.from({ length: 48 }, (_, i) => `line ${i}: the quick brown fox ${'jumps '.repeat(1 + (i % 5))}over the lazy dog number ${i * 7}.`);
  writeFileSync(join(root, 'corpus.txt'), lines.join('\n') + '\n');
  const run = async (name: string, world: number, extra: string[]) => {
    const yaml = [
      `model_name_or_path: ${model}`, 'stage: pt', 'finetuning_type: full', `dataset: ${join(root, 'corpus.txt')}`, 'cutoff_len: 64', 'packing: true',
      'logging_steps: 1', 'max_steps: 4', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'weight_decay: 0.01', 'tiled_mlp: true',
      `output_dir: ${join(root, name)}`, ...extra,
    ].join('\n');
    const r = await runCoordinatedJob(name, yaml, world);
    t.equal(r.result.ok, true, `${name}: ${String(r.result.reason ?? 'ok')}`);
    t.same(r.metrics.map((m) => m.step), [1, 2, 3, 4], `${name}: four steps`);
    return { ...r, dir: join(root, name) };
  };
  for (const [world, sp, extra] of [[2, 1, []], [4, 2, ['gradient_checkpointing: true']]] as const) {
    const z0 = await run(`w${world}z0`, world, [`sequence_parallel_size: ${sp}`, 'zero_stage: 0', ...extra]);
    const z3 = await run(`w${world}z3`, world, [`sequence_parallel_size: ${sp}`, 'zero_stage: 3', ...extra]);
    t.ok(z0.planDigests.length >= 4 * world, `world ${world}: ${z0.planDigests.length} plan digests reported`);
    t.same(z3.planDigests, z0.planDigests, `world ${world} (sp ${sp}): every rank's plan digest equal to stage 0`);
    const lossRel = Math.max(...z0.metrics.map((m, i) => Math.abs(z3.metrics[i]!.loss - m.loss) / Math.abs(m.loss)));
    t.ok(lossRel <= 1e-5, `world ${world}: losses within ${lossRel.toExponential(2)} <= 1e-5 of stage 0`);
    // the first step's gradient, before AdamW: summation order only
    const g0 = z0.metrics[0]!.grad_norm as number, g3 = z3.metrics[0]!.grad_norm as number;
    t.ok(Math.abs(g3 - g0) <= 1e-6 * g0, `world ${world}: step 1's gradient norm within ${(Math.abs(g3 - g0) / g0).toExponential(2)} <= 1e-6 of stage 0`);
    // AdamW moves every weight whose gradient is above eps by about lr, whatever its size, so the
    // last bits of near-zero gradients (the slices' other summation order) reach the weights:
    // four steps at lr 1e-2 leave about 2e-5
    const worst = await weightsDiff(z0.dir, z3.dir);
    t.ok(worst <= 1e-4, `world ${world}: final weights within ${worst.toExponential(2)} <= 1e-4 of stage 0 (relative to each tensor's largest)`);
    if (world === 2) {
      const again = await run('w2z3again', 2, ['sequence_parallel_size: 1', 'zero_stage: 3']);
      t.ok(readFileSync(join(again.dir, 'model.safetensors')).equals(readFileSync(join(z3.dir, 'model.safetensors'))), 'a second stage-3 run: bitwise the same weights');
    }
  }
});
