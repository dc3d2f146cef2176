// Stage dpo: the sigmoid loss against hand-computed values, the gradient dpoStep accumulates
// against central finite differences of the loss itself (log-probs from real forwards of a
// small Llama), the reference left untouched, and a few Trainer steps that raise the margin.
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { dpoPairTerms, dpoStep, type PreferenceItem, type ReferenceModel } from '../../src/train/loop/dpo.js';
import { Trainer, type StepInfo } from '../../src/train/loop/Trainer.js';
import { replicaData } from '../../src/train/loop/replicaData.js';
import { defaultPolicyConfig } from '../../src/statecharts/policyConfig.js';
import { createLogger } from '../../src/util/Logger.js';
import { lcg, logProb, pair } from './helpers/preferenceFixtures.js';
import { microConfig, trainConfig } from './helpers/trainFixtures.js';

const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-300);

t.test('the sigmoid DPO loss and its derivatives equal hand-computed values', async (t) => {
  // z = 0.1 * ((-10 + 11) - (-12 + 11)) = 0.2; L = log(1 + e^-0.2); dL/dπc = -β σ(-0.2)
  let r = dpoPairTerms(-10, -12, -11, -11, 0.1);
  t.ok(close(r.loss, 0.5981388693815918, 1e-14), `loss ${r.loss}`);
  t.ok(close(r.dChosen, -0.04501660026875222, 1e-14), `dL/dπc ${r.dChosen}`);
  t.ok(close(r.dRejected, 0.04501660026875222, 1e-14), `dL/dπr ${r.dRejected}`);
  t.ok(close(r.rewardChosen, 0.1, 1e-12) && close(r.rewardRejected, -0.1, 1e-12), `rewards ${r.rewardChosen}, ${r.rewardRejected}`);
  // policy equal to the reference: z = 0, L = log 2, dL/dπ = ∓β/2
  r = dpoPairTerms(-5, -3, -5, -3, 0.5);
  t.equal(r.loss, Math.LN2);
  t.equal(r.dChosen, -0.25);
  t.equal(r.dRejected, 0.25);
  // far on either side: no overflow, L ≈ e^-30 and ≈ 30
  r = dpoPairTerms(-100, -400, -120, -120, 0.1);
  t.ok(close(r.loss, Math.exp(-30), 1e-9), `z = 30: loss ${r.loss} vs e^-30 ${Math.exp(-30)}`);
  t.ok(close(r.rewardChosen, 2, 1e-12) && close(r.rewardRejected, -28, 1e-12));
  r = dpoPairTerms(-400, -100, -120, -120, 0.1);
  t.ok(close(r.loss, 30 + Math.exp(-30), 1e-15), `z = -30: loss ${r.loss}`);
  t.ok(close(r.dChosen, -0.1, 1e-12), `saturated gradient ${r.dChosen}`);
});

/** The step's loss straight from the definition: mean over pairs of -log σ(β(Δc - Δr)). */
async function dpoLoss(policy: Model, ref: Model, items: PreferenceItem[], beta: number): Promise<number> {
  let l = 0;
  for (const p of items) {
    const z = beta * ((await logProb(policy, p.chosen)) - (await logProb(ref, p.chosen)) - ((await logProb(policy, p.rejected)) - (await logProb(ref, p.rejected))));
    l += Math.log1p(Math.exp(-z));
  }
  return l / items.length;
}

t.test('dpoStep accumulates the gradient of the DPO loss (finite differences) and leaves the reference alone', async (t) => {
  const cfg = { ...microConfig, initializerRange: 0.1 };
  const policy = await Model.create(cfg, { seed: 1 });
  const refModel = await Model.create(cfg, { seed: 2 });
  const refBefore = Float32Array.from(refModel.params);
  const items = [pair(cfg.vocabSize, 7, 5, 9, 1), pair(cfg.vocabSize, 4, 8, 3, 2)];
  const beta = 0.5;
  let entered = 0, exited = 0;
  const reference: ReferenceModel = { model: refModel, enter: () => entered++, exit: () => exited++ };
  await policy.zeroGrad();
  await refModel.zeroGrad();
  const r = await dpoStep({ model: policy, reference, runtime: singleProcessRuntime(), items, beta });
  t.equal(entered, 1, 'reference entered once');
  t.equal(exited, 1, 'reference exited once');
  t.equal(r.pairs, 2);
  t.equal(r.valid, 5 + 9 + 8 + 3, 'supervised tokens: every response token');
  const direct = await dpoLoss(policy, refModel, items, beta);
  t.ok(close(r.sums.loss / 2, direct, 1e-6), `step loss ${r.sums.loss / 2} equals the definition's ${direct}`);
  t.ok(Math.abs(r.sums.loss / 2 - Math.LN2) > 0.05, `different random models: the loss (${r.sums.loss / 2}) is away from the tie value log 2`);
  t.same([...refModel.params], [...refBefore], 'reference weights unchanged');
  t.ok(refModel.grads.every((g) => g === 0), 'reference gradients untouched');

  const eps = 1e-2;
  const rnd = lcg(5);
  let worst = 0;
  for (const v of policy.views) {
    const g = policy.grad(v.name);
    const p = policy.param(v.name);
    let gmax = 0, imax = 0;
    for (let i = 0; i < g.length; i++) if (Math.abs(g[i]!) > gmax) { gmax = Math.abs(g[i]!); imax = i; }
    const coords = new Set([imax, Math.floor(rnd() * g.length), Math.floor(rnd() * g.length)]);
    const lines: string[] = [];
    let ok = true;
    for (const i of coords) {
      const old = p[i]!;
      p[i] = old + eps;
      const lp = await dpoLoss(policy, refModel, items, beta);
      p[i] = old - eps;
      const lm = await dpoLoss(policy, refModel, items, beta);
      p[i] = old;
      const fd = (lp - lm) / (2 * eps);
      const tol = 2e-5 + 2e-2 * gmax;
      const diff = Math.abs(fd - g[i]!);
      worst = Math.max(worst, diff / tol);
      if (diff > tol) ok = false;
      lines.push(`[${i}] analytic ${g[i]!.toExponential(4)} fd ${fd.toExponential(4)}`);
    }
    t.ok(ok, `${v.name} (max |g| ${gmax.toExponential(2)}): ${lines.join('; ')}`);
  }
  t.comment(`worst |diff|/tol = ${worst.toFixed(3)}`);
  t.ok(policy.grads.some((g) => g !== 0), 'the policy got gradients');
});

t.test('against a copy of itself the loss is log 2 and every reward is 0; scale multiplies the gradient', async (t) => {
  const policy = await Model.create(microConfig, { seed: 3 });
  const copy = await Model.create(microConfig, { seed: 3 });
  const items = [pair(microConfig.vocabSize, 5, 6, 4, 9)];
  await policy.zeroGrad();
  const r = await dpoStep({ model: policy, reference: { model: copy }, runtime: singleProcessRuntime(), items, beta: 0.1 });
  t.ok(close(r.sums.loss, Math.LN2, 1e-7), `loss ${r.sums.loss}`);
  t.ok(Math.abs(r.sums.rewardChosen) < 1e-6 && Math.abs(r.sums.rewardRejected) < 1e-6, `rewards ${r.sums.rewardChosen}, ${r.sums.rewardRejected}`);
  t.equal(r.sums.accuracy, 0, 'a tie is not counted as accurate');
  const g1 = Float32Array.from(policy.grads);
  await policy.zeroGrad();
  await dpoStep({ model: policy, reference: { model: copy }, runtime: singleProcessRuntime(), items, beta: 0.1, scale: 4 });
  let maxRel = 0;
  const gmax = g1.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
  for (let i = 0; i < g1.length; i++) maxRel = Math.max(maxRel, Math.abs(policy.grads[i]! - 4 * g1[i]!) / gmax);
  t.ok(maxRel < 1e-6, `scale 4 gives 4x the gradient (max difference ${maxRel.toExponential(2)} of max |g|)`);
});

t.test('Trainer with dpo: the margin grows, rewards metrics are reported, the reference stays frozen', async (t) => {
  const policy = await Model.create(microConfig, { seed: 4 });
  const ref = await Model.create(microConfig, { seed: 4 });
  const refBefore = Float32Array.from(ref.params);
  const items = Array.from({ length: 4 }, (_, i) => pair(microConfig.vocabSize, 6, 5 + i, 7 - i, 20 + i));
  const steps: StepInfo[] = [];
  const trainer = new Trainer({
    model: policy,
    runtime: singleProcessRuntime(),
    data: replicaData(items, { seed: 1, dp: 1, dpRank: 0, batch: 2 }),
    config: trainConfig(t.testdir(), { max_steps: 12, learning_rate: 1e-2, lr_scheduler_type: 'constant', warmup_steps: 0 }),
    policy: defaultPolicyConfig,
    logger: createLogger('silent'),
    hooks: { reportStep: (s) => steps.push(s) },
    dpo: { beta: 0.5, reference: { model: ref } },
  });
  await trainer.run();
  t.equal(steps.length, 12);
  for (const k of ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected']) {
    t.ok(steps.every((s) => Number.isFinite(s.stats[k])), `${k} reported every step`);
  }
  const first = steps[0]!, last = steps.at(-1)!;
  t.ok(close(first.loss, Math.LN2, 1e-6), `step 1 against the initial weights: loss log 2 (${first.loss})`);
  t.ok(last.loss < 0.5 * Math.LN2, `loss falls: ${first.loss.toFixed(4)} -> ${last.loss.toFixed(4)}`);
  t.ok(last.stats['rewards/margins']! > 0.5, `margin grows to ${last.stats['rewards/margins']}`);
  t.equal(last.stats['rewards/accuracies'], 1, 'chosen beats rejected on every pair');
  t.ok(close(last.stats['rewards/margins']!, last.stats['rewards/chosen']! - last.stats['rewards/rejected']!, 1e-9), 'margin = chosen - rejected');
  t.same([...ref.params], [...refBefore], 'reference weights unchanged');
});

t.test('LoRA DPO: the reference is the base (adapters off), adapter gradients match finite differences, dropout keys replay', async (t) => {
  const cfg = { ...microConfig, initializerRange: 0.1 };
  const model = await Model.create(cfg, { seed: 6 });
  await model.attachLora({ rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'down_proj'], seed: 3 });
  const lora = model.trainable;
  // B starts at 0 (policy = base = reference): move it so the loss is not at its tie value
  const r0 = lcg(8);
  for (const v of lora.views) if (v.name.includes('lora_B')) for (let i = 0; i < v.numel; i++) lora.params[v.offset + i] = (r0() - 0.5) * 0.2;
  const baseBefore = Float32Array.from(model.params);
  const reference: ReferenceModel = { model, enter: () => model.setAdaptersEnabled(false), exit: () => model.setAdaptersEnabled(true) };
  const items = [pair(cfg.vocabSize, 6, 7, 5, 31), pair(cfg.vocabSize, 5, 4, 8, 32)];
  const beta = 0.5;
  await model.zeroGrad();
  const r = await dpoStep({ model, reference, runtime: singleProcessRuntime(), items, beta });
  t.equal(model.adaptersEnabled, true, 'adapters back on after the reference pass');
  // the same loss from the definition, reference = the same model with adapters off
  const loss = async () => {
    let l = 0;
    for (const p of items) {
      const pc = await logProb(model, p.chosen), pr = await logProb(model, p.rejected);
      model.setAdaptersEnabled(false);
      const rc = await logProb(model, p.chosen), rr = await logProb(model, p.rejected);
      model.setAdaptersEnabled(true);
      l += Math.log1p(Math.exp(-beta * (pc - rc - (pr - rr))));
    }
    return l / items.length;
  };
  const direct = await loss();
  t.ok(close(r.sums.loss / 2, direct, 1e-6), `step loss ${r.sums.loss / 2} equals the definition's ${direct}`);
  t.ok(Math.abs(direct - Math.LN2) > 1e-3, `adapters move the policy off the reference (loss ${direct})`);
  t.ok(model.grads.every((g) => g === 0), 'the frozen base gets no gradient');
  const eps = 1e-2;
  let worst = 0;
  for (const v of lora.views) {
    const g = lora.grads.subarray(v.offset, v.offset + v.numel);
    let gmax = 0, imax = 0;
    for (let i = 0; i < g.length; i++) if (Math.abs(g[i]!) > gmax) { gmax = Math.abs(g[i]!); imax = i; }
    const i = imax;
    const old = lora.params[v.offset + i]!;
    lora.params[v.offset + i] = old + eps;
    const lp = await loss();
    lora.params[v.offset + i] = old - eps;
    const lm = await loss();
    lora.params[v.offset + i] = old;
    const fd = (lp - lm) / (2 * eps);
    const tol = 2e-5 + 2e-2 * gmax;
    worst = Math.max(worst, Math.abs(fd - g[i]!) / tol);
    t.ok(Math.abs(fd - g[i]!) <= tol, `${v.name}[${i}]: analytic ${g[i]!.toExponential(4)} fd ${fd.toExponential(4)}`);
  }
  t.comment(`worst |diff|/tol = ${worst.toFixed(3)}`);
  t.same([...model.params], [...baseBefore], 'base weights unchanged');
});

t.test('LoRA DPO with dropout: the same keys give the same gradient bits, other keys another gradient', async (t) => {
  const model = await Model.create(microConfig, { seed: 7 });
  await model.attachLora({ rank: 4, dropout: 0.3, seed: 5 });
  const lora = model.trainable;
  const r0 = lcg(9);
  for (const v of lora.views) if (v.name.includes('lora_B')) for (let i = 0; i < v.numel; i++) lora.params[v.offset + i] = (r0() - 0.5) * 0.2;
  const reference: ReferenceModel = { model, enter: () => model.setAdaptersEnabled(false), exit: () => model.setAdaptersEnabled(true) };
  const items = [pair(microConfig.vocabSize, 6, 7, 5, 41), pair(microConfig.vocabSize, 5, 4, 8, 42)];
  const run = async (key: (i: number) => number) => {
    await model.zeroGrad();
    const r = await dpoStep({ model, reference, runtime: singleProcessRuntime(), items, beta: 0.5, dropoutKey: key });
    return { loss: r.sums.loss, grads: Float32Array.from(lora.grads) };
  };
  const a = await run((i) => 1000 + i);
  const b = await run((i) => 1000 + i);
  const c = await run((i) => 2000 + i);
  t.equal(a.loss, b.loss, 'same keys: same loss');
  t.same([...a.grads], [...b.grads], 'same keys: same gradient bits');
  t.not(a.loss, c.loss, 'other keys: other masks');
});
