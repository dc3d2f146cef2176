// The `train` workload in one process (world 1) with a fake rank context: model from a
// config-only directory (seeded init), the built-in recall task, reports through the context,
// eval_results.json, and automatic resume after a group restart (incarnation > 0) from the
// newest VALID checkpoint, skipping a corrupted one, to the same final weights.
import t from 'tap';
import { cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadJobConfig } from '../../src/config/loadJobConfig.js';
import { BUILTIN_TASKS, trainWorkload, resolveModelDir } from '../../src/train/trainWorkload.js';
import type { StepReport, WorkloadContext } from '../../src/train/Workload.js';
import { createLogger, type LogRecord } from '../../src/util/Logger.js';
import { DEFAULT_JOB_YAML } from '../../src/config/defaultJob.js';
import { recallTask } from '../../src/train/data/recallTask.js';
import { writeMicroModelDir } from './helpers/trainFixtures.js';

function setup(root: string) {
  return writeMicroModelDir(root, { vocab_size: 256 });
}

async function run(outputDir: string, modelDir: string, incarnation = 0, extra: string[] = [], logs: LogRecord[] = []) {
  const yaml = [
    `model_name_or_path: ${modelDir}`, 'stage: sft', 'finetuning_type: full', 'dataset: builtin:recall', 'cutoff_len: 100', 'max_samples: 16',
    `output_dir: ${outputDir}`, 'logging_steps: 1', 'save_steps: 2', 'max_steps: 6', 'learning_rate: 5.0e-3', 'warmup_steps: 1', ...extra,
  ].join('\n');
  const job = loadJobConfig({ configPath: 'w.yaml', configText: yaml, env: {} });
  const steps: StepReport[] = [];
  const checkpoints: string[] = [];
  const ctx: WorkloadContext = {
    rank: 0, world: 1, localRank: 0, localRanks: 1, incarnation, job,
    logger: createLogger('info', (r) => logs.push(r), 'rank0'), signal: new AbortController().signal,
    store: { set: async () => {}, get: async () => new Uint8Array(), wait: async () => {} },
    reportStep: (r) => steps.push(r), reportTransition: () => {}, reportCheckpoint: (c) => checkpoints.push(c.path), setPhase: () => {},
  };
  const result = await trainWorkload(ctx);
  return { result, steps, checkpoints, logs };
}

t.test('runs a job from a config-only model directory and reports through the context', async (t) => {
  const root = t.testdir();
  const modelDir = setup(root);
  const a = await run(join(root, 'a'), modelDir);
  t.equal(a.result.step, 6);
  t.match(a.result.finalHash, /^[0-9a-f]{64}$/);
  t.same(a.steps.map((s) => s.step), [1, 2, 3, 4, 5, 6]);
  const s = a.steps[2]!;
  for (const k of ['lr', 'grad_mean', 'grad_norm', 'max_abs_grad', 'nonfinite', 'interventions', 'tokens_per_s']) t.ok(k in (s.stats ?? {}), `stats has ${k}`);
  t.ok(s.tokens === 100 && s.planDigest.length === 16 && typeof s.stepMs === 'number');
  t.same(a.checkpoints.map((p) => p.split('/').pop()), ['checkpoint-2', 'checkpoint-4', 'checkpoint-6']);
  const ev = JSON.parse(readFileSync(join(root, 'a', 'eval_results.json'), 'utf8'));
  t.equal(ev.task, 'builtin:recall');
  t.ok(ev.before.examples === 64 && ev.after.examples === 64, 'held-out recall evaluated before and after');
  t.ok(a.logs.some((l) => /recall accuracy after training/.test(l.msg)));

  // a restarted group (incarnation 1) resumes from the newest valid checkpoint: 4 is corrupted, so 2
  const b = join(root, 'b');
  mkdirSync(b);
  cpSync(join(root, 'a', 'checkpoint-2'), join(b, 'checkpoint-2'), { recursive: true });
  cpSync(join(root, 'a', 'checkpoint-4'), join(b, 'checkpoint-4'), { recursive: true });
  writeFileSync(join(b, 'checkpoint-4', 'trainer_state.json'), '{"torn": true}');
  const r = await run(b, modelDir, 1);
  t.same(r.steps.map((x) => x.step), [3, 4, 5, 6], 'resumed after step 2');
  t.ok(r.logs.some((l) => l.level === 'warn' && /checkpoint-4: trainer_state\.json: sha256/.test(l.msg)), 'the corrupted checkpoint is skipped with a warning');
  t.equal(r.result.finalHash, a.result.finalHash, 'same final weights as the uninterrupted run');
  t.notOk(existsSync(join(b, 'eval_results.json')) && JSON.parse(readFileSync(join(b, 'eval_results.json'), 'utf8')).before !== null, 'no "before" figure on a resumed run');
});

t.test('non-finite gradients past the patience escalate; the restarted group rolls back with half the LR', async (t) => {
  const root = t.testdir();
  const modelDir = setup(root);
  const out = join(root, 'out');
  // a loss scale of 1e44 makes the gradients overflow on steps 3..6 (patience 3: escalates at 5)
  const extra = ['gradient_policy:', '  loss_scale_schedule: "3-6:1.0e44"', '  nonfinite_patience: 3'];
  await t.rejects(run(out, modelDir, 0, extra), { code: 'ERR_POLICY_ESCALATE', step: 5 });
  t.ok(existsSync(join(out, 'checkpoint-2')), 'the checkpoint before the trouble exists');
  t.notOk(existsSync(join(out, 'checkpoint-4')), 'no checkpoint inside a run of non-finite steps');
  const logs: LogRecord[] = [];
  await t.rejects(run(out, modelDir, 1, extra, logs), { code: 'ERR_POLICY_ESCALATE' }, 'the same data overflows again (the rollback only lowers the LR)');
  t.ok(logs.some((l) => /after 1 policy rollback\(s\) the learning rate is scaled by 0.5 to 0.0025/.test(l.msg)), 'restarted with half the LR');
  t.ok(logs.some((l) => /resumed from .*checkpoint-2/.test(l.msg)), 'from the last checkpoint');
  t.equal(readdirSync(join(out, 'policy-rollbacks')).length, 2, 'one rollback marker per escalation');
});

t.test('the embedded default job resolves: 2-way SP, tiny model, >= 2048-token sequences', async (t) => {
  const job = loadJobConfig({ configPath: 'the embedded default job', configText: DEFAULT_JOB_YAML, env: {}, worldSize: 2 });
  t.equal(job.config.sequence_parallel_size, 2);
  t.ok(job.config.cutoff_len >= 2048);
  t.ok(existsSync(join(resolveModelDir(job.config.model_name_or_path), 'config.json')), 'the tiny model is found');
  t.same(job.ignored, []);
  // the task needs attention across the shards: every needle on rank 0's half, every scored answer on rank 1's
  const task = BUILTIN_TASKS[job.config.dataset[0]!];
  t.ok(task, `the default dataset ${job.config.dataset[0]} is a built-in task`);
  const half = job.config.cutoff_len / job.config.sequence_parallel_size;
  const exs = [...recallTask({ seed: 7, n: 50, seqLen: job.config.cutoff_len, ...task, superviseRepeats: false })];
  t.ok(exs.every((e) => e.needlePos + 6 < half && e.answerPos >= half), `needles before token ${half}, first answers after it`);
  t.ok(exs.every((e) => e.labels.filter((l) => l !== -100).length === 1), 'evaluation scores only the first answer of each example');
  const dist = exs.map((e) => e.answerPos - e.needlePos);
  t.ok(Math.min(...dist) > 700, `answers ${Math.min(...dist)}..${Math.max(...dist)} tokens after their needle`);
});
