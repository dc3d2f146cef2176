// Model checkpoints in HF layout: save + fromPretrained round trip (bitwise), BF16 and sharded
// checkpoints as real HF directories hold them, and the errors for missing / misshapen tensors.
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig } from '../../src/engine/modelConfig.js';
import { readSafetensorsHeader, writeSafetensors } from '../../src/engine/safetensors.js';

const root = mkdtempSync(join(tmpdir(), 'ua-model-io-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

const hf = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 96, hidden_size: 48, intermediate_size: 80,
  num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 10000, rms_norm_eps: 1e-5,
  tie_word_embeddings: false, bos_token_id: 1,
};
const tokens = Int32Array.from({ length: 30 }, (_, i) => (i * 13 + 5) % 96);
const labels = Int32Array.from(tokens, (_, i) => (i + 1 < 30 ? tokens[i + 1]! : -100));

/** Writes `values` as a raw safetensors file in dtype BF16 (truncating each float's low bits). */
function writeBf16(file: string, tensors: { name: string; shape: number[]; data: Float32Array }[]): void {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const x of tensors) {
    header[x.name] = { dtype: 'BF16', shape: x.shape, data_offsets: [off, off + 2 * x.data.length] };
    off += 2 * x.data.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.alloc(off);
  let p = 0;
  const bits = new Uint32Array(1);
  const f = new Float32Array(bits.buffer);
  for (const x of tensors) {
    for (const v of x.data) {
      f[0] = v;
      data.writeUInt16LE(bits[0]! >>> 16, p);
      p += 2;
    }
  }
  writeFileSync(file, Buffer.concat([len, json, data]));
}

t.test('save then fromPretrained gives bitwise the same weights and loss', async (t) => {
  const m = await Model.create(parseModelConfig(hf), { seed: 21 });
  const dir = join(root, 'saved');
  await m.save(dir);
  const cfgJson = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  t.equal(cfgJson.model_type, 'llama');
  t.equal(cfgJson.torch_dtype, 'float32');
  t.equal(cfgJson.bos_token_id, 1, 'unknown keys are preserved');
  const header = await readSafetensorsHeader(join(dir, 'model.safetensors'));
  t.same([...header.tensors.keys()], m.views.map((v) => v.name), 'HF tensor names, in HF order');
  const back = await Model.fromPretrained(dir);
  t.ok(Buffer.from(back.params.buffer, back.params.byteOffset, back.params.byteLength)
    .equals(Buffer.from(m.params.buffer, m.params.byteOffset, m.params.byteLength)), 'flat parameters bitwise equal');
  const r1 = await m.forward({ tokens, labels });
  const r2 = await back.forward({ tokens, labels });
  t.equal(r2.loss, r1.loss, `same loss ${r1.loss}`);
});

t.test('a BF16 checkpoint loads (converted exactly), tied embeddings need no lm_head', async (t) => {
  const cfg = parseModelConfig({ ...hf, model_type: 'qwen2', tie_word_embeddings: true });
  const src = await Model.create(cfg, { seed: 4 });
  const dir = join(root, 'bf16');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...hf, model_type: 'qwen2', tie_word_embeddings: true, torch_dtype: 'bfloat16' }));
  const tensors = src.views.map((v) => ({ name: v.name, shape: v.shape, data: src.param(v.name) }));
  writeBf16(join(dir, 'model.safetensors'), tensors);
  const m = await Model.fromPretrained(dir);
  t.notOk(m.views.some((v) => v.name === 'lm_head.weight'), 'no lm_head view');
  let maxErr = 0, maxRel = 0;
  for (const v of src.views) {
    const a = src.param(v.name), b = m.param(v.name);
    for (let i = 0; i < a.length; i++) {
      const bits = new Uint32Array(new Float32Array([a[i]!]).buffer)[0]! & 0xffff0000;
      const want = new Float32Array(new Uint32Array([bits]).buffer)[0]!;
      maxErr = Math.max(maxErr, Math.abs(b[i]! - want));
      if (a[i] !== 0) maxRel = Math.max(maxRel, Math.abs(b[i]! - a[i]!) / Math.abs(a[i]!));
    }
  }
  t.equal(maxErr, 0, `every BF16 value converted exactly (max |diff| vs truncated bits ${maxErr})`);
  t.ok(maxRel < 2 ** -7, `relative error vs the F32 source ${maxRel.toExponential(2)} < 2^-7`);
  const r = await m.forward({ tokens, labels });
  t.ok(Number.isFinite(r.loss), `loss ${r.loss}`);
});

t.test('a sharded checkpoint (model.safetensors.index.json) loads', async (t) => {
  const src = await Model.create(parseModelConfig(hf), { seed: 8 });
  const dir = join(root, 'sharded');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hf));
  const half = Math.floor(src.views.length / 2);
  const shards = [src.views.slice(0, half), src.views.slice(half)];
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < 2; s++) {
    const file = `model-0000${s + 1}-of-00002.safetensors`;
    await writeSafetensors(join(dir, file), shards[s]!.map((v) => ({ name: v.name, shape: v.shape, data: src.param(v.name) })));
    for (const v of shards[s]!) weightMap[v.name] = file;
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  const m = await Model.fromPretrained(dir);
  t.ok(Buffer.from(m.params.buffer, m.params.byteOffset, m.params.byteLength)
    .equals(Buffer.from(src.params.buffer, src.params.byteOffset, src.params.byteLength)), 'bitwise equal to the source');
});

t.test('missing or misshapen tensors and missing files give coded errors', async (t) => {
  const src = await Model.create(parseModelConfig(hf), { seed: 8 });
  const dir = join(root, 'broken');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hf));
  const all = src.views.map((v) => ({ name: v.name, shape: v.shape, data: src.param(v.name) }));
  await writeSafetensors(join(dir, 'model.safetensors'), all.filter((x) => x.name !== 'model.layers.1.mlp.up_proj.weight'));
  await t.rejects(Model.fromPretrained(dir), { code: 'ERR_SAFETENSORS', message: /missing tensor model\.layers\.1\.mlp\.up_proj\.weight/ }, 'missing tensor');
  await writeSafetensors(join(dir, 'model.safetensors'), all.map((x) => (x.name === 'model.norm.weight' ? { ...x, shape: [6, 8] } : x)));
  await t.rejects(Model.fromPretrained(dir), { code: 'ERR_SAFETENSORS', message: /model\.norm\.weight has shape \[6, 8\].*\[48\]/ }, 'wrong shape');
  await t.rejects(Model.fromPretrained(join(root, 'does-not-exist')), { code: 'ERR_FILE' }, 'nonexistent directory');
  const noWeights = join(root, 'no-weights');
  mkdirSync(noWeights, { recursive: true });
  writeFileSync(join(noWeights, 'config.json'), JSON.stringify(hf));
  await t.rejects(Model.fromPretrained(noWeights), { code: 'ERR_FILE' }, 'no model.safetensors');
  const badCfg = join(root, 'bad-config');
  mkdirSync(badCfg, { recursive: true });
  writeFileSync(join(badCfg, 'config.json'), JSON.stringify({ ...hf, model_type: 'mixtral' }));
  await t.rejects(Model.fromPretrained(badCfg), { code: 'ERR_CONFIG', message: /model_type/ }, 'unsupported model type');
});
