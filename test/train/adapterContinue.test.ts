// adapter_name_or_path in training, as LLaMA-Factory: a LoRA job continues the adapter of an
// earlier run from its weights (its own r, alpha and targets; the job's lora_* keys do not apply),
// so the first step of the continued job computes exactly the loss the earlier run would have
// computed at its next step (same data, constant LR, policy off): bitwise; the base stays
// unchanged and the continued adapter lands in output_dir in PEFT's layout. With two adapters
// the first is merged into the base and the second continued: the first step's loss is that of
// base + merged first + attached second computed here. A full fine-tuning job's final model in
// output_dir holds the base's tokenizer files and generation_config.json beside its weights.
import t from 'tap';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Model, mergeAdapter } from '../../src/engine/model/index.js';
import { loadJobConfig } from '../../src/config/loadJobConfig.js';
import { loadJobData } from '../../src/train/trainWorkload.js';
import { GENERATION_CONFIG, trainRun, writeBaseModel } from '../cli/fixtures/loraRun.js';

const root = t.testdir();
const base = join(root, 'base');
const COMMON = { gradient_policy: { enabled: false }, lora_rank: 4, lora_alpha: 8 };

t.test('a LoRA job continues an adapter from its weights', async (t) => {
  await writeBaseModel(base);
  const baseBytes = readFileSync(join(base, 'model.safetensors'));
  const a4 = await trainRun(base, join(root, 'a4'), { ...COMMON, max_steps: 4 });
  const a5 = await trainRun(base, join(root, 'a5'), { ...COMMON, max_steps: 5 });
  t.same(a4.steps.map((s) => s.loss), a5.steps.slice(0, 4).map((s) => s.loss), 'the 4- and 5-step runs agree on their first 4 steps (constant LR, policy off)');
  // the continued job: another rank and targets in its own keys, which the adapter overrides
  const b = await trainRun(base, join(root, 'b'), { ...COMMON, lora_rank: 2, lora_target: 'q_proj', max_steps: 2, adapter_name_or_path: join(root, 'a4') });
  t.equal(b.steps[0]!.loss, a5.steps[4]!.loss, `step 1 of the continued job: loss ${b.steps[0]!.loss} = step 5 of the uninterrupted run (bitwise)`);
  t.ok(b.steps[0]!.loss < a4.steps[0]!.loss, `below the first step of a fresh adapter (${a4.steps[0]!.loss})`);
  t.ok(b.logs.some((l) => /LoRA r=4 alpha=8 dropout=0 on q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj continued from .*a4/.test(l.msg)), 'logged: the adapter\'s own settings, continued');
  t.ok(b.logs.some((l) => l.level === 'warn' && /keeps its own settings .* lora_rank, lora_alpha and lora_target of the job do not apply/.test(l.msg)), 'warned: the job\'s lora keys differ and do not apply');
  const cfg = JSON.parse(readFileSync(join(root, 'b', 'adapter_config.json'), 'utf8'));
  t.match(cfg, { r: 4, lora_alpha: 8, base_model_name_or_path: base, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
  t.not(readFileSync(join(root, 'b', 'adapter_model.safetensors')).compare(readFileSync(join(root, 'a4', 'adapter_model.safetensors'))), 0, 'the continued adapter trained further');
  t.ok(readFileSync(join(base, 'model.safetensors')).equals(baseBytes), 'the base weights file is untouched');

  // two adapters: the first merged into the base, the second continued
  const c = await trainRun(base, join(root, 'c'), { ...COMMON, max_steps: 1, adapter_name_or_path: [join(root, 'a5'), join(root, 'a4')] });
  t.ok(c.logs.some((l) => /merged the LoRA adapter .*a5 \(r=4 alpha=8, 14 weights\) into the base/.test(l.msg)), 'the first adapter is merged');
  const job = loadJobConfig({ configPath: 'x.yaml', configText: `model_name_or_path: ${base}\ndataset: builtin:recall\ncutoff_len: 100\nmax_samples: 1\nmax_steps: 1\nseed: 42\n`, env: {} }).config;
  const m = await Model.fromPretrained(base);
  await mergeAdapter(m, join(root, 'a5'));
  await m.loadAdapter(join(root, 'a4'));
  const item = (await loadJobData(job, base, 270)).items[0]!;
  const r = await m.forward({ tokens: item.tokens, labels: item.labels, docLens: item.docLens });
  t.ok(Math.abs(c.steps[0]!.loss - r.loss) <= 1e-6 * r.loss, `step 1: loss ${c.steps[0]!.loss} = base + merged a5 + a4 computed here (${r.loss})`);
  m.close();
});

t.test('full fine-tuning: the final model directory gets the base\'s tokenizer files and generation config', async (t) => {
  if (!existsSync(join(base, 'config.json'))) await writeBaseModel(base);
  const out = join(root, 'full');
  await trainRun(base, out, { finetuning_type: 'full', max_steps: 2, gradient_policy: { enabled: false }, lora_rank: undefined, lora_target: undefined });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) t.ok(existsSync(join(out, f)), `output_dir/${f}`);
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) t.ok(readFileSync(join(out, f)).equals(readFileSync(join(base, f))), `${f}: the base's`);
  t.same(JSON.parse(readFileSync(join(out, 'generation_config.json'), 'utf8')), GENERATION_CONFIG);
  const m = await Model.fromPretrained(out);
  t.ok(m.numParams > 0, 'the final model loads');
  m.close();
});
