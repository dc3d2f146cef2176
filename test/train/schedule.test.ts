// LR schedules with Hugging Face semantics: values at the warmup boundary, the end, the middle of
// the cosine; warmup_steps vs warmup_ratio; the total from max_steps or from epochs.
import t from 'tap';
import { lrLambda, scheduleOf, scheduledLr, totalStepsOf, warmupStepsOf } from '../../src/train/schedule.js';


t.test('linear: ramps over warmup, then falls to 0 at the last step', async (t) => {
  const s = { type: 'linear' as const, learningRate: 1, totalSteps: 10, warmupSteps: 2 };
  t.same([1, 2, 3, 4, 10, 11].map((k) => scheduledLr(s, k)), [0, 0.5, 1, 0.875, 0.125, 0], 'HF: step k uses lambda(k - 1)');
  t.equal(lrLambda('linear', 10, 10, 2), 0);
  t.equal(lrLambda('linear', 0, 10, 0), 1, 'no warmup: full LR at once');
});

t.test('cosine: half a cycle after warmup', async (t) => {
  const s = { type: 'cosine' as const, learningRate: 2, totalSteps: 12, warmupSteps: 2 };
  t.equal(scheduledLr(s, 1), 0);
  t.equal(scheduledLr(s, 2), 1);
  t.equal(scheduledLr(s, 3), 2, 'peak right after warmup');
  const mid = scheduledLr(s, 8); // done = 7: progress 0.5
  t.ok(Math.abs(mid - 1) < 1e-12, `half the peak mid-way (${mid})`);
  t.ok(Math.abs(lrLambda('cosine', 12, 12, 2)) < 1e-15, 'zero at the end');
});

t.test('constant ignores warmup; constant_with_warmup ramps then holds', async (t) => {
  t.equal(lrLambda('constant', 0, 10, 5), 1);
  t.same([0, 1, 2, 3, 9].map((d) => lrLambda('constant_with_warmup', d, 10, 3)), [0, 1 / 3, 2 / 3, 1, 1]);
});

t.test('warmup steps win when > 0; the ratio rounds up', async (t) => {
  t.equal(warmupStepsOf(100, 7, 0.5), 7);
  t.equal(warmupStepsOf(100, 0, 0.1), 10);
  t.equal(warmupStepsOf(101, 0, 0.1), 11, 'ceil(10.1)');
  t.equal(warmupStepsOf(100, 0, 0), 0);
});

t.test('total steps: max_steps, else ceil(epochs x batches / accumulation)', async (t) => {
  t.equal(totalStepsOf({ maxSteps: 5, epochs: 3, batchesPerEpoch: 100, accumulation: 4 }), 5);
  t.equal(totalStepsOf({ maxSteps: -1, epochs: 3, batchesPerEpoch: 10, accumulation: 4 }), 8, 'ceil(30 / 4)');
  t.equal(totalStepsOf({ maxSteps: -1, epochs: 0.5, batchesPerEpoch: 10, accumulation: 1 }), 5);
  t.equal(totalStepsOf({ maxSteps: -1, epochs: 0.01, batchesPerEpoch: 10, accumulation: 4 }), 1, 'at least one step');
  t.throws(() => totalStepsOf({ maxSteps: -1, epochs: 1, batchesPerEpoch: 0, accumulation: 1 }));
  const s = scheduleOf({ lr_scheduler_type: 'constant', learning_rate: 1e-3, max_steps: -1, num_train_epochs: 2, gradient_accumulation_steps: 2, warmup_steps: 3, warmup_ratio: 0 }, 9);
  t.same(s, { type: 'constant', learningRate: 1e-3, totalSteps: 9, warmupSteps: 0 }, 'constant has no warmup phase');
  const w = scheduleOf({ lr_scheduler_type: 'linear', learning_rate: 1e-3, max_steps: 40, num_train_epochs: 2, gradient_accumulation_steps: 1, warmup_steps: 0, warmup_ratio: 0.05 }, 9);
  t.equal(w.warmupSteps, 2);
});
