// The vanishing-gradient switch (issue 5's acceptance): gradient_policy.loss_scale_schedule
// scales the loss by a tiny factor for a stretch of steps, the policy enters
// vanishing-intervention and leaves it (with hysteresis) when the scale is lifted. On one process
// through the loop; and as a real 2-rank job (coordinator, node agent, rank processes, Gloo)
// whose metrics.jsonl shows the entry and the exit and whose replicas end bitwise identical.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { Trainer, type StepInfo } from '../../src/train/loop/index.js';
import { scheduledLr } from '../../src/train/schedule.js';
import { createLogger } from '../../src/util/Logger.js';
import { runCoordinatedJob } from './helpers/coordinatedJob.js';
import { microModel, policy, progressionData, standInData, trainConfig, writeMicroModelDir } from './helpers/trainFixtures.js';

/** [state, first step, last step] runs of a state sequence */
function runs(states: string[]): [string, number, number][] {
  const out: [string, number, number][] = [];
  states.forEach((s, i) => {
    const last = out[out.length - 1];
    if (last && last[0] === s) last[2] = i + 1;
    else out.push([s, i + 1, i + 1]);
  });
  return out;
}

t.test('one process: the switch drives the policy into vanishing-intervention and out again', async (t) => {
  const model = await microModel(4);
  const steps: StepInfo[] = [];
  const transitions: { step: number; from: string; to: string }[] = [];
  await new Trainer({
    model, runtime: singleProcessRuntime(), data: standInData(progressionData({ count: 6, len: 64 })), logger: createLogger('silent'), policy: policy(),
    config: trainConfig(t.testdir(), { max_steps: 20, warmup_steps: 2, lr_scheduler_type: 'linear', learning_rate: 5e-3 }),
    lossScale: '6-10:1e-6',
    hooks: { reportStep: (r) => steps.push(r), reportTransition: (x) => transitions.push(x) },
  }).run();
  const states = steps.map((s) => s.policyState);
  const r = runs(states);
  t.same(r.map((x) => x[0]), ['warmup', 'normal', 'vanishing-intervention', 'normal', 'late-stage'], 'phases: ' + JSON.stringify(r));
  t.same(r[2]!.slice(1), [6, 10], 'in vanishing-intervention exactly while the loss is scaled');
  t.ok(steps.slice(5, 10).every((s) => s.stats.grad_mean < 1e-4 && s.stats.lr > 0), 'grad_mean below the threshold, updates still applied');
  t.ok(steps[5]!.stats.interventions === 1 && steps[9]!.stats.interventions === 5, 'one intervention per vanishing step');
  const sched = { type: 'linear' as const, learningRate: 5e-3, totalSteps: 20, warmupSteps: 2 };
  const boosts = steps.map((s) => s.stats.lr / scheduledLr(sched, s.step));
  const err = Math.max(...boosts.slice(5, 10).map((b) => Math.abs(b - 1.2)), ...boosts.slice(10, 19).map((b) => Math.abs(b - 1)));
  t.ok(err < 1e-12, `LR = schedule x 1.2 while vanishing, x 1 after, never compounding (max error ${err})`);
  t.same(transitions.map((x) => [x.step, x.from, x.to]), [[3, 'warmup', 'normal'], [6, 'normal', 'vanishing-intervention'], [11, 'vanishing-intervention', 'normal'], [19, 'normal', 'late-stage']]);
});

t.test('a real 2-rank job enters and leaves vanishing-intervention; replicas stay bitwise identical', async (t) => {
  const dir = t.testdir();
  // a small llama on the byte vocabulary (the recall task's tokens are bytes)
  const modelDir = writeMicroModelDir(dir, { vocab_size: 256 });
  const yaml = [
    `model_name_or_path: ${modelDir}`, 'stage: sft', 'finetuning_type: full', 'dataset: builtin:recall', 'cutoff_len: 128', 'max_samples: 64',
    `output_dir: ${dir}`, 'logging_steps: 1', 'save_steps: 8', 'max_steps: 16', 'learning_rate: 5.0e-3', 'lr_scheduler_type: linear', 'warmup_steps: 2',
    'sequence_parallel_size: 1', 'gradient_policy:', '  loss_scale_schedule: "5-9:1.0e-6"',
  ].join('\n');
  const { result, metrics } = await runCoordinatedJob('policy', yaml, 2);
  t.equal(result.ok, true, String(result.reason));
  t.equal(result.lastStep, 16);
  t.equal(result.finalHashes.length, 2);
  t.equal(result.finalHashes[0], result.finalHashes[1], 'both data-parallel replicas end with the same weights (sha256)');
  t.same(metrics.map((m) => m.step), Array.from({ length: 16 }, (_, i) => i + 1));
  const r = runs(metrics.map((m) => m.policy_state));
  t.ok(r.some((x) => x[0] === 'vanishing-intervention' && x[1] === 5), 'metrics.jsonl shows entry at step 5: ' + JSON.stringify(r));
  const v = r.find((x) => x[0] === 'vanishing-intervention');
  t.ok(v && r.indexOf(v) + 1 < r.length && r[r.indexOf(v) + 1]![0] === 'normal', 'and the exit back to normal');
  for (const k of ['loss', 'tokens', 'lr', 'grad_mean', 'grad_norm', 'max_abs_grad', 'nonfinite', 'policy_state', 'interventions', 'step_ms', 'tokens_per_s', 'restarts']) {
    t.ok(k in metrics[0]!, `metrics.jsonl has ${k}`);
  }
  const events = readFileSync(join(dir, 'events.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const tr = events.filter((e) => e.type === 'rank.policy.transition' && e.to === 'vanishing-intervention');
  t.same(tr.map((e) => e.rank).sort(), [0, 1], 'each rank reports the transition');
});
