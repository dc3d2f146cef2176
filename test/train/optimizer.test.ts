// The fused optimizer step (one native call: the plan's operations and AdamW over every tensor)
// equals the per-tensor calls bit for bit on models with many tensors (a 16-layer Qwen2 with q/k/v
// biases: 195 views; its LoRA adapters), for every kind of plan: centralization scopes, the clip,
// noise and scaling of the tensors below a threshold; and a training step costs five native calls.
import t from 'tap';
import { Model, type TrainableSet } from '../../src/engine/model/index.js';
import { parseModelConfig } from '../../src/engine/modelConfig.js';
import { nativeCallCounts, nativeCallsSince } from '../../src/engine/nativeCalls.js';
import { addNoise, adamwStep, centralize, clipByGlobalNorm, gradStats, scale, type GradStats } from '../../src/engine/ops/optim.js';
import { planFor, type PolicyPlan, type PolicyStateName } from '../../src/statecharts/trainingPolicy.js';
import { Optimizer, Trainer, applyPlan, centralizes, decays, spansOf } from '../../src/train/loop/index.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { createLogger } from '../../src/util/Logger.js';
import { microHfConfig, policy, progressionData, standInData, trainConfig } from './helpers/trainFixtures.js';

const manyViews = parseModelConfig({ ...microHfConfig, model_type: 'qwen2', num_hidden_layers: 16 }, 'qwen2 16 layers');
const adam = { weight_decay: 0.01, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8 };
const seq = progressionData({ count: 1, len: 48 })[0]!;

/** The optimizer step as it was made before the fused call: one native call per tensor and operation. */
async function perTensorStep(set: TrainableSet, plan: PolicyPlan, stats: GradStats, m: Float32Array, v: Float32Array, lr: number, step: number | null) {
  const grad = (i: number) => set.grads.subarray(set.views[i]!.offset, set.views[i]!.offset + set.views[i]!.numel);
  const fx = { noised: 0, scaled: 0, centralized: 0, clipFactor: 1, normBeforeClip: stats.l2Norm };
  let changed = false;
  if (plan.noiseStd > 0) {
    for (let i = 0; i < set.views.length; i++, fx.noised++) await addNoise(grad(i), plan.noiseStd, { seed: plan.noiseSeed, step: plan.step, tensor: i });
    changed = true;
  }
  if (plan.scaleFactor !== 1 && plan.scaleThreshold > 0) {
    for (let i = 0; i < set.views.length; i++) {
      if (stats.perTensorMeanAbs[i]! < plan.scaleThreshold) {
        await scale(grad(i), plan.scaleFactor);
        fx.scaled++;
      }
    }
    changed ||= fx.scaled > 0;
  }
  for (const [i, w] of set.views.entries()) {
    if (!centralizes(w, plan.centralize)) continue;
    await centralize(grad(i), w.shape[0]!, w.shape[1]!);
    fx.centralized++;
    changed = true;
  }
  if (plan.clipNorm > 0) {
    if (changed) fx.normBeforeClip = (await gradStats(set.grads, spansOf(set))).l2Norm;
    fx.clipFactor = await clipByGlobalNorm(set.grads, fx.normBeforeClip, plan.clipNorm);
  }
  if (step === null) return fx;
  for (const w of set.views) {
    const span = (a: Float32Array) => a.subarray(w.offset, w.offset + w.numel);
    await adamwStep(span(set.params), span(m), span(v), span(set.grads), {
      lr, beta1: adam.adam_beta1, beta2: adam.adam_beta2, eps: adam.adam_epsilon, weightDecay: decays(w) ? adam.weight_decay : 0, step,
    });
  }
  return fx;
}

const sameBits = (a: Float32Array, b: Float32Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

/** Two identical models (or adapter sets) with identical fresh gradients. */
async function pair(lora: boolean) {
  const make = async () => {
    const model = await Model.create(manyViews, { seed: 7 });
    if (lora) {
      await model.attachLora({ rank: 2, seed: 3 });
      // B = 0 after init: give the adapters weights of their own so every gradient is non-zero
      model.lora!.params.forEach((_, i, p) => (p[i] = Math.sin(i * 0.37) * 0.05));
    }
    return model;
  };
  return [await make(), await make()] as const;
}

async function freshGradients(model: Model, into: Model): Promise<void> {
  await model.zeroGrad();
  await model.forwardBackward({ tokens: seq.tokens, labels: seq.labels, docLens: seq.docLens });
  into.trainable.grads.set(model.trainable.grads);
}

type Case = { state: PolicyStateName; centralize: 'linear' | 'all' | 'none'; maxGradNorm: number; scaleAtMedian?: boolean };

for (const lora of [false, true]) {
  t.test(`fused optimizer step equals the per-tensor calls bitwise (${lora ? 'LoRA adapters' : 'full model'})`, async (t) => {
    const [ref, fused] = await pair(lora);
    const set = ref.trainable;
    t.ok(set.views.length >= (lora ? 100 : 190), `${set.views.length} tensors`);
    const m = new Float32Array(set.params.length), v = new Float32Array(set.params.length);
    const opt = new Optimizer(fused.trainable, adam);
    const cases: Case[] = [
      { state: 'normal', centralize: 'linear', maxGradNorm: 1e-3 },
      { state: 'vanishing-intervention', centralize: 'linear', maxGradNorm: 1, scaleAtMedian: true },
      { state: 'explode-clip', centralize: 'all', maxGradNorm: 0 },
      { state: 'late-stage', centralize: 'none', maxGradNorm: 0 },
      { state: 'warmup', centralize: 'linear', maxGradNorm: 1e6 },
    ];
    for (const [k, c] of cases.entries()) {
      await freshGradients(ref, fused);
      const stats = await gradStats(set.grads, spansOf(set));
      const ev = { type: 'policy.step' as const, step: k + 1, totalSteps: 100, warmupSteps: 0, maxGradNorm: c.maxGradNorm, seed: 42, stats };
      let plan: PolicyPlan = { ...planFor(policy({ centralize: c.centralize }), ev, c.state), centralize: c.centralize };
      if (c.scaleAtMedian) {
        // scale about half the tensors: the threshold between them
        const sorted = [...stats.perTensorMeanAbs].sort((a, b) => a - b);
        plan = { ...plan, scaleThreshold: sorted[sorted.length >> 1]!, scaleFactor: 1.5 };
      }
      const want = await perTensorStep(set, plan, stats, m, v, 1e-3, k + 1);
      const before = nativeCallCounts();
      const got = await opt.step(plan, stats, 1e-3);
      t.same(nativeCallsSince(before), { total: 1, optimizerStep: 1 }, `${c.state}: one native call`);
      t.same(got, want, `${c.state}: the same effects`);
      if (c.scaleAtMedian) t.ok(got.scaled > 0 && got.scaled < set.views.length, `${got.scaled} of ${set.views.length} tensors scaled`);
      t.ok(sameBits(fused.trainable.grads, set.grads), `${c.state} (${c.centralize}, clip ${plan.clipNorm}): gradients bitwise equal`);
      t.ok(sameBits(fused.trainable.params, set.params), `${c.state}: parameters bitwise equal`);
      t.ok(sameBits(opt.m, m) && sameBits(opt.v, v), `${c.state}: moments bitwise equal`);
      t.equal(opt.adamStep, k + 1, 'the update count');
    }
  });
}

t.test('applyPlan (the plan alone) equals the per-tensor calls bitwise', async (t) => {
  const [ref, fused] = await pair(false);
  await freshGradients(ref, fused);
  const stats = await gradStats(ref.grads, spansOf(ref));
  const ev = { type: 'policy.step' as const, step: 9, totalSteps: 100, warmupSteps: 0, maxGradNorm: 1e-3, seed: 5, stats };
  const plan = planFor(policy(), ev, 'vanishing-intervention');
  const want = await perTensorStep(ref.trainable, plan, stats, new Float32Array(0), new Float32Array(0), 0, null);
  const got = await applyPlan(fused, plan, stats);
  t.same(got, want);
  t.ok(got.noised === ref.views.length && got.clipFactor < 1, `noise on every tensor, clipped by ${got.clipFactor}`);
  t.ok(sameBits(fused.grads, ref.grads), 'gradients bitwise equal');
});

t.test('a training step on one process is five native calls: forward, backward, zeroGrad, gradStats, optimizerStep', async (t) => {
  const model = await Model.create(manyViews, { seed: 1 });
  const perStep: Record<string, number>[] = [];
  let mark = nativeCallCounts();
  await new Trainer({
    model, runtime: singleProcessRuntime(), data: standInData(progressionData({ count: 2, len: 32 })), logger: createLogger('silent'), policy: policy(),
    config: trainConfig(t.testdir(), { max_steps: 3 }),
    hooks: { reportStep: () => { perStep.push(nativeCallsSince(mark)); mark = nativeCallCounts(); } },
  }).run();
  const step = { total: 5, 'model.forward': 1, 'model.backward': 1, 'model.zeroGrad': 1, gradStats: 1, optimizerStep: 1 };
  t.same(perStep.slice(1), [step, step], 'steps 2 and 3');
  t.same(perStep[0], { ...step, total: 6, 'model.zeroGrad': 2 }, 'step 1 (and the zeroGrad before the loop)');
});
