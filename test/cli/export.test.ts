// `ulysses-actors export` through the real CLI, on the adapter of a real LoRA run (the train
// workload, every linear module adapted): the float32 export equals the merge W + (alpha / r) B A
// computed here in fp64 from the base and adapter files (within 1e-6 of each tensor's largest
// value; untouched tensors bitwise), and loads back with the logits of base + adapter (the KV
// session over every position, and per-token losses of a full forward); bfloat16 (infer_dtype
// auto on a float32 base, as LLaMA-Factory) and float16 exports are the float32 export rounded to
// nearest even, bit for bit; shards follow save_pretrained's rule with HF's index; the base's
// tokenizer files and generation_config.json are copied; a re-export leaves no stale shard; and
// what export cannot do is refused with exit 2 naming the key.
import t from 'tap';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { Model } from '../../src/engine/model/index.js';
import { InferSession } from '../../src/engine/generate/index.js';
import { readSafetensors, readSafetensorsHeader } from '../../src/engine/safetensors.js';
import { toBf16 } from '../../src/engine/ops/matmul.js';
import { toF16 } from '../../src/engine/ops/f16.js';
import { planShards } from '../../src/engine/model/hfExport.js';
import { runCli } from '../helpers/cli.js';
import { lcg } from '../helpers/packedBatch.js';
import { BASE_HF, GENERATION_CONFIG, trainRun, writeBaseModel } from './fixtures/loraRun.js';

const root = t.testdir();
const base = join(root, 'base');
const run = join(root, 'run');
let ready: Promise<void> | null = null;
/** The base model and one LoRA run, made once for the file. */
function fixture(): Promise<void> {
  ready ??= (async () => {
    await writeBaseModel(base);
    await trainRun(base, run, { lora_alpha: 12 });
  })();
  return ready;
}

function exportCli(name: string, keys: Record<string, unknown>, flags: string[] = []) {
  const yaml = join(root, `${name}.yaml`);
  writeFileSync(yaml, Object.entries({ model_name_or_path: base, template: 'qwen', finetuning_type: 'lora', ...keys }).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n');
  return runCli(['export', yaml, ...flags]);
}

/** Tensors of an exported directory, by name, with their dtype (F32 values through the loader). */
async function exported(dir: string): Promise<Map<string, { dtype: string; data: Float32Array; file: string }>> {
  const out = new Map<string, { dtype: string; data: Float32Array; file: string }>();
  const files = existsSync(join(dir, 'model.safetensors.index.json'))
    ? [...new Set(Object.values(JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')).weight_map as Record<string, string>))]
    : ['model.safetensors'];
  for (const f of files) {
    const h = await readSafetensorsHeader(join(dir, f));
    const { tensors } = await readSafetensors(join(dir, f));
    for (const [name, tt] of tensors) out.set(name, { dtype: h.tensors.get(name)!.dtype, data: tt.data, file: f });
  }
  return out;
}

/** Raw 16-bit patterns of a BF16 / F16 tensor as stored. */
async function rawBits(dir: string, file: string, name: string): Promise<Uint16Array> {
  const h = await readSafetensorsHeader(join(dir, file));
  const e = h.tensors.get(name)!;
  const buf = readFileSync(join(dir, file)).subarray(e.begin, e.end);
  return new Uint16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

/** max |logits(a) - logits(b)| / max |logits(b)| over every position of `ids` (KV sessions). */
async function logitsGap(a: Model, b: Model, ids: number[]): Promise<number> {
  const la = await new InferSession(a).append(ids, { allLogits: true });
  const lb = await new InferSession(b).append(ids, { allLogits: true });
  let d = 0, m = 0;
  for (let i = 0; i < la.length; i++) {
    d = Math.max(d, Math.abs(la[i]! - lb[i]!));
    m = Math.max(m, Math.abs(lb[i]!));
  }
  return d / m;
}

t.test('float32 export of a LoRA run equals the fp64 merge and loads back with the logits of base + adapter', async (t) => {
  await fixture();
  const out = join(root, 'f32');
  const r = exportCli('f32', { adapter_name_or_path: run, export_dir: out, infer_dtype: 'float32', export_size: 0.00005 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, new RegExp(`exported ${base} \\+ ${run} \\(r=4, alpha=12, 14 weights\\) to ${out}: \\d+ parameters, float32, \\d+ shards`));

  // fp64 merge from the files: W + (alpha / r) B A
  const acfg = JSON.parse(readFileSync(join(run, 'adapter_config.json'), 'utf8'));
  t.match(acfg, { r: 4, lora_alpha: 12, peft_type: 'LORA' });
  const scale = acfg.lora_alpha / acfg.r;
  const baseT = (await readSafetensors(join(base, 'model.safetensors'))).tensors;
  const ad = (await readSafetensors(join(run, 'adapter_model.safetensors'))).tensors;
  const got = await exported(out);
  t.same([...got.keys()].sort(), [...baseT.keys()].sort(), 'the exported model has exactly the base\'s tensors (no adapter tensors)');
  t.ok([...got.values()].every((g) => g.dtype === 'F32'), 'every tensor F32');
  let worst = 0, merged = 0, same = 0, moved = 0;
  for (const [name, b] of baseT) {
    const g = got.get(name)!;
    const stem = name.replace(/\.weight$/, '');
    const A = ad.get(`base_model.model.${stem}.lora_A.weight`);
    if (!A) {
      if (g.data.every((x, i) => x === b.data[i])) same++;
      continue;
    }
    const B = ad.get(`base_model.model.${stem}.lora_B.weight`)!;
    const [outD, inD] = b.shape as [number, number];
    const rr = A.shape[0]!;
    let diff = 0, mx = 0, delta = 0;
    for (let o = 0; o < outD; o++)
      for (let i = 0; i < inD; i++) {
        let acc = 0;
        for (let k = 0; k < rr; k++) acc += B.data[o * rr + k]! * A.data[k * inD + i]!;
        const w = b.data[o * inD + i]! + scale * acc;
        diff = Math.max(diff, Math.abs(g.data[o * inD + i]! - w));
        mx = Math.max(mx, Math.abs(w));
        delta = Math.max(delta, Math.abs(scale * acc));
      }
    worst = Math.max(worst, diff / mx);
    merged++;
    if (delta > 1e-3 * mx) moved++;
  }
  t.equal(merged, 14, 'seven linear modules in each of two layers were merged');
  t.equal(moved, 14, 'the run moved every adapter away from B = 0 (the merge matters)');
  t.ok(worst < 1e-6, `merged weights vs the fp64 merge: max |diff| / max |w| ${worst.toExponential(2)} < 1e-6`);
  t.equal(same, baseT.size - 14, 'embeddings, norms, biases and the LM head are the base\'s, bit for bit');

  // loads back: logits of the export vs the base model with the adapter attached
  const a = await Model.fromPretrained(out);
  const b = await Model.fromPretrained(base);
  await b.loadAdapter(run);
  const r2 = lcg(5);
  const ids = Array.from({ length: 40 }, () => Math.floor(r2() * BASE_HF.vocab_size));
  const gap = await logitsGap(a, b, ids);
  t.ok(gap < 1e-5, `logits at all 40 positions: max |diff| / max |logit| ${gap.toExponential(2)} < 1e-5`);
  const tokens = Int32Array.from(ids), labels = Int32Array.from(ids.slice(1).concat([-100]));
  const ta = new Float32Array(40), tb = new Float32Array(40);
  await a.forward({ tokens, labels, tokenLoss: ta });
  await b.forward({ tokens, labels, tokenLoss: tb });
  let e = 0;
  for (let i = 0; i < 40; i++) e = Math.max(e, Math.abs(ta[i]! - tb[i]!));
  t.ok(e < 1e-4, `per-token losses of a full forward: max |diff| ${e.toExponential(2)} < 1e-4`);
  a.close();
  b.close();

  // config, shards and index as save_pretrained writes them
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  t.match(cfg, { model_type: 'qwen2', torch_dtype: 'float32', vocab_size: 270, hidden_size: 32 });
  const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
  const m0 = await Model.fromPretrained(base);
  const plan = planShards(m0.views.map((v) => ({ name: v.name, bytes: v.numel * 4 })), 0.00005 * 1e9);
  const n = plan.length;
  t.ok(n > 2, `${n} shards of at most 50 kB`);
  const want: Record<string, string> = {};
  plan.forEach((names, i) => names.forEach((nm) => (want[nm] = `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`)));
  t.same(index.weight_map, want, 'weight_map: the tensors in model order, a new shard when the next would pass the limit');
  t.equal(index.metadata.total_size, m0.views.reduce((s, v) => s + v.numel * 4, 0), 'metadata.total_size: the bytes of every tensor');
  m0.close();
  let largest = 0;
  for (const f of new Set(Object.values(want))) {
    const h = await readSafetensorsHeader(join(out, f));
    const names = Object.keys(want).filter((k) => want[k] === f);
    t.same([...h.tensors.keys()].sort(), names.sort(), `${f} holds exactly its tensors`);
    t.same(h.metadata, { format: 'pt' });
    const bytes = [...h.tensors.values()].reduce((s, x) => s + (x.end - x.begin), 0);
    if (names.length > 1) largest = Math.max(largest, bytes);
  }
  t.ok(largest <= 50_000, `every shard of several tensors within the limit (largest ${largest} bytes)`);
  // tokenizer and generation files: the base's, byte for byte
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) t.ok(readFileSync(join(out, f)).equals(readFileSync(join(base, f))), `${f} copied from the base`);
  t.same(JSON.parse(readFileSync(join(out, 'generation_config.json'), 'utf8')), GENERATION_CONFIG);

  // a re-export in one shard replaces the shards and the index
  const again = exportCli('f32b', { adapter_name_or_path: run, export_dir: out, infer_dtype: 'float32' });
  t.equal(again.status, 0, again.stderr);
  t.same(readdirSync(out).filter((f) => f.includes('safetensors')), ['model.safetensors'], 'one model.safetensors, no stale shard or index');
});

t.test('bfloat16 (auto on a float32 base) and float16 exports are the float32 merge rounded to nearest even', async (t) => {
  await fixture();
  const f32 = join(root, 'ref32');
  t.equal(exportCli('ref32', { adapter_name_or_path: run, export_dir: f32, infer_dtype: 'float32' }).status, 0);
  const ref = await exported(f32);
  for (const [label, dtype, st, convert] of [
    ['auto', 'bfloat16', 'BF16', (x: Float32Array) => toBf16(x)],
    ['float16', 'float16', 'F16', (x: Float32Array) => toF16(x)],
  ] as const) {
    const out = join(root, `x-${label}`);
    const r = exportCli(`x-${label}`, { adapter_name_or_path: run, export_dir: out, infer_dtype: label });
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, new RegExp(`, ${dtype}, 1 shard `));
    t.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype, dtype, `config.json torch_dtype ${dtype}`);
    const h = await readSafetensorsHeader(join(out, 'model.safetensors'));
    t.ok([...h.tensors.values()].every((e) => e.dtype === st), `every tensor ${st}`);
    let tensors = 0;
    for (const [name, x] of ref) {
      const bits = await rawBits(out, 'model.safetensors', name);
      const want = await convert(x.data);
      if (bits.length === want.length && bits.every((v, i) => v === want[i])) tensors++;
    }
    t.equal(tensors, ref.size, `${label}: every tensor is the float32 export rounded to ${dtype} (bit for bit)`);
    // and it loads back (the loader converts to fp32) with logits close to the float32 export's
    const a = await Model.fromPretrained(out);
    const b = await Model.fromPretrained(f32);
    const gap = await logitsGap(a, b, [1, 5, 9, 44, 100, 3, 7, 260, 12, 8]);
    t.ok(gap < 0.05, `${dtype} weights: logits within ${gap.toExponential(2)} of the float32 export's (half-precision rounding)`);
    a.close();
    b.close();
  }
});

t.test('without an adapter: a dtype conversion of the base; a float16 base exports float16 under auto', async (t) => {
  await fixture();
  const halfBase = join(root, 'half-base');
  mkdirSync(halfBase);
  cpSync(base, halfBase, { recursive: true });
  writeFileSync(join(halfBase, 'config.json'), JSON.stringify({ ...BASE_HF, torch_dtype: 'float16' }));
  const out = join(root, 'plain');
  const r = exportCli('plain', { model_name_or_path: halfBase, export_dir: out });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /, float16, 1 shard/);
  const h = await readSafetensorsHeader(join(out, 'model.safetensors'));
  t.ok([...h.tensors.values()].every((e) => e.dtype === 'F16'), 'every tensor F16');
  const baseT = (await readSafetensors(join(base, 'model.safetensors'))).tensors;
  let ok = 0;
  for (const [name, x] of baseT) {
    const bits = await rawBits(out, 'model.safetensors', name);
    const want = await toF16(x.data);
    if (bits.every((v, i) => v === want[i])) ok++;
  }
  t.equal(ok, baseT.size, 'the base weights rounded to float16, bit for bit');
});

t.test('refused with exit 2, naming the key; nothing written', async (t) => {
  await fixture();
  const bad = join(root, 'bad-out');
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['no export_dir', {}, /export_dir: is needed/],
    ['legacy format', { export_dir: bad, export_legacy_format: true }, /export_legacy_format: PyTorch \.bin files are not written/],
    ['quantization', { export_dir: bad, export_quantization_bit: 4 }, /export_quantization_bit: quantized export is not implemented/],
    ['hub', { export_dir: bad, export_hub_model_id: 'me/model' }, /export_hub_model_id: there is no model hub access/],
    ['missing adapter', { export_dir: bad, adapter_name_or_path: join(root, 'nowhere') }, /adapter_name_or_path: .*cannot read the adapter config/],
    ['adapter with full fine-tuning', { export_dir: bad, adapter_name_or_path: run, finetuning_type: 'full' }, /adapter_name_or_path: needs finetuning_type: lora/],
    ['export into the base', { export_dir: base }, /export_dir: is the base model directory itself/],
    ['a base without weights', { export_dir: bad, model_name_or_path: 'examples/models/tiny' }, /model_name_or_path: .* holds no weights/],
    ['bad infer_dtype', { export_dir: bad, infer_dtype: 'float8' }, /infer_dtype: is not one of the supported values/],
  ];
  for (const [label, keys, re] of cases) {
    const r = exportCli(`bad-${label.replace(/\W+/g, '-')}`, keys);
    t.equal(r.status, 2, `${label}: exit 2`);
    t.match(r.stderr, re, `${label}: ${r.stderr.trim().split('\n').pop()}`);
  }
  // a DoRA adapter (PEFT's use_dora) is another method: refused, not merged as plain LoRA
  const dora = join(root, 'dora');
  cpSync(run, dora, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(dora, 'adapter_config.json'), 'utf8'));
  writeFileSync(join(dora, 'adapter_config.json'), JSON.stringify({ ...cfg, use_dora: true }));
  const r = exportCli('bad-dora', { export_dir: bad, adapter_name_or_path: dora });
  t.equal(r.status, 2);
  t.match(r.stderr, /adapter_name_or_path: .*use_dora is not supported/);
  t.notOk(existsSync(bad), 'nothing was written');
});

t.test('the example merge and inference configs resolve (check-config)', async (t) => {
  // check-config checks that the model is there: the examples name a hub model, so only the model path changes
  for (const f of ['examples/merge_lora/llama3_lora_sft.yaml', 'examples/inference/llama3_lora_sft.yaml']) {
    const r = runCli(['check-config', f, '--model_name_or_path', 'tiny', '--json']);
    t.equal(r.status, 0, `${f}: ${r.stderr}`);
    const c = JSON.parse(r.stdout).config;
    t.same(c.adapter_name_or_path, ['saves/llama3-8b/lora/sft'], `${f}: adapter_name_or_path as a list`);
  }
});
