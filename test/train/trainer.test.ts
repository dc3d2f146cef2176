// The training loop on one process: the loss falls on a small PT job, gradient accumulation
// matches a bigger micro-batch, the policy's plan is applied (noise identical on two replicas,
// centralization scope, clip), a non-finite step leaves the weights unchanged, and the patience
// escalates with a coded error.
import t from 'tap';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { Trainer, applyPlan, lossScaleAt, parseLossScale, spansOf, weightsHash, type StepInfo } from '../../src/train/loop/index.js';
import { gradStats } from '../../src/engine/ops/optim.js';
import { planFor } from '../../src/statecharts/trainingPolicy.js';
import { createLogger } from '../../src/util/Logger.js';
import { microModel, policy, progressionData, standInData, trainConfig } from './helpers/trainFixtures.js';

const logger = createLogger('silent');
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

t.test('the loss falls clearly on a small PT job', async (t) => {
  const model = await microModel(1);
  const data = standInData(progressionData({ count: 8, len: 96 }));
  const steps: StepInfo[] = [];
  const trainer = new Trainer({
    model, runtime: singleProcessRuntime(), data, logger, policy: policy(),
    config: trainConfig(t.testdir(), { max_steps: 30, gradient_accumulation_steps: 2, lr_scheduler_type: 'cosine', warmup_steps: 3, learning_rate: 2e-2 }),
    hooks: { reportStep: (r) => steps.push(r) },
  });
  const r = await trainer.run();
  t.equal(r.step, 30);
  t.same(steps.map((s) => s.step), Array.from({ length: 30 }, (_, i) => i + 1), 'one report per optimizer step');
  const first = steps[0]!.loss;
  const last = steps.slice(-3).reduce((a, s) => a + s.loss, 0) / 3;
  t.ok(last < 0.6 * first, `mean loss of the last 3 steps ${last.toFixed(4)} < 0.6 x the first ${first.toFixed(4)}`);
  t.equal(steps[0]!.stats.lr, 0, 'HF warmup: the first update uses LR 0');
  t.equal(steps[0]!.policyState, 'warmup');
  t.ok(steps.every((s) => s.planDigest.length === 16 && s.tokens > 0 && s.stats.tokens_per_s > 0));
  t.ok(steps.some((s) => s.policyState === 'late-stage'), 'the last 10% of steps are late-stage');
});

t.test('gradient accumulation over 2 micro-batches equals one micro-batch of 2 sequences', async (t) => {
  const items = progressionData({ count: 4, len: 64 });
  const run = async (gas: number, batch: number) => {
    const model = await microModel(3);
    const losses: number[] = [];
    await new Trainer({
      model, runtime: singleProcessRuntime(), data: standInData(items, batch), logger, policy: policy(),
      config: trainConfig(t.testdir(), { max_steps: 3, gradient_accumulation_steps: gas, per_device_train_batch_size: batch }),
      hooks: { reportStep: (r) => losses.push(r.loss) },
    }).run();
    return { losses, hash: weightsHash(model) };
  };
  const a = await run(2, 1);
  const b = await run(1, 2);
  const d = Math.max(...a.losses.map((l, i) => Math.abs(l - b.losses[i]!) / Math.abs(b.losses[i]!)));
  t.ok(d < 1e-6, `losses agree (max relative difference ${d})`);
  t.equal(a.hash, b.hash, 'same weights bit for bit');
});

t.test('noise is identical on two replicas, keyed by step and tensor; centralization follows its scope', async (t) => {
  const seq = progressionData({ count: 1, len: 64 })[0]!;
  const replica = async () => {
    const m = await microModel(5);
    await m.forward({ tokens: seq.tokens, labels: seq.labels, docLens: seq.docLens });
    await m.backward();
    return m;
  };
  const [a, b, plain] = [await replica(), await replica(), await replica()];
  const stats = await gradStats(a.grads, spansOf(a));
  const ev = { type: 'policy.step' as const, step: 7, totalSteps: 100, warmupSteps: 0, maxGradNorm: 0, seed: 42, stats };
  const noisy = { ...planFor(policy(), ev, 'vanishing-intervention'), centralize: 'none' as const };
  await applyPlan(a, noisy, stats);
  await applyPlan(b, noisy, stats);
  t.equal(maxDiff(a.grads, b.grads), 0, 'bitwise identical after noise on both replicas');
  const d = maxDiff(a.grads, plain.grads);
  t.ok(d > 1e-5 && d < 1e-2, `the noise changed the gradients (max |diff| ${d})`);

  const c = await replica();
  const cen = { ...planFor(policy(), ev, 'normal'), centralize: 'linear' as const };
  await applyPlan(c, cen, stats);
  const q = c.grad('model.layers.0.self_attn.q_proj.weight');
  const cols = c.view('model.layers.0.self_attn.q_proj.weight').shape[1]!;
  let worst = 0;
  for (let r = 0; r < q.length / cols; r++) worst = Math.max(worst, Math.abs(q.subarray(r * cols, (r + 1) * cols).reduce((s, x) => s + x, 0) / cols));
  t.ok(worst < 1e-9, `q_proj rows have zero mean (max |row mean| ${worst})`);
  t.equal(maxDiff(c.grad('model.embed_tokens.weight'), plain.grad('model.embed_tokens.weight')), 0, 'linear scope leaves the embedding alone');

  const e = await replica();
  const clip = { ...planFor(policy(), { ...ev, maxGradNorm: 0.01 }, 'normal'), centralize: 'none' as const };
  const fx = await applyPlan(e, clip, stats);
  const after = (await gradStats(e.grads, spansOf(e))).l2Norm;
  t.ok(stats.l2Norm > 0.01 && Math.abs(after - 0.01) < 1e-4, `clipped to max_grad_norm (norm ${stats.l2Norm} -> ${after}, factor ${fx.clipFactor})`);
});

t.test('a non-finite step skips the update; the patience escalates with a coded error', async (t) => {
  const model = await microModel(2);
  const hashes = new Map<number, string>();
  const steps: StepInfo[] = [];
  await new Trainer({
    model, runtime: singleProcessRuntime(), data: standInData(progressionData({ count: 4, len: 64 })), logger, policy: policy(),
    config: trainConfig(t.testdir(), { max_steps: 4 }),
    gradientHook: (g, step) => { if (step === 3) g[5] = NaN; },
    hooks: { reportStep: (r) => { steps.push(r); hashes.set(r.step, weightsHash(model)); } },
  }).run();
  t.equal(hashes.get(3), hashes.get(2), 'weights after the NaN step equal those before it');
  t.not(hashes.get(4), hashes.get(3), 'training continues after the skipped step');
  t.equal(steps[2]!.stats.nonfinite, 1);
  t.equal(steps[2]!.stats.lr, 0, 'no LR applied on the skipped step');

  const m2 = await microModel(2);
  const trainer = new Trainer({
    model: m2, runtime: singleProcessRuntime(), data: standInData(progressionData({ count: 4, len: 64 })), logger, policy: policy({ nonfinitePatience: 3 }),
    config: trainConfig(t.testdir(), { max_steps: 10 }),
    gradientHook: (g, step) => { if (step >= 2) g[0] = Infinity; },
  });
  await t.rejects(trainer.run(), { code: 'ERR_POLICY_ESCALATE', step: 4 }, 'three non-finite steps in a row (2, 3, 4) escalate');
});

t.test('the loss-scale switch parses ranges and refuses malformed ones', async (t) => {
  const r = parseLossScale('5-7:1e-6, 10-10:2');
  t.same(r, [{ from: 5, to: 7, factor: 1e-6 }, { from: 10, to: 10, factor: 2 }]);
  t.same([4, 5, 7, 8, 10].map((s) => lossScaleAt(r, s)), [1, 1e-6, 1e-6, 1, 2]);
  t.same(parseLossScale(null), []);
  for (const bad of ['5-3:1', '5:1', '1-2:0', '1-2:-1', 'x']) t.throws(() => parseLossScale(bad), { code: 'ERR_CONFIG' }, bad);
});
