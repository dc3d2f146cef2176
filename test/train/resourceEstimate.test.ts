// Resource estimates before start: the parameter count and LoRA's trainable count against the
// engine's real models, each part of a rank's bytes, refusal with the numbers, and `up` refusing
// `num_hidden_layers: 1e9` at once (exit 2) instead of blocking a rank.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model } from '../../src/engine/model/index.js';
import { readModelConfig } from '../../src/engine/modelConfig.js';
import { loadJobConfig } from '../../src/config/index.js';
import { estimateRankMemory, machineMemory, modelDimsOf, paramCount, resourceProblems, type ModelDims } from '../../src/train/resourceEstimate.js';
import { runCli } from '../helpers/cli.js';

const tinyDir = join(import.meta.dirname, '../../examples/models/tiny');
const tinyHf = JSON.parse(readFileSync(join(tinyDir, 'config.json'), 'utf8')) as Record<string, unknown>;
const root = mkdtempSync(join(tmpdir(), 'ua-estimate-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

t.test('parameters and LoRA trainables equal the engine model', async (t) => {
  const dims = modelDimsOf(tinyHf) as ModelDims;
  t.notOk('key' in dims);
  const model = await Model.create(await readModelConfig(join(tinyDir, 'config.json')), { seed: 1 });
  t.equal(paramCount(dims), model.numParams, `the tiny model has ${model.numParams} parameters`);
  const lora = await model.attachLora({ rank: 4, alpha: 8, dropout: 0, targets: ['all'], seed: 1 });
  const e = estimateRankMemory({ dims, finetuning: 'lora', loraRank: 4, stage: 'sft', bf16: false, cutoffLen: 64, sp: 1, batch: 1 });
  t.equal(e.trainable, lora.views.reduce((a, v) => a + v.numel, 0), 'LoRA trainable parameters (targets all)');
});

t.test('the parts of a rank: weights, gradients, AdamW, the DPO reference, activations split by sp', async (t) => {
  const dims = modelDimsOf(tinyHf) as ModelDims;
  const P = paramCount(dims);
  const part = (e: ReturnType<typeof estimateRankMemory>, name: string) => e.parts.find((p) => p.name.startsWith(name))?.bytes;
  const full = estimateRankMemory({ dims, finetuning: 'full', loraRank: 8, stage: 'dpo', bf16: false, cutoffLen: 1024, sp: 2, batch: 1 });
  t.same([part(full, 'weights'), part(full, 'gradients'), part(full, 'AdamW'), part(full, 'DPO reference')], [4 * P, 4 * P, 8 * P, 4 * P]);
  t.equal(full.totalBytes, full.parts.reduce((a, p) => a + p.bytes, 0));
  const sp1 = estimateRankMemory({ dims, finetuning: 'full', loraRank: 8, stage: 'sft', bf16: false, cutoffLen: 1024, sp: 1, batch: 1 });
  const sp4 = estimateRankMemory({ dims, finetuning: 'full', loraRank: 8, stage: 'sft', bf16: false, cutoffLen: 1024, sp: 4, batch: 1 });
  t.equal(part(sp1, 'activations')!, 4 * part(sp4, 'activations')!, 'activations shrink with the sp degree');
  t.ok(sp1.checkpointedActivationBytes < part(sp1, 'activations')!, 'checkpointing would keep less');
  t.equal(part(sp1, 'DPO reference'), undefined, 'no reference outside dpo');
  const bf = estimateRankMemory({ dims, finetuning: 'full', loraRank: 8, stage: 'sft', bf16: true, cutoffLen: 1024, sp: 1, batch: 1 });
  t.equal(part(bf, 'bf16 weight copies'), 2 * P);
});

t.test('refused with the numbers; a normal job fits', async (t) => {
  const dir = join(root, 'huge');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...tinyHf, num_hidden_layers: 1e9 }));
  const c = loadJobConfig({ configPath: 'job.yaml', configText: `model_name_or_path: ${dir}\nstage: sft\nfinetuning_type: full\ndataset: builtin:recall\ncutoff_len: 64\n`, env: {} }).config;
  const t0 = performance.now();
  const problems = resourceProblems(c, dir, 2, { bytes: 64e9, source: 'a test machine' });
  t.ok(performance.now() - t0 < 50, 'arithmetic only');
  t.equal(problems.length, 1);
  t.match(problems[0]!.message, /cannot fit in memory: 2 rank\(s\) here x [\d.]+ PB each = [\d.]+ PB, but a test machine is 64\.0 GB\. Per rank, for 7\.\d+e\+14 parameters \(1000000000 layers, hidden 256\): weights \(fp32\) [\d.]+ PB \+ gradients .* \+ AdamW moments [\d.]+ PB \+ activations \(64 tokens of cutoff_len 64 \/ sp 1, no checkpointing\) [\d.]+ PB \(activations with per-layer checkpointing would be [\d.]+ TB\)$/);
  t.same(resourceProblems({ ...c, model_name_or_path: tinyDir }, tinyDir, 2, machineMemory()), [], 'the tiny model fits here');
  const bad = join(root, 'bad');
  mkdirSync(bad);
  writeFileSync(join(bad, 'config.json'), JSON.stringify({ ...tinyHf, hidden_size: -3 }));
  t.match(resourceProblems(c, bad, 1, machineMemory())[0]?.message, /config\.json hidden_size: expected a positive integer, got -3/);
});

t.test('`up` refuses num_hidden_layers: 1e9 before anything starts (exit 2)', async (t) => {
  const cfg = join(root, 'job.yaml');
  writeFileSync(cfg, `model_name_or_path: ${join(root, 'huge')}\nstage: sft\nfinetuning_type: full\ndataset: builtin:recall\ncutoff_len: 64\nmax_steps: 1\noutput_dir: ${join(root, 'out')}\n`);
  const t0 = performance.now();
  const r = runCli(['up', cfg], { timeoutMs: 60_000 });
  t.equal(r.status, 2, `exit 2 (stderr: ${r.stderr.slice(0, 400)})`);
  t.match(r.stderr, /model_name_or_path.*cannot fit in memory.*1000000000 layers/s);
  t.ok(performance.now() - t0 < 30_000, `refused in ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
});
