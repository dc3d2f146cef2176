// Stage rm's gradient policy sees the model's trainable tensors and the value head's as one
// gradient: the joint statistics equal an fp64 computation over both, the clip uses one global L2
// norm (after the plan's other operations) and one factor for both sets, and the Trainer reports
// that norm as grad_norm.
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { Optimizer } from '../../src/train/loop/Optimizer.js';
import { replicaData } from '../../src/train/loop/replicaData.js';
import { RewardHead } from '../../src/train/loop/rewardHead.js';
import { Trainer, type StepInfo } from '../../src/train/loop/Trainer.js';
import type { PolicyPlan } from '../../src/statecharts/trainingPolicy.js';
import { defaultPolicyConfig } from '../../src/statecharts/policyConfig.js';
import { createLogger } from '../../src/util/Logger.js';
import { lcg, pair } from './helpers/preferenceFixtures.js';
import { microConfig, trainConfig } from './helpers/trainFixtures.js';

const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-300);
const fp64Norm = (...gs: Float32Array[]) => Math.sqrt(gs.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));

const plan = (o: Partial<PolicyPlan>): PolicyPlan => ({
  step: 1, state: 'normal', lateVanishing: false, skipUpdate: false, escalate: false, noiseStd: 0, noiseSeed: 7,
  scaleThreshold: 0, scaleFactor: 1, lrMultiplier: 1, clipNorm: 0, centralize: 'none', ...o,
});

async function setup() {
  const model = await Model.create(microConfig, { seed: 3 });
  const config = trainConfig('unused', {});
  const head = new RewardHead(microConfig.hiddenSize, 9, config);
  const r = lcg(4);
  const train = model.trainable;
  const fill = (g: Float32Array, views: typeof train.views, amp: number) => {
    for (const v of views) for (let i = 0; i < v.numel; i++) g[v.offset + i] = (r() - 0.5) * amp;
  };
  fill(train.grads, train.views, 1e-2);
  // the head's gradient dominates: a clip judged on the model alone would not clip at all
  fill(head.set.grads, head.set.views, 4);
  return { model, train, head, optimizer: new Optimizer(train, config) };
}

t.test('joint statistics: one L2 norm, max |g|, non-finite count and grad_mean over model and head (fp64)', async (t) => {
  const { train, head, optimizer } = await setup();
  const s = await head.jointStats(await optimizer.gradStats(), train.views);
  const want = fp64Norm(train.grads, head.set.grads);
  t.ok(close(s.l2Norm, want, 1e-6), `l2Norm ${s.l2Norm} vs fp64 ${want}`);
  const maxAbs = Math.max(...[...train.grads, ...head.set.grads].map(Math.abs));
  t.ok(close(s.maxAbs, maxAbs, 1e-7), 'max |g| over both');
  const means = [...train.views, ...head.set.views].map((v) => {
    const g = (v.name.startsWith('v_head') ? head.set.grads : train.grads).subarray(v.offset, v.offset + v.numel);
    return g.reduce((a, x) => a + Math.abs(x), 0) / v.numel;
  });
  t.equal(s.perTensorMeanAbs.length, train.views.length + head.set.views.length, 'one mean |g| per tensor of both sets');
  t.ok(close(s.gradMean, means.reduce((a, x) => a + x, 0) / means.length, 1e-6), 'grad_mean over every tensor of both');
  t.equal(s.nonfinite, 0);
});

t.test('the clip uses the global norm over model and head, one factor for both', async (t) => {
  const { train, head, optimizer } = await setup();
  const before = Float32Array.from(train.grads);
  const global = fp64Norm(train.grads, head.set.grads);
  const modelOnly = fp64Norm(train.grads);
  const clipNorm = 0.5;
  t.ok(modelOnly < clipNorm && global > clipNorm, `the model alone (${modelOnly.toFixed(4)}) is under the clip, model + head (${global.toFixed(4)}) over it`);
  await head.jointStats(await optimizer.gradStats(), train.views);
  const fx = await head.updateWithModel(optimizer, plan({ clipNorm }), 1e-3);
  for (const [name, f] of [['model', fx.model], ['head', fx.head]] as const) {
    t.ok(close(f.normBeforeClip, global, 1e-6), `${name}: the clip's norm ${f.normBeforeClip} is the fp64 norm over model + head ${global}`);
    t.ok(close(f.clipFactor, clipNorm / (global + 1e-6), 1e-6), `${name}: clip factor ${f.clipFactor}`);
  }
  let worst = 0;
  for (let i = 0; i < before.length; i++) worst = Math.max(worst, Math.abs(train.grads[i]! - before[i]! * fx.model.clipFactor));
  t.ok(worst < 1e-9, `the model's gradient is scaled by that factor (worst ${worst.toExponential(2)})`);
  t.ok(head.set.grads.every((x) => x === 0), 'the head\'s gradient is cleared after its update');
  await t.rejects(head.updateWithModel(optimizer, plan({ clipNorm }), 1e-3), { code: 'ERR_STATE' }, 'an update needs this step\'s joint statistics');
});

t.test('after centralization the clip norm is the fp64 norm of both centralized gradients', async (t) => {
  const { train, head, optimizer } = await setup();
  const stats = await head.jointStats(await optimizer.gradStats(), train.views);
  // what centralization leaves: every 2-d tensor's rows minus their mean (the head's [1, hidden] weight: one row)
  const centred = (g: Float32Array, views: typeof train.views) => {
    const out = Float64Array.from(g);
    for (const v of views) {
      if (v.shape.length !== 2) continue;
      const [rows, cols] = [v.shape[0]!, v.shape[1]!];
      for (let r = 0; r < rows; r++) {
        let m = 0;
        for (let c = 0; c < cols; c++) m += out[v.offset + r * cols + c]!;
        m /= cols;
        for (let c = 0; c < cols; c++) out[v.offset + r * cols + c] = out[v.offset + r * cols + c]! - m;
      }
    }
    return out;
  };
  const cm = centred(train.grads, train.views), ch = centred(head.set.grads, head.set.views);
  const want = Math.sqrt([...cm, ...ch].reduce((a, x) => a + x * x, 0));
  t.ok(want < stats.l2Norm, 'centralization changed the norm');
  const fx = await head.updateWithModel(optimizer, plan({ clipNorm: 0.1, centralize: 'all' }), 1e-3);
  t.ok(fx.model.centralized > 0 && fx.head.centralized > 0, `both sets centralized (${fx.model.centralized}, ${fx.head.centralized} tensors)`);
  t.ok(close(fx.model.normBeforeClip, want, 1e-5) && close(fx.head.normBeforeClip, want, 1e-5), `the clip's norm ${fx.model.normBeforeClip} is the fp64 norm after centralization ${want}`);
});

t.test('the Trainer reports the joint norm of the rm step as grad_norm', async (t) => {
  const items = Array.from({ length: 2 }, (_, i) => pair(microConfig.vocabSize, 5, 4 + i, 6 - i, 90 + i));
  // the step's reduced gradients, by hand: the same model, head and pairs
  const model = await Model.create(microConfig, { seed: 5 });
  const config = trainConfig(t.testdir(), { max_steps: 1, learning_rate: 1e-3, max_grad_norm: 0.05 });
  const head = new RewardHead(microConfig.hiddenSize, 42, config);
  await model.zeroGrad();
  await head.step(model, singleProcessRuntime(), items, 1, 1);
  const want = fp64Norm(model.trainable.grads, head.set.grads);
  const fresh = await Model.create(microConfig, { seed: 5 });
  const steps: StepInfo[] = [];
  await new Trainer({
    model: fresh, runtime: singleProcessRuntime(), data: replicaData(items, { seed: 1, dp: 1, dpRank: 0, batch: 2, shuffle: false }), config,
    policy: defaultPolicyConfig, logger: createLogger('silent'), hooks: { reportStep: (s) => steps.push(s) }, rm: new RewardHead(microConfig.hiddenSize, 42, config),
  }).run();
  t.ok(close(steps[0]!.stats.grad_norm, want, 1e-5), `grad_norm ${steps[0]!.stats.grad_norm} is the fp64 norm over model + head ${want} (model alone ${fp64Norm(model.trainable.grads).toFixed(5)})`);
});
