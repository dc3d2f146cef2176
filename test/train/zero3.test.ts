// ZeRO stage 3 (REFERENCE §8: parameters sharded too, each layer's attention run and MLP matrices
// gathered in turn for its forward and backward, the embedding and LM head in vocabulary slices).
// In process, a world of one: the sharded model's forward and backward give the
// unsharded model's losses (bitwise) and its gradients in the packed part (bitwise untied; tied,
// within fp32 summation order: the head's and the lookup's embedding gradients are added in
// another order), fp32 and bf16, with and without checkpointing, the parameter buffer holds
// nothing between calls (gathered again it is the original weights), and no layer is ever
// gathered whole. The tiled MLP's slices: zero3TiledMlp.test.ts. Then jobs on loopback (the
// gathers on their worker thread): stage 3 ends with stage 0's weights (1e-6) and plan digests at
// DP 2 and SP 2 x DP 2 (checkpointing on), bitwise the same run to run, close to it with two
// micro-batches a step (1e-5: each micro-batch's world sum is added into the part), with tied
// embeddings, with a vocabulary of three slices (one across the two ranks' parts), in bf16 close
// to stage 0's bf16 run, and a stage-3 checkpoint of world 2
// resumed on world 4 continues with the same losses (1e-5).
import t, { type Test } from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig } from '../../src/engine/modelConfig.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { Partition } from '../../src/train/zero/partition.js';
import { shardModel } from '../../src/train/zero/shardModel.js';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { weightsDiff, writeSpModel } from './helpers/spJob.js';
import { microHfConfig, passLosses, progressionData, writeMicroModelDir } from './helpers/trainFixtures.js';

const maxAbs = (x: Float32Array) => x.reduce((a, v) => Math.max(a, Math.abs(v)), 0);

t.test('world of one: the sharded model computes the unsharded one\'s losses and gradients, holding no parameters between calls', async (t) => {
  const seqs = progressionData({ count: 2, len: 24 });
  for (const tied of [false, true]) {
    for (const bf16 of [false, true]) {
      for (const checkpointing of [false, true]) {
        const name = `${tied ? 'tied' : 'untied'} ${bf16 ? 'bf16' : 'fp32'}${checkpointing ? ' checkpointing' : ''}`;
        const cfg = parseModelConfig({ ...microHfConfig, tie_word_embeddings: tied }, 'micro');
        const ref = await Model.create(cfg, { seed: 5, bf16, checkpointing });
        const z3 = await Model.create(cfg, { seed: 5, bf16, checkpointing });
        const whole = Float32Array.from(z3.params);
        const sh = await shardModel(z3, singleProcessRuntime());
        t.equal(maxAbs(z3.params), 0, `${name}: the flat parameters are released once sharded`);
        const partition = new Partition(z3.views, 1);
        t.ok(sh.params.every((v, i) => v === partition.pack(whole, 0)[i]), `${name}: the part is the packed weights`);
        const losses = await passLosses([ref, z3], seqs);
        t.same(losses[1], losses[0], `${name}: the same losses, bitwise`);
        t.equal(maxAbs(z3.params) + maxAbs(z3.grads), 0, `${name}: no parameter or gradient left in the flat buffers after the passes`);
        const want = partition.pack(ref.grads, 0);
        let worst = 0;
        for (const v of z3.views) {
          const s = partition.segments(0).find((x) => x.tensor === z3.views.indexOf(v))!;
          const a = want.subarray(s.packed, s.packed + s.numel);
          const b = sh.grads.subarray(s.packed, s.packed + s.numel);
          const mx = Math.max(maxAbs(a), 1e-30);
          for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / mx);
        }
        if (tied) t.ok(worst <= 1e-6, `${name}: gradients within ${worst.toExponential(2)} <= 1e-6 (relative to each tensor's largest)`);
        else t.equal(worst, 0, `${name}: gradients bitwise equal`);
        await z3.gatherParameters();
        t.ok(z3.params.every((v, i) => v === whole[i]), `${name}: gathered, the parameters are the weights`);
        z3.releaseParameters();
        t.equal(maxAbs(z3.params), 0, `${name}: released again`);
        const st = z3.shardStats()!;
        t.equal(st.partLength, partition.partLength, `${name}: the part's length`);
        // the pieces: the embedding, each layer's attention run and MLP matrices, the final norm with the LM head (tied: with the embedding)
        const bytesOf = (names: (n: string) => boolean) => z3.views.filter((v) => names(v.name)).reduce((a, v) => a + Math.ceil(v.numel / 16) * 64, 0);
        const layer = bytesOf((n) => n.startsWith('model.layers.0.'));
        const attention = bytesOf((n) => n.startsWith('model.layers.0.') && !n.includes('.mlp.'));
        const head = bytesOf((n) => n === 'model.norm.weight' || n === 'lm_head.weight' || (tied && n === 'model.embed_tokens.weight'));
        const largest = Math.max(attention, head, bytesOf((n) => n === 'model.embed_tokens.weight'), bytesOf((n) => n === 'model.layers.0.mlp.gate_proj.weight'));
        // a piece's fp32 weights, their bf16 copy and its gradient at most: never a whole layer
        t.ok(st.peakResidentBytes >= attention && st.peakResidentBytes <= (bf16 ? 2.5 : 2) * largest && st.peakResidentBytes < (bf16 ? 2.5 : 2) * layer, `${name}: at most ${st.peakResidentBytes} bytes gathered at once (the largest piece: ${largest}; a layer: ${layer}; the whole model: ${whole.byteLength})`);
        await z3.zeroGrad();
        t.equal(maxAbs(sh.grads), 0, `${name}: zeroGrad clears the part`);
      }
    }
  }
});

t.test('world of one, a vocabulary of 9000 (three slices of 4096 ids): the sliced embedding and LM head give the unsharded losses and gradients bitwise', async (t) => {
  const V = 9000;
  // ids spread over the whole vocabulary, so every slice looks some up
  const seqs = progressionData({ count: 2, len: 24 }).map((s) => ({ ...s, tokens: s.tokens.map((x, i) => (x * 2749 + i * 613) % V), labels: s.labels.map((y, i) => (y < 0 ? y : (y * 1931 + i * 409) % V)) }));
  for (const tied of [false, true]) {
    for (const bf16 of [false, true]) {
      const name = `${tied ? 'tied' : 'untied'} ${bf16 ? 'bf16' : 'fp32'}`;
      const cfg = parseModelConfig({ ...microHfConfig, vocab_size: V, tie_word_embeddings: tied }, 'micro');
      const ref = await Model.create(cfg, { seed: 7, bf16 });
      const z3 = await Model.create(cfg, { seed: 7, bf16 });
      await shardModel(z3, singleProcessRuntime());
      const partition = new Partition(z3.views, 1);
      const losses: number[][] = [[], []];
      for (const s of seqs) {
        for (const [k, m] of [ref, z3].entries()) {
          const r = await m.forward({ tokens: s.tokens, labels: s.labels, positions: s.positions, docLens: s.docLens, normalizer: 40 });
          await m.backward();
          losses[k]!.push(r.loss);
        }
      }
      t.same(losses[1], losses[0], `${name}: the same losses, bitwise`);
      const want = partition.pack(ref.grads, 0);
      const got = z3.shards!.grads;
      let diff = 0;
      for (let i = 0; i < want.length; i++) if (want[i] !== got[i]) diff++;
      t.equal(diff, 0, `${name}: every gradient element bitwise equal (${want.length} elements)`);
      const st = z3.shardStats()!;
      // the LM head gathered whole would hold its weights, their bf16 copy and its gradient: a slice, under half that
      const whole = V * microHfConfig.hidden_size * (bf16 ? 10 : 8);
      t.ok(st.peakResidentBytes < whole / 2, `${name}: at most ${st.peakResidentBytes} bytes gathered at once, under half of the whole LM head's weights and gradient (${whole})`);
      z3.close();
      ref.close();
    }
  }
});

function jobYaml(root: string, model: string, name: string, extra: string[]): string {
  return [
    `model_name_or_path: ${model}`, 'stage: pt', 'finetuning_type: full', `dataset: ${join(root, 'corpus.txt')}`, 'cutoff_len: 64', 'packing: true',
    'logging_steps: 1', 'save_steps: 2', 'max_steps: 4', 'learning_rate: 1.0e-2', 'lr_scheduler_type: constant', 'weight_decay: 0.01',
    `output_dir: ${join(root, name)}`, ...extra,
  ].join('\n');
}

/** A directory with the SP test model and a corpus, and a runner of jobs on it (each must succeed and run steps 1-4). */
function jobsIn(t: Test) {
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
  return { root, model, run };
}


const lossDiff = (a: { metrics: { loss: number }[] }, b: { metrics: { loss: number }[] }) => Math.max(...a.metrics.map((m, i) => Math.abs(b.metrics[i]!.loss - m.loss) / Math.abs(m.loss)));

t.test('zero_stage 3 gives stage 0\'s weights (1e-6) and plans at DP 2 and SP 2 x DP 2, bitwise run to run, and resumes on another world size', async (t) => {
  const { root, model, run } = jobsIn(t);
  let w2z3: Awaited<ReturnType<typeof run>> | undefined;
  // world 4 with gradient checkpointing: every layer gathered again for its recompute
  for (const [world, sp, extra] of [[2, 1, []], [4, 2, ['gradient_checkpointing: true']]] as const) {
    const z0 = await run(`w${world}z0`, world, [`sequence_parallel_size: ${sp}`, 'zero_stage: 0', ...extra]);
    const z3 = await run(`w${world}z3`, world, [`sequence_parallel_size: ${sp}`, 'zero_stage: 3', ...extra]);
    t.ok(z0.planDigests.length >= 4 * world, `world ${world}: ${z0.planDigests.length} plan digests reported`);
    t.same(z3.planDigests, z0.planDigests, `world ${world} (sp ${sp}): every rank's plan digest equal to stage 0`);
    t.same(z3.metrics.map((m) => m.policy_state), z0.metrics.map((m) => m.policy_state), `world ${world}: the same policy states`);
    const lossRel = lossDiff(z0, z3);
    t.ok(lossRel <= 1e-5, `world ${world}: losses within ${lossRel.toExponential(2)} <= 1e-5 of stage 0`);
    const worst = await weightsDiff(z0.dir, z3.dir);
    t.ok(worst <= 1e-6, `world ${world}: final weights within ${worst.toExponential(2)} <= 1e-6 of stage 0 (relative to each tensor's largest)`);
    if (world === 2) {
      w2z3 = z3;
      const again = await run('w2z3again', 2, ['sequence_parallel_size: 1', 'zero_stage: 3']);
      t.ok(readFileSync(join(again.dir, 'model.safetensors')).equals(readFileSync(join(z3.dir, 'model.safetensors'))), 'a second stage-3 run: bitwise the same weights');
    }
  }
  // world 2 (DP 2) -> world 4 (SP 2 x DP 2): the same replicas and data, parameters and moments re-cut into 4 parts
  const resumed = await runCoordinatedJob('resumed3', jobYaml(root, model, 'resumed3', ['sequence_parallel_size: 2', 'zero_stage: 3', `resume_from_checkpoint: ${join(w2z3!.dir, 'checkpoint-2')}`]), 4);
  t.equal(resumed.result.ok, true, String(resumed.result.reason ?? 'ok'));
  t.same(resumed.metrics.map((m) => m.step), [3, 4], 'resumed at step 3');
  const tail = { metrics: w2z3!.metrics.filter((m) => m.step > 2) };
  const rel = lossDiff(tail, resumed);
  t.ok(rel <= 1e-5, `stage-3 checkpoint of world 2 resumed on world 4: losses within ${rel.toExponential(2)} <= 1e-5 relative`);
});

t.test('zero_stage 3 with two micro-batches a step: each backward reduce-scatters into the part, which accumulates', async (t) => {
  const { run } = jobsIn(t);
  const z0 = await run('gasz0', 2, ['zero_stage: 0', 'gradient_accumulation_steps: 2']);
  const z3 = await run('gasz3', 2, ['zero_stage: 3', 'gradient_accumulation_steps: 2']);
  t.same(z3.planDigests, z0.planDigests, 'every rank\'s plan digest equal to stage 0');
  const lossRel = lossDiff(z0, z3);
  t.ok(lossRel <= 1e-5, `losses within ${lossRel.toExponential(2)} <= 1e-5 of stage 0`);
  // stage 0 adds the micro-batches on each rank, then over the world; stage 3 adds each
  // micro-batch's world sum (a full-size local buffer is what it does without): other roundings,
  // which four AdamW steps at lr 1e-2 carry to about 1e-6 of the weights
  const worst = await weightsDiff(z0.dir, z3.dir);
  t.ok(worst <= 1e-5, `final weights within ${worst.toExponential(2)} <= 1e-5 of stage 0`);
});

t.test('zero_stage 3 in bf16 (a bf16 copy per gathered layer) tracks stage 0 in bf16 at DP 2; tied embeddings give stage 0\'s weights', async (t) => {
  const { root, run } = jobsIn(t);
  // the LM head is the embedding: its gradient is reduce-scattered after the head and again after the lookup
  const tiedDir = writeMicroModelDir(join(root, 'tied'), { vocab_size: 260, num_key_value_heads: 2, tie_word_embeddings: true });
  const tied = async (name: string, stage: number) => {
    const r = await runCoordinatedJob(name, jobYaml(root, tiedDir, name, [`zero_stage: ${stage}`]), 2);
    t.equal(r.result.ok, true, `${name}: ${String(r.result.reason ?? 'ok')}`);
    return { ...r, dir: join(root, name) };
  };
  const [t0, t3] = [await tied('tiedz0', 0), await tied('tiedz3', 3)];
  t.same(t3.planDigests, t0.planDigests, 'tied: every rank\'s plan digest equal to stage 0');
  const tw = await weightsDiff(t0.dir, t3.dir);
  t.ok(tw <= 1e-6, `tied: final weights within ${tw.toExponential(2)} <= 1e-6 of stage 0`);
  // 9000 ids: slices [0, 4096) and [8192, 9000) each on one rank, [4096, 8192) across both parts (4500 rows each)
  for (const tie of [false, true]) {
    const dir = writeMicroModelDir(join(root, `v9000${tie}`), { vocab_size: 9000, num_key_value_heads: 2, tie_word_embeddings: tie });
    const job = async (name: string, stage: number) => {
      const r = await runCoordinatedJob(name, jobYaml(root, dir, name, [`zero_stage: ${stage}`]), 2);
      t.equal(r.result.ok, true, `${name}: ${String(r.result.reason ?? 'ok')}`);
      return { ...r, dir: join(root, name) };
    };
    const [a, b] = [await job(`v9000${tie}z0`, 0), await job(`v9000${tie}z3`, 3)];
    t.same(b.planDigests, a.planDigests, `vocabulary 9000${tie ? ', tied' : ''}: every rank's plan digest equal to stage 0`);
    const w = await weightsDiff(a.dir, b.dir);
    t.ok(w <= 1e-6, `vocabulary 9000${tie ? ', tied' : ''} (a slice across both ranks' parts): final weights within ${w.toExponential(2)} <= 1e-6 of stage 0`);
  }
  const z0 = await run('bf16z0', 2, ['zero_stage: 0', 'bf16: true']);
  const z3 = await run('bf16z3', 2, ['zero_stage: 3', 'bf16: true']);
  t.same(z3.metrics.map((m) => m.policy_state), z0.metrics.map((m) => m.policy_state), 'the same policy states');
  const rel = lossDiff(z0, z3);
  // the bf16 copies are the same roundings of weights that differ by summation order only
  t.ok(rel <= 1e-4, `losses within ${rel.toExponential(2)} <= 1e-4 of stage 0 in bf16`);
  const worst = await weightsDiff(z0.dir, z3.dir);
  t.ok(worst <= 1e-4, `final weights within ${worst.toExponential(2)} <= 1e-4 of stage 0 in bf16`);
});
