// Stage kto through the Trainer: with a frozen copy (full fine-tuning) or the adapters switched off
// (LoRA) as reference, in fp32 and bf16, step 1 sits at the tie value (the policy is the reference: every reward and
// the KL are 0), the loss falls, the desirable rewards rise above the undesirable ones, TRL's
// metrics are reported every step, the reference stays frozen, and a run stopped after a checkpoint
// and resumed from it ends with the same bits as an uninterrupted one (gradient accumulation 2).
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { latestValidCheckpoint } from '../../src/train/checkpoint.js';
import { KTO_METRICS, type KtoItem } from '../../src/train/loop/kto.js';
import { replicaData } from '../../src/train/loop/replicaData.js';
import { Trainer, type StepInfo } from '../../src/train/loop/Trainer.js';
import { defaultPolicyConfig } from '../../src/statecharts/policyConfig.js';
import { createLogger } from '../../src/util/Logger.js';
import { pair } from './helpers/preferenceFixtures.js';
import { microConfig, trainConfig } from './helpers/trainFixtures.js';

const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-300);
// 8 examples, every third undesirable; the KL sequence: the same prompt with another answer
const items: KtoItem[] = Array.from({ length: 8 }, (_, i) => {
  const p = pair(microConfig.vocabSize, 5, 4 + (i % 3), 6 - (i % 2), 70 + i);
  return { target: p.chosen, kl: p.rejected, desirable: i % 3 !== 1 };
});

async function run(dir: string, o: { stopAfter?: number; resume?: boolean; lora?: boolean; bf16?: boolean } = {}) {
  const model = await Model.create(microConfig, { seed: 5, bf16: o.bf16 });
  const ref = o.lora ? model : await Model.create(microConfig, { seed: 5, bf16: o.bf16 });
  if (o.lora) await model.attachLora({ rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'down_proj'], seed: 3 });
  const refBefore = Float32Array.from(ref.params);
  const config = trainConfig(dir, { max_steps: 8, save_steps: 4, learning_rate: o.lora ? 3e-2 : 1e-2, gradient_accumulation_steps: 2, lr_scheduler_type: 'constant', warmup_steps: 0 });
  const steps: StepInfo[] = [];
  const reference = o.lora ? { model, enter: () => model.setAdaptersEnabled(false), exit: () => model.setAdaptersEnabled(true) } : { model: ref };
  const trainer = new Trainer({
    model,
    runtime: singleProcessRuntime(),
    data: replicaData(items, { seed: 1, dp: 1, dpRank: 0, batch: 2 }),
    config,
    policy: defaultPolicyConfig,
    logger: createLogger('silent'),
    hooks: { reportStep: (s) => steps.push(s) },
    kto: { beta: 0.5, desirableWeight: 1, undesirableWeight: 1.5, ftx: 0, batch: 2, reference },
    resumeFrom: o.resume ? await latestValidCheckpoint(dir) : null,
    stopAfter: o.stopAfter,
  });
  const r = await trainer.run();
  return { ...r, steps, refUnchanged: ref.params.every((x, i) => x === refBefore[i]), adapters: model.adaptersEnabled };
}

for (const lora of [false, true]) {
  t.test(`${lora ? 'LoRA' : 'full'} KTO: the tie at step 1, the loss falls, the rewards part, the reference stays frozen`, async (t) => {
    const full = await run(t.testdir(), { lora });
    t.equal(full.steps.length, 8);
    for (const k of KTO_METRICS) t.ok(full.steps.every((s) => Number.isFinite(s.stats[k])), `${k} reported every step`);
    const first = full.steps[0]!, last = full.steps.at(-1)!;
    // step 1: r = 0, KL = 0 => each loss 1 − σ(0) = 0.5, weighted 1 / 1.5
    t.ok(Math.abs(first.stats['rewards/chosen']!) < 1e-6 && Math.abs(first.stats.kl!) < 1e-6, 'step 1: the policy is the reference');
    t.ok(first.loss > 0.45 && first.loss < 0.8, `step 1 loss at the tie value (${first.loss})`);
    t.ok(last.loss < first.loss - 0.02, `loss falls: ${full.steps.map((s) => s.loss.toFixed(4)).join(' -> ')}`);
    t.ok(last.stats['rewards/chosen']! > last.stats['rewards/rejected']!, `desirable rewards above undesirable: ${last.stats['rewards/chosen']} > ${last.stats['rewards/rejected']}`);
    t.ok(close(last.stats['rewards/margins']!, last.stats['rewards/chosen']! - last.stats['rewards/rejected']!, 1e-9), 'margin = chosen - rejected');
    t.ok(full.steps.every((s) => s.stats.kl! >= 0), 'the KL estimate is never negative');
    t.ok(full.refUnchanged, lora ? 'the base weights are unchanged' : 'the reference copy is unchanged');
    if (lora) t.equal(full.adapters, true, 'adapters back on after the reference passes');
  });
}

t.test('bf16 KTO (full and LoRA) tracks the fp32 run and its loss falls', async (t) => {
  for (const lora of [false, true]) {
    const f = await run(t.testdir(), { lora });
    const b = await run(t.testdir(), { lora, bf16: true });
    const worst = Math.max(...b.steps.map((s, i) => Math.abs(s.loss - f.steps[i]!.loss)));
    t.ok(worst < 0.02, `${lora ? 'LoRA' : 'full'}: bf16 losses within 0.02 of fp32 at every step (worst ${worst.toFixed(4)}; ${b.steps.map((s) => s.loss.toFixed(3)).join(' ')})`);
    t.ok(b.steps.at(-1)!.loss < b.steps[0]!.loss - 0.02, `${lora ? 'LoRA' : 'full'}: the bf16 loss falls`);
    t.ok(b.refUnchanged, 'the reference is unchanged');
  }
});

t.test('a KTO run stopped after a checkpoint and resumed ends with the same bits', async (t) => {
  const dir = t.testdir();
  const full = await run(`${dir}/full`);
  await run(`${dir}/part`, { stopAfter: 6 });
  const resumed = await run(`${dir}/part`, { resume: true });
  t.equal(resumed.steps[0]!.step, 5, 'resumed after checkpoint-4');
  t.equal(resumed.finalHash, full.finalHash, 'the model ends with the same bits');
  t.same(resumed.steps.map((s) => s.loss), full.steps.slice(4).map((s) => s.loss), 'the resumed steps repeat the uninterrupted losses');
  t.same(resumed.steps.map((s) => s.stats.kl), full.steps.slice(4).map((s) => s.stats.kl), 'and the KL estimates');
});
