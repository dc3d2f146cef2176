// Stage rm through the Trainer: the pairwise loss falls and accuracy / chosen_score /
// rejected_score are reported every step, value_head.safetensors (LLaMA-Factory's tensor names
// and shapes) lands in each checkpoint and in output_dir, and a run stopped after a checkpoint and
// resumed from it ends with the same model and value head bits as an uninterrupted one; a bf16
// run tracks the fp32 one.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Model } from '../../src/engine/model/index.js';
import { readSafetensors } from '../../src/engine/safetensors.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { latestValidCheckpoint } from '../../src/train/checkpoint.js';
import { replicaData } from '../../src/train/loop/replicaData.js';
import { RewardHead, VALUE_HEAD_FILE } from '../../src/train/loop/rewardHead.js';
import { Trainer, type StepInfo } from '../../src/train/loop/Trainer.js';
import { defaultPolicyConfig } from '../../src/statecharts/policyConfig.js';
import { createLogger } from '../../src/util/Logger.js';
import { pair } from './helpers/preferenceFixtures.js';
import { microConfig, trainConfig } from './helpers/trainFixtures.js';

const items = Array.from({ length: 4 }, (_, i) => pair(microConfig.vocabSize, 5, 4 + i, 6 - i, 50 + i));

async function run(dir: string, o: { stopAfter?: number; resume?: boolean; bf16?: boolean } = {}) {
  const model = await Model.create(microConfig, { seed: 5, bf16: o.bf16 });
  const config = trainConfig(dir, { max_steps: 8, save_steps: 4, learning_rate: 1e-2 });
  const rm = new RewardHead(microConfig.hiddenSize, 42, config);
  const steps: StepInfo[] = [];
  const trainer = new Trainer({
    model,
    runtime: singleProcessRuntime(),
    data: replicaData(items, { seed: 1, dp: 1, dpRank: 0, batch: 2 }),
    config,
    policy: defaultPolicyConfig,
    logger: createLogger('silent'),
    hooks: { reportStep: (s) => steps.push(s) },
    rm,
    resumeFrom: o.resume ? await latestValidCheckpoint(dir) : null,
    stopAfter: o.stopAfter,
  });
  const r = await trainer.run();
  return { ...r, steps, head: Float32Array.from(rm.set.params) };
}

t.test('the Trainer trains a reward model, saves the value head, and resumes it bitwise', async (t) => {
  const dir = t.testdir();
  const full = await run(join(dir, 'full'));
  t.equal(full.steps.length, 8);
  for (const k of ['accuracy', 'chosen_score', 'rejected_score']) t.ok(full.steps.every((s) => Number.isFinite(s.stats[k])), `${k} reported every step`);
  const first = full.steps[0]!, last = full.steps.at(-1)!;
  t.ok(last.loss < first.loss, `loss falls: ${first.loss.toFixed(4)} -> ${last.loss.toFixed(4)}`);
  t.ok(last.stats.chosen_score! > last.stats.rejected_score!, `chosen scores above rejected: ${last.stats.chosen_score} > ${last.stats.rejected_score}`);
  for (const f of [join(dir, 'full', 'checkpoint-4', VALUE_HEAD_FILE), join(dir, 'full', VALUE_HEAD_FILE)]) {
    t.ok(existsSync(f), `${f} written`);
    const { tensors } = await readSafetensors(f);
    t.same([...tensors.keys()].sort(), ['v_head.summary.bias', 'v_head.summary.weight']);
    t.same([...tensors.get('v_head.summary.weight')!.shape], [1, microConfig.hiddenSize]);
    t.same([...tensors.get('v_head.summary.bias')!.shape], [1]);
  }
  const saved = (await readSafetensors(join(dir, 'full', VALUE_HEAD_FILE))).tensors.get('v_head.summary.weight')!.data;
  t.same([...saved], [...full.head.subarray(0, microConfig.hiddenSize)], 'output_dir holds the final head');

  const part = join(dir, 'part');
  await run(part, { stopAfter: 6 });
  const resumed = await run(part, { resume: true });
  t.equal(resumed.steps[0]!.step, 5, 'resumed after checkpoint-4');
  t.equal(resumed.finalHash, full.finalHash, 'the model ends with the same bits');
  t.equal(Buffer.compare(Buffer.from(resumed.head.buffer), Buffer.from(full.head.buffer)), 0, 'the value head ends with the same bits');
  t.same(resumed.steps.map((s) => s.loss), full.steps.slice(4).map((s) => s.loss), 'the resumed steps repeat the uninterrupted losses');
});

t.test('a bf16 reward model (bf16 weights, fp32 head and masters) tracks the fp32 run', async (t) => {
  const f = await run(t.testdir());
  const b = await run(t.testdir(), { bf16: true });
  const worst = Math.max(...b.steps.map((s, i) => Math.abs(s.loss - f.steps[i]!.loss)));
  t.ok(worst < 0.02, `bf16 losses within 0.02 of fp32 at every step (worst ${worst.toFixed(4)}; ${b.steps.map((s) => s.loss.toFixed(3)).join(' ')})`);
  t.ok(b.steps.at(-1)!.loss < b.steps[0]!.loss, 'the bf16 loss falls');
});
