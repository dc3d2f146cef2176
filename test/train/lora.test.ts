// LoRA in the training loop on one process: the base model stays bitwise unchanged while the loss
// falls; the optimizer state, the gradient statistics and the hash cover the adapters only;
// checkpoints hold the adapter in PEFT's layout (no copy of the base) plus its AdamW moments, and
// output_dir receives the final adapter, which loads back into a fresh base with the same losses;
// a LoRA run with dropout interrupted after a checkpoint and resumed ends bitwise identical to the
// uninterrupted one; full-weight and LoRA checkpoints refuse to resume each other's runs; the train
// workload attaches adapters from the job keys and a restarted LoRA job resumes bitwise.
import t from 'tap';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../../src/engine/model/index.js';
import { readSafetensorsHeader } from '../../src/engine/safetensors.js';
import { latestValidCheckpoint, loadCheckpoint, verifyCheckpoint } from '../../src/train/checkpoint.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { Trainer, weightsHash, type StepInfo } from '../../src/train/loop/index.js';
import { createLogger, type LogRecord } from '../../src/util/Logger.js';
import { loadJobConfig } from '../../src/config/loadJobConfig.js';
import { trainWorkload } from '../../src/train/trainWorkload.js';
import type { WorkloadContext } from '../../src/train/Workload.js';
import { microModel, policy, progressionData, standInData, trainConfig, writeMicroModelDir } from './helpers/trainFixtures.js';

const logger = createLogger('silent');
const items = progressionData({ count: 6, len: 80 });

function baseHash(m: Model): string {
  return createHash('sha256').update(new Uint8Array(m.params.buffer, m.params.byteOffset, m.params.byteLength)).digest('hex');
}

/** Mean token loss over every item, adapters on, no dropout (no key). */
async function meanLoss(m: Model): Promise<number> {
  let sum = 0;
  for (const s of items) sum += (await m.forward({ tokens: s.tokens, labels: s.labels, docLens: s.docLens })).loss;
  await m.backward();
  await m.zeroGrad();
  return sum / items.length;
}

async function loraModel(dropout: number): Promise<Model> {
  const m = await microModel(11);
  await m.attachLora({ rank: 4, alpha: 8, dropout, seed: 42 });
  return m;
}

async function run(outputDir: string, o: { steps: number; dropout: number; stopAfter?: number; resume?: boolean; saveSteps?: number; lr?: number; lossScale?: string }) {
  const model = await loraModel(o.dropout);
  const steps: StepInfo[] = [];
  const resumeFrom = o.resume ? await latestValidCheckpoint(outputDir) : null;
  const trainer = new Trainer({
    model, runtime: singleProcessRuntime(), data: standInData(items), logger, policy: policy(),
    config: trainConfig(outputDir, { max_steps: o.steps, save_steps: o.saveSteps ?? 1000, gradient_accumulation_steps: 2, lr_scheduler_type: 'linear', warmup_steps: 2, weight_decay: 0.1, learning_rate: o.lr ?? 1e-2 }),
    lossScale: o.lossScale ?? null,
    configHash: 'lora-test',
    resumeFrom,
    stopAfter: o.stopAfter,
    hooks: { reportStep: (r) => steps.push(r) },
  });
  const r = await trainer.run();
  return { ...r, steps, model, resumeFrom };
}

t.test('a LoRA run: the base stays bitwise unchanged, the loss falls, the adapter lands in PEFT layout', async (t) => {
  const dir = t.testdir();
  const fresh = await loraModel(0.05);
  const before = baseHash(fresh);
  const evalBefore = await meanLoss(fresh);
  const r = await run(dir, { steps: 30, dropout: 0.05, lr: 2e-2, saveSteps: 15 });
  t.equal(baseHash(r.model), before, 'base parameters bitwise unchanged');
  t.equal(r.finalHash, weightsHash(r.model), 'the final hash is over the adapters');
  t.not(weightsHash(r.model), weightsHash(fresh), 'the adapters changed');
  // a random micro base leaves a rank-4 update little to build on: the fall is modest but clear
  const evalAfter = await meanLoss(r.model);
  t.ok(evalAfter < 0.88 * evalBefore, `mean loss over the data (no dropout) ${evalAfter.toFixed(4)} < 0.88 x before training ${evalBefore.toFixed(4)}`);
  t.ok(r.steps.every((s) => s.stats.grad_norm > 0 && Number.isFinite(s.stats.grad_norm)), 'adapter gradients every step');

  // checkpoints: the adapter and its moments, no copy of the frozen base
  const ck = join(dir, 'checkpoint-30');
  t.same(readdirSync(ck).sort(), ['adapter_config.json', 'adapter_model.safetensors', 'checksums.sha256', 'config.json', 'optimizer.safetensors', 'trainer_state.json']);
  t.equal(await verifyCheckpoint(ck), undefined, 'the LoRA checkpoint verifies');
  const opt = await readSafetensorsHeader(join(ck, 'optimizer.safetensors'));
  const names = r.model.lora!.views.map((v) => v.name);
  t.same([...opt.tensors.keys()], names.flatMap((n) => [`${n}.exp_avg`, `${n}.exp_avg_sq`]), 'moments of the adapters only');
  const cfg = JSON.parse(readFileSync(join(ck, 'adapter_config.json'), 'utf8'));
  t.match(cfg, { peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0.05, task_type: 'CAUSAL_LM' });

  // output_dir holds the final adapter (what LLaMA-Factory leaves there)
  t.ok(existsSync(join(dir, 'adapter_model.safetensors')) && existsSync(join(dir, 'adapter_config.json')), 'final adapter in output_dir');
  const reloaded = await microModel(11);
  await reloaded.loadAdapter(dir);
  t.equal(weightsHash(reloaded), r.finalHash, 'the output_dir adapter is the trained one, bit for bit');
  const seq = items[0]!;
  const want = (await r.model.forward({ tokens: seq.tokens, labels: seq.labels, docLens: seq.docLens })).loss;
  const got = (await reloaded.forward({ tokens: seq.tokens, labels: seq.labels, docLens: seq.docLens })).loss;
  t.equal(got, want, `same loss after loading the adapter into a fresh base (${got} vs ${want})`);
});

t.test('a LoRA run with dropout, interrupted after a checkpoint and resumed: bitwise the same', async (t) => {
  // the loss-scale switch sends steps 5-7 through vanishing-intervention (keyed noise on the adapters)
  const o = { steps: 12, dropout: 0.1, saveSteps: 4, lossScale: '5-7:1e-6' };
  const ref = await run(t.testdir(), o);
  t.ok(ref.steps.some((s) => s.policyState === 'vanishing-intervention'), 'the run goes through vanishing-intervention: ' + ref.steps.map((s) => s.policyState).join(','));
  const dir = t.testdir();
  const first = await run(dir, { ...o, stopAfter: 7 });
  t.equal(first.step, 7);
  const second = await run(dir, { ...o, resume: true });
  t.match(String(second.resumeFrom), /checkpoint-4$/, 'resumed from the last checkpoint before the stop');
  t.equal(second.finalHash, ref.finalHash, 'final adapter hash equals the uninterrupted run');
  t.same(second.steps.map((s) => [s.step, s.loss, s.planDigest, s.stats.lr]), ref.steps.slice(4).map((s) => [s.step, s.loss, s.planDigest, s.stats.lr]), 'steps 5..12 report the same figures');

  // dropout matters: without it the same run ends elsewhere
  const noDrop = await run(t.testdir(), { ...o, dropout: 0 });
  t.not(noDrop.finalHash, ref.finalHash, 'dropout changes the trajectory');
});

t.test('full-weight and LoRA checkpoints do not resume each other', async (t) => {
  const loraDir = t.testdir();
  await run(loraDir, { steps: 2, dropout: 0, saveSteps: 2 });
  const full = await microModel(11);
  const n = full.params.length;
  await t.rejects(loadCheckpoint(join(loraDir, 'checkpoint-2'), full, new Float32Array(n), new Float32Array(n)), { code: 'ERR_CHECKPOINT', message: /LoRA adapter, not full weights/ });
  const otherRank = await microModel(11);
  await otherRank.attachLora({ rank: 2, alpha: 8 });
  const k = otherRank.trainable.params.length;
  await t.rejects(loadCheckpoint(join(loraDir, 'checkpoint-2'), otherRank, new Float32Array(k), new Float32Array(k)), { code: 'ERR_CHECKPOINT', message: /r 4 vs 2/ });

  const fullDir = t.testdir();
  await new Trainer({ model: full, runtime: singleProcessRuntime(), data: standInData(items), logger, policy: policy(), config: trainConfig(fullDir, { max_steps: 1 }) }).run();
  const l = await loraModel(0);
  const m = l.trainable.params.length;
  await t.rejects(loadCheckpoint(join(fullDir, 'checkpoint-1'), l, new Float32Array(m), new Float32Array(m)), { code: 'ERR_CHECKPOINT', message: /no LoRA adapter/ });
});

t.test('the train workload with finetuning_type lora: adapters from the job keys, PEFT output, restart resumes bitwise', async (t) => {
  const root = t.testdir();
  const modelDir = writeMicroModelDir(root, { vocab_size: 256 });
  const job = async (out: string, incarnation: number) => {
    const yaml = [
      `model_name_or_path: ${modelDir}`, 'stage: sft', 'finetuning_type: lora', 'lora_rank: 4', 'lora_dropout: 0.1', 'lora_target: q_proj,v_proj,down_proj',
      'dataset: builtin:recall', 'cutoff_len: 100', 'max_samples: 16', `output_dir: ${out}`, 'logging_steps: 1', 'save_steps: 2', 'max_steps: 4',
      'learning_rate: 1.0e-2', 'warmup_steps: 1',
    ].join('\n');
    const resolved = loadJobConfig({ configPath: 'w.yaml', configText: yaml, env: {} });
    const logs: LogRecord[] = [];
    const steps: number[] = [];
    const ctx: WorkloadContext = {
      rank: 0, world: 1, localRank: 0, localRanks: 1, incarnation, job: resolved,
      logger: createLogger('info', (r) => logs.push(r), 'rank0'), signal: new AbortController().signal,
      store: { set: async () => {}, get: async () => new Uint8Array(), wait: async () => {} },
      reportStep: (r) => steps.push(r.step), reportTransition: () => {}, reportCheckpoint: () => {}, setPhase: () => {},
    };
    return { result: await trainWorkload(ctx), logs, steps };
  };
  const a = await job(join(root, 'a'), 0);
  t.equal(a.result.step, 4);
  t.ok(a.logs.some((l) => /LoRA r=4 alpha=8 dropout=0\.1 on q_proj,v_proj,down_proj/.test(l.msg)), 'the LoRA settings are logged (alpha resolved to 2 * rank)');
  const cfg = JSON.parse(readFileSync(join(root, 'a', 'adapter_config.json'), 'utf8'));
  t.match(cfg, { peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj', 'down_proj'], base_model_name_or_path: modelDir });
  const h = await readSafetensorsHeader(join(root, 'a', 'adapter_model.safetensors'));
  t.equal(h.tensors.size, 2 * 2 * 3, 'lora_A and lora_B of 3 modules in 2 layers');
  t.notOk(existsSync(join(root, 'a', 'checkpoint-4', 'model.safetensors')), 'no copy of the frozen base in checkpoints');

  // a restarted group resumes from checkpoint-2 and ends with the same adapter bits
  const b = join(root, 'b');
  mkdirSync(b);
  cpSync(join(root, 'a', 'checkpoint-2'), join(b, 'checkpoint-2'), { recursive: true });
  const r = await job(b, 1);
  t.same(r.steps, [3, 4], 'resumed after step 2');
  t.equal(r.result.finalHash, a.result.finalHash, 'same final adapter hash as the uninterrupted job');
  t.equal(readFileSync(join(b, 'adapter_model.safetensors')).compare(readFileSync(join(root, 'a', 'adapter_model.safetensors'))), 0, 'identical adapter files');
});
