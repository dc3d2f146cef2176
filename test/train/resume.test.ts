// Exact resume: a run interrupted after a checkpoint and continued from it ends with weights
// bitwise identical to the uninterrupted run's, and reports the same losses, plan digests and
// policy states on every step after the checkpoint (the policy snapshot and the AdamW state
// travel in the checkpoint; the noise is keyed by seed, step and tensor). The loss-scale switch
// sends the run through vanishing-intervention (noise, scaling, LR boost) across the checkpoint.
import t from 'tap';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { Trainer, type StepInfo } from '../../src/train/loop/index.js';
import { latestValidCheckpoint } from '../../src/train/checkpoint.js';
import { createLogger } from '../../src/util/Logger.js';
import { microModel, policy, progressionData, standInData, trainConfig } from './helpers/trainFixtures.js';

const logger = createLogger('silent');
const items = progressionData({ count: 6, len: 80 });

async function run(outputDir: string, o: { stopAfter?: number; resume?: boolean }) {
  const model = await microModel(11);
  const steps: StepInfo[] = [];
  const resumeFrom = o.resume ? await latestValidCheckpoint(outputDir) : null;
  const trainer = new Trainer({
    model, runtime: singleProcessRuntime(), data: standInData(items), logger, policy: policy(),
    config: trainConfig(outputDir, { max_steps: 14, save_steps: 4, gradient_accumulation_steps: 2, lr_scheduler_type: 'linear', warmup_steps: 2, weight_decay: 0.1 }),
    lossScale: '5-7:1e-6',
    configHash: 'test',
    resumeFrom,
    stopAfter: o.stopAfter,
    hooks: { reportStep: (r) => steps.push(r) },
  });
  const r = await trainer.run();
  return { ...r, steps, resumeFrom };
}

t.test('interrupted after a checkpoint and resumed: bitwise the same weights and decisions', async (t) => {
  const ref = await run(t.testdir(), {});
  t.ok(ref.steps.some((s) => s.policyState === 'vanishing-intervention'), 'the run goes through vanishing-intervention: ' + ref.steps.map((s) => s.policyState).join(','));
  const dir = t.testdir();
  const first = await run(dir, { stopAfter: 7 });
  t.equal(first.step, 7);
  const second = await run(dir, { resume: true });
  t.match(String(second.resumeFrom), /checkpoint-4$/, 'resumed from the last checkpoint before the stop');
  t.equal(second.step, 14);
  t.equal(second.finalHash, ref.finalHash, 'final weights hash equals the uninterrupted run');
  const tail = ref.steps.slice(4);
  t.same(second.steps.map((s) => [s.step, s.loss, s.planDigest, s.policyState, s.stats.lr]), tail.map((s) => [s.step, s.loss, s.planDigest, s.policyState, s.stats.lr]), 'steps 5..14 report the same figures');
  t.ok(tail.some((s) => s.stats.interventions > 0));
});
