// bf16 training (REFERENCE §6): a 20-step bf16 job tracks the fp32 job's losses (2e-2 relative at
// every step) on full fine-tuning and on LoRA (adapters fp32, base bf16); a bf16 job interrupted
// after a checkpoint and resumed ends bitwise where the uninterrupted one ends; a model whose
// torch_dtype is bfloat16 checkpoints model.safetensors in BF16 (config.json saying so) with the
// fp32 masters in optimizer.safetensors, and both reload: the BF16 file as the rounded weights, the
// checkpoint as the exact masters.
import t from 'tap';
import { join } from 'node:path';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig } from '../../src/engine/modelConfig.js';
import { fromBf16, toBf16 } from '../../src/engine/ops/matmul.js';
import { readSafetensorsHeader } from '../../src/engine/safetensors.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { Trainer, weightsHash, type StepInfo } from '../../src/train/loop/index.js';
import { latestValidCheckpoint, loadCheckpoint, MASTER_SUFFIX } from '../../src/train/checkpoint.js';
import { createLogger } from '../../src/util/Logger.js';
import { readFile } from 'node:fs/promises';
import { microHfConfig, policy, progressionData, standInData, trainConfig } from './helpers/trainFixtures.js';

const logger = createLogger('silent');
const items = progressionData({ count: 8, len: 96 });
const bf16Config = parseModelConfig({ ...microHfConfig, torch_dtype: 'bfloat16' }, 'micro bf16');

interface RunOptions {
  bf16: boolean;
  lora?: boolean;
  stopAfter?: number;
  resume?: boolean;
  saveSteps?: number;
  maxSteps?: number;
}

async function run(outputDir: string, o: RunOptions) {
  const model = await Model.create(bf16Config, { seed: 21, bf16: o.bf16 });
  if (o.lora) await model.attachLora({ rank: 4, alpha: 8, dropout: 0.1, targets: ['all'], seed: 21 });
  const steps: StepInfo[] = [];
  const resumeFrom = o.resume ? await latestValidCheckpoint(outputDir) : null;
  const trainer = new Trainer({
    model, runtime: singleProcessRuntime(), data: standInData(items), logger, policy: policy(),
    config: trainConfig(outputDir, { max_steps: o.maxSteps ?? 20, save_steps: o.saveSteps ?? 1000, gradient_accumulation_steps: 2, lr_scheduler_type: 'cosine', warmup_steps: 2, learning_rate: 2e-2 }),
    configHash: 'test',
    resumeFrom,
    stopAfter: o.stopAfter,
    hooks: { reportStep: (r) => steps.push(r) },
  });
  const r = await trainer.run();
  return { ...r, steps, model, resumeFrom };
}

/** `falls`: the fp32 job's last loss is below this fraction of its first (it learns something). */
function tracks(t: Tap.Test, fp32: StepInfo[], bf16: StepInfo[], what: string, falls: number) {
  t.equal(bf16.length, fp32.length);
  const rel = fp32.map((s, i) => Math.abs(bf16[i]!.loss - s.loss) / Math.abs(s.loss));
  const worst = Math.max(...rel);
  t.ok(worst <= 2e-2, `${what}: bf16 losses within 2e-2 relative of fp32 at every step (worst ${worst.toExponential(2)} at step ${rel.indexOf(worst) + 1}; fp32 ${fp32[0]!.loss.toFixed(4)} -> ${fp32.at(-1)!.loss.toFixed(4)}, bf16 ${bf16[0]!.loss.toFixed(4)} -> ${bf16.at(-1)!.loss.toFixed(4)})`);
  t.ok(fp32.at(-1)!.loss < falls * fp32[0]!.loss, `the job learns (last loss < ${falls} x the first): the comparison is not between two flat lines`);
}

t.test('a 20-step bf16 job tracks the fp32 job (full fine-tuning)', async (t) => {
  const a = await run(t.testdir(), { bf16: false });
  const b = await run(t.testdir(), { bf16: true });
  tracks(t, a.steps, b.steps, 'full', 0.8);
  t.not(a.finalHash, b.finalHash, 'bf16 is not bitwise fp32 (its products round their inputs)');
});

t.test('a 20-step bf16 LoRA job tracks the fp32 LoRA job (adapters fp32, base bf16)', async (t) => {
  const a = await run(t.testdir(), { bf16: false, lora: true });
  const b = await run(t.testdir(), { bf16: true, lora: true });
  tracks(t, a.steps, b.steps, 'LoRA', 0.95);
});

t.test('a bf16 job resumed from its checkpoint ends bitwise like the uninterrupted job', async (t) => {
  const ref = await run(t.testdir(), { bf16: true, maxSteps: 12, saveSteps: 4 });
  const dir = t.testdir();
  const first = await run(dir, { bf16: true, maxSteps: 12, saveSteps: 4, stopAfter: 6 });
  t.equal(first.step, 6);
  const second = await run(dir, { bf16: true, maxSteps: 12, saveSteps: 4, resume: true });
  t.match(String(second.resumeFrom), /checkpoint-4$/);
  t.equal(second.finalHash, ref.finalHash, 'final fp32 master weights hash equals the uninterrupted run');
  t.same(second.steps.map((s) => [s.step, s.loss]), ref.steps.slice(4).map((s) => [s.step, s.loss]), 'steps 5..12 report the same losses');
});

t.test('torch_dtype bfloat16: BF16 model.safetensors with fp32 masters beside the moments; both reload', async (t) => {
  const dir = t.testdir();
  const r = await run(dir, { bf16: true, maxSteps: 4, saveSteps: 4 });
  const ckpt = join(dir, 'checkpoint-4');
  const header = await readSafetensorsHeader(join(ckpt, 'model.safetensors'));
  const dtypes = new Set([...header.tensors.values()].map((e) => e.dtype));
  t.same([...dtypes], ['BF16'], 'every weight is BF16');
  const cfg = JSON.parse(await readFile(join(ckpt, 'config.json'), 'utf8')) as Record<string, unknown>;
  t.equal(cfg.torch_dtype, 'bfloat16', 'config.json says bfloat16');
  const opt = await readSafetensorsHeader(join(ckpt, 'optimizer.safetensors'));
  t.ok(r.model.views.every((v) => opt.tensors.get(v.name + MASTER_SUFFIX)?.dtype === 'F32'), 'optimizer.safetensors holds every fp32 master');

  // The HF way: from_pretrained on the checkpoint gives the masters rounded to bf16.
  const hf = await Model.fromPretrained(ckpt);
  const rounded = await fromBf16(await toBf16(r.model.params));
  let off = 0;
  for (const v of r.model.views) for (let i = 0; i < v.numel; i++) if (!Object.is(hf.params[v.offset + i], rounded[v.offset + i])) off++;
  t.equal(off, 0, 'model.safetensors reloads as the bf16 rounding of the masters');
  // The trainer's way: the checkpoint restores the exact masters.
  const back = await Model.create(bf16Config, { seed: 99, bf16: true });
  const m = new Float32Array(back.params.length), v = new Float32Array(back.params.length);
  const state = await loadCheckpoint(ckpt, back, m, v);
  t.equal(state.step, 4);
  t.equal(weightsHash(back), r.finalHash, 'the checkpoint restores the fp32 masters bitwise');
});
