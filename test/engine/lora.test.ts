// LoRA adapters of the native model: PEFT names and initialization, the adapter math against the
// merged-weight model (W + (alpha/r) B A, computed in fp64 here), the adapter gradients against
// the chain rule through the merged model's weight gradients (which exercises the input
// gradients through every adapter) and against central finite differences (with and without
// activation checkpointing, with and without dropout), frozen base gradients, the disable switch,
// keyed dropout masks, and the PEFT save/load round trip with its coded errors.
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model, type ForwardInput } from '../../src/engine/model/index.js';
import { LORA_MODULES } from '../../src/engine/lora.js';
import { parseModelConfig, type ModelConfig } from '../../src/engine/modelConfig.js';
import { native } from '../../src/engine/native.js';
import { readSafetensorsHeader } from '../../src/engine/safetensors.js';
import { lcg as rng, packedDocs } from '../helpers/packedBatch.js';
import { fdTensors } from './helpers/fdTensors.js';

const LLAMA: ModelConfig = parseModelConfig({
  model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, initializer_range: 0.1,
});
const QWEN: ModelConfig = parseModelConfig({
  model_type: 'qwen2', vocab_size: 50, hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: true, initializer_range: 0.1,
});

// The families of issue 16 at the same size; their short test sequences (documents of 10-14
// tokens) run past the rope's original context (8) and the sliding window (6).
const FAMILY_BASE = { vocab_size: 50, hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, initializer_range: 0.1 };
const LLAMA31: ModelConfig = parseModelConfig({ ...FAMILY_BASE, model_type: 'llama', head_dim: 12, rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8 } });
const QWEN_YARN: ModelConfig = parseModelConfig({ ...FAMILY_BASE, model_type: 'qwen2', tie_word_embeddings: true, max_position_embeddings: 32, rope_scaling: { type: 'yarn', factor: 4.0, original_max_position_embeddings: 8 } });
const QWEN3: ModelConfig = parseModelConfig({ ...FAMILY_BASE, model_type: 'qwen3', head_dim: 16, tie_word_embeddings: true });
const MISTRAL: ModelConfig = parseModelConfig({ ...FAMILY_BASE, model_type: 'mistral', sliding_window: 6 });

function batch(vocab: number, lens: number[], seed: number): ForwardInput & { tokenLoss: Float32Array } {
  const docs = packedDocs(vocab, lens, seed);
  return { ...docs, normalizer: docs.tokens.length, tokenLoss: new Float32Array(docs.tokens.length) };
}

/** Fills every lora_B with U(-b, b) (B = 0 would hide most of the adapter math). */
function randomizeB(m: Model, seed: number, b = 0.2): void {
  const r = rng(seed);
  for (const v of m.lora!.views) {
    if (!v.name.endsWith('lora_B.weight')) continue;
    const p = m.lora!.params.subarray(v.offset, v.offset + v.numel);
    for (let i = 0; i < p.length; i++) p[i] = (2 * r() - 1) * b;
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function maxAbs(a: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]!));
  return d;
}

function adapterTensor(m: Model, name: string, which: 'params' | 'grads'): Float32Array {
  const v = m.lora!.views.find((x) => x.name === name);
  if (!v) throw new Error(`no adapter tensor ${name}`);
  return m.lora![which].subarray(v.offset, v.offset + v.numel);
}

/** Base tensor name of an adapter (`base_model.model.X.lora_A.weight` -> `X.weight`). */
function baseName(adapter: string): string {
  return adapter.replace(/^base_model\.model\./, '').replace(/\.lora_[AB]\.weight$/, '.weight');
}

/** A copy of m's base model with every adapted weight replaced by W + s B A (fp64 products). */
async function mergedCopy(m: Model): Promise<Model> {
  const merged = await Model.create(m.config, { seed: 0 });
  merged.params.set(m.params);
  const l = m.lora!;
  const s = l.alpha / l.rank;
  for (let i = 0; i < l.views.length; i += 2) {
    const va = l.views[i]!;
    const vb = l.views[i + 1]!;
    const A = adapterTensor(m, va.name, 'params');
    const B = adapterTensor(m, vb.name, 'params');
    const [out, r] = vb.shape as [number, number];
    const inn = va.shape[1]!;
    const W = merged.param(baseName(va.name));
    for (let o = 0; o < out; o++) {
      for (let j = 0; j < inn; j++) {
        let acc = 0;
        for (let k = 0; k < r; k++) acc += B[o * r + k]! * A[k * inn + j]!;
        W[o * inn + j] = W[o * inn + j]! + s * acc;
      }
    }
  }
  return merged;
}

t.test('attachLora: PEFT names, shapes and order; A ~ U(+-1/sqrt(in)) seeded, B = 0; base frozen', async (t) => {
  const m = await Model.create(LLAMA, { seed: 1 });
  const l = await m.attachLora({ rank: 4, seed: 7 });
  t.equal(l.alpha, 8, 'alpha defaults to 2 * rank');
  t.same(l.targets, [...LORA_MODULES], 'targets default to all');
  const want: string[] = [];
  for (let layer = 0; layer < 2; layer++) {
    for (const mod of LORA_MODULES) {
      const parent = ['gate_proj', 'up_proj', 'down_proj'].includes(mod) ? 'mlp' : 'self_attn';
      for (const ab of ['A', 'B']) want.push(`base_model.model.model.layers.${layer}.${parent}.${mod}.lora_${ab}.weight`);
    }
  }
  t.same(l.views.map((v) => v.name), want, 'PEFT tensor names in module order, lora_A before lora_B');
  t.ok(l.views.every((v) => v.offset % 16 === 0), 'every view 64-byte aligned');
  const q = m.view('model.layers.0.self_attn.q_proj.weight');
  const down = m.view('model.layers.1.mlp.down_proj.weight');
  t.same(l.views[0]!.shape, [4, q.shape[1]], 'q_proj lora_A [r, in]');
  t.same(l.views[1]!.shape, [q.shape[0], 4], 'q_proj lora_B [out, r]');
  t.same(l.views.at(-2)!.shape, [4, down.shape[1]], 'down_proj lora_A [r, intermediate]');
  for (const v of l.views) {
    const p = l.params.subarray(v.offset, v.offset + v.numel);
    if (v.name.includes('lora_B')) {
      t.equal(maxAbs(p), 0, `${v.name} is zero`);
    } else {
      const bound = 1 / Math.sqrt(v.shape[1]!);
      const mean = p.reduce((a, x) => a + x, 0) / p.length;
      const meanSq = p.reduce((a, x) => a + x * x, 0) / p.length;
      // U(-b, b): mean 0 (std b/sqrt(3n)), E[x^2] = b^2/3
      t.ok(maxAbs(p) <= bound && Math.abs(mean) < 4 * bound / Math.sqrt(3 * p.length) && Math.abs(meanSq / (bound * bound / 3) - 1) < 0.35,
        `${v.name}: max |a| ${maxAbs(p).toFixed(4)} <= ${bound.toFixed(4)}, mean ${mean.toExponential(2)}, E[a^2]/(b^2/3) ${(meanSq / (bound * bound / 3)).toFixed(3)}`);
    }
  }
  const m2 = await Model.create(LLAMA, { seed: 1 });
  const l2 = await m2.attachLora({ rank: 4, seed: 7 });
  t.equal(Buffer.compare(Buffer.from(l.params.buffer, l.params.byteOffset, l.params.byteLength), Buffer.from(l2.params.buffer, l2.params.byteOffset, l2.params.byteLength)), 0, 'same seed: same bits');
  const m3 = await Model.create(LLAMA, { seed: 1 });
  const l3 = await m3.attachLora({ rank: 4, seed: 8 });
  t.ok(maxAbsDiff(l.params, l3.params) > 0.01, 'another seed: other values');

  t.same(m.trainable.views.map((v) => v.name), want, 'trainable = the adapters');
  t.equal(m.trainable.params, l.params, 'trainable params are the adapter buffer');
  await t.rejects(m.attachLora({ rank: 2 }), { code: 'ERR_STATE' }, 'a second attach is refused');
  await t.rejects((await Model.create(LLAMA)).attachLora({ rank: 0 }), { code: 'ERR_CONFIG' });
  await t.rejects((await Model.create(LLAMA)).attachLora({ rank: 2, targets: ['q_proj', 'x_proj'] }), { code: 'ERR_CONFIG', message: /x_proj/ });
  await t.rejects((await Model.create(LLAMA)).attachLora({ rank: 2, dropout: 1 }), { code: 'ERR_CONFIG' });
});

t.test('B = 0 gives exactly the base loss; disabled adapters give the base loss; backward leaves base grads at 0', async (t) => {
  const b = batch(LLAMA.vocabSize, [12, 9], 3);
  const m = await Model.create(LLAMA, { seed: 2 });
  const base = await m.forward(b);
  const baseTok = Float32Array.from(b.tokenLoss);
  await m.backward();
  t.ok(maxAbs(m.grads) > 0, 'the full model has gradients before LoRA');
  await m.attachLora({ rank: 4, alpha: 16, seed: 1 });
  t.equal(maxAbs(m.grads), 0, 'attaching zeroes the base gradients');
  const init = await m.forward(b);
  t.equal(init.loss, base.loss, `B = 0: the base loss bit for bit (${init.loss} vs ${base.loss})`);
  t.equal(maxAbsDiff(b.tokenLoss, baseTok), 0, 'B = 0: same token losses');
  await m.backward();
  t.equal(maxAbs(m.grads), 0, 'base gradients stay 0 (frozen)');
  const gA = adapterTensor(m, 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', 'grads');
  t.ok(maxAbs(gA) > 0, `lora_B gets a gradient at B = 0 (max ${maxAbs(gA).toExponential(2)})`);

  randomizeB(m, 5);
  const on = await m.forward(b);
  t.ok(Math.abs(on.loss - base.loss) > 1e-3, `random B changes the loss (${on.loss} vs ${base.loss})`);
  m.setAdaptersEnabled(false);
  t.equal(m.adaptersEnabled, false);
  await m.zeroGrad();
  const off = await m.forward(b);
  t.equal(off.loss, base.loss, `disabled: the base loss bit for bit (${off.loss} vs ${base.loss})`);
  await m.backward();
  t.equal(maxAbs(m.lora!.grads), 0, 'a backward after a disabled forward accumulates no adapter gradient');
  t.equal(maxAbs(m.grads), 0, '... and no base gradient');
  m.setAdaptersEnabled(true);
  const again = await m.forward(b);
  t.equal(again.loss, on.loss, 're-enabled: the adapter loss again');
  await m.backward();
  const plain = await Model.create(LLAMA);
  t.throws(() => plain.setAdaptersEnabled(false), { code: 'ERR_STATE' });
  t.equal(plain.trainable.params, plain.params, 'without LoRA trainable is the whole model');
});

for (const [label, cfg, targets] of [
  ['llama, all modules', LLAMA, 'all'],
  ['qwen2 (q/k/v biases, tied embeddings), q_proj + v_proj + down_proj', QWEN, ['q_proj', 'v_proj', 'down_proj']],
  ['llama 3.1 rope scaling, head_dim 12, all modules', LLAMA31, 'all'],
  ['qwen2.5 yarn rope, all modules', QWEN_YARN, 'all'],
  ['qwen3 (q/k norm after the adapted q/k projections), all modules', QWEN3, 'all'],
  ['mistral sliding window, q_proj + k_proj + o_proj', MISTRAL, ['q_proj', 'k_proj', 'o_proj']],
] as const) {
  t.test(`adapter math and gradients equal the merged-weight model (${label})`, async (t) => {
    const m = await Model.create(cfg, { seed: 4 });
    if (cfg === QWEN) {
      const r = rng(2);
      for (const v of m.views) if (v.name.endsWith('.bias')) for (let i = 0; i < v.numel; i++) m.params[v.offset + i] = (r() - 0.5) * 0.2;
    }
    const l = await m.attachLora({ rank: 3, alpha: 5, targets, seed: 9 });
    t.equal(l.views.length, 2 * cfg.numHiddenLayers * (targets === 'all' ? 7 : 3), 'adapter tensor count');
    randomizeB(m, 11);
    const merged = await mergedCopy(m);
    const b = batch(cfg.vocabSize, [14, 10], 6);
    const ref = { ...b, tokenLoss: new Float32Array(b.tokenLoss.length) };
    const lr = await m.forwardBackward(b);
    const mr = await merged.forwardBackward(ref);
    const dTok = maxAbsDiff(b.tokenLoss, ref.tokenLoss);
    t.ok(Math.abs(lr.loss - mr.loss) <= 1e-5 * Math.abs(mr.loss) && dTok <= 2e-5 * maxAbs(ref.tokenLoss),
      `loss ${lr.loss} vs merged ${mr.loss}; token losses max |diff| ${dTok.toExponential(2)}`);
    // Chain rule through W' = W + s B A:  dA = s B^T dW',  dB = s dW' A^T.
    const s = l.alpha / l.rank;
    let worst = 0;
    for (let i = 0; i < l.views.length; i += 2) {
      const va = l.views[i]!;
      const vb = l.views[i + 1]!;
      const A = adapterTensor(m, va.name, 'params');
      const B = adapterTensor(m, vb.name, 'params');
      const gA = adapterTensor(m, va.name, 'grads');
      const gB = adapterTensor(m, vb.name, 'grads');
      const dW = merged.grad(baseName(va.name));
      const [out, r] = vb.shape as [number, number];
      const inn = va.shape[1]!;
      const wantA = new Float64Array(r * inn);
      const wantB = new Float64Array(out * r);
      for (let o = 0; o < out; o++) {
        for (let j = 0; j < inn; j++) {
          const g = dW[o * inn + j]!;
          for (let k = 0; k < r; k++) {
            wantA[k * inn + j] += s * B[o * r + k]! * g;
            wantB[o * r + k] += s * g * A[k * inn + j]!;
          }
        }
      }
      for (const [name, got, want] of [[va.name, gA, wantA], [vb.name, gB, wantB]] as const) {
        const d = maxAbsDiff(got, want);
        const tol = 1e-4 * maxAbs(want) + 1e-7;
        worst = Math.max(worst, d / tol);
        t.ok(d <= tol, `${name}: max |diff| ${d.toExponential(2)} (max |g| ${maxAbs(want).toExponential(2)}, tol ${tol.toExponential(2)})`);
      }
    }
    t.comment(`worst |diff|/tol over ${l.views.length} adapter tensors: ${worst.toFixed(3)}`);
  });
}

async function fdAdapters(t: Tap.Test, m: Model, b: ForwardInput, perTensor: number, eps: number, rtol: number, atol: number): Promise<number> {
  await m.zeroGrad();
  await m.forwardBackward(b);
  const tensors = m.lora!.views.map((v) => ({ name: v.name, params: adapterTensor(m, v.name, 'params'), grads: adapterTensor(m, v.name, 'grads') }));
  const { worst } = await fdTensors(t, tensors, async () => (await m.forward(b)).loss, { perTensor, eps, rtol, atol, seed: 17 });
  t.equal(maxAbs(m.grads), 0, 'no base gradient');
  return worst;
}

for (const checkpointing of [false, true]) {
  for (const dropout of [0, 0.3]) {
    t.test(`finite differences of every adapter tensor (checkpointing ${checkpointing}, dropout ${dropout})`, async (t) => {
      const m = await Model.create(LLAMA, { seed: 3, checkpointing });
      await m.attachLora({ rank: 2, alpha: 4, dropout, seed: 5 });
      randomizeB(m, 8, 0.3);
      // the same key for every evaluation: the same masks, so the loss is a smooth function
      const b = { ...batch(LLAMA.vocabSize, [11, 8], 12), dropoutKey: 77 };
      const worst = await fdAdapters(t, m, b, 2, 1e-2, 5e-3, 2e-5);
      t.comment(`worst |diff|/tol ${worst.toFixed(3)}`);
    });
  }
}

for (const [label, cfg] of [['llama 3.1 rope', LLAMA31], ['qwen2.5 yarn', QWEN_YARN], ['qwen3', QWEN3], ['mistral sliding window', MISTRAL]] as const) {
  for (const checkpointing of [false, true]) {
    t.test(`finite differences of every adapter tensor: ${label} (checkpointing ${checkpointing})`, async (t) => {
      const m = await Model.create(cfg, { seed: 3, checkpointing });
      await m.attachLora({ rank: 2, alpha: 4, seed: 5 });
      randomizeB(m, 8, 0.3);
      const worst = await fdAdapters(t, m, batch(cfg.vocabSize, [14, 10], 12), 2, 1e-2, 5e-3, 2e-5);
      t.comment(`worst |diff|/tol ${worst.toFixed(3)}`);
    });
  }
}

t.test('checkpointing changes no bit of the loss or the adapter gradients (dropout 0.2)', async (t) => {
  const run = async (checkpointing: boolean) => {
    const m = await Model.create(LLAMA, { seed: 3, checkpointing });
    await m.attachLora({ rank: 4, dropout: 0.2, seed: 5 });
    randomizeB(m, 8);
    const r = await m.forwardBackward({ ...batch(LLAMA.vocabSize, [20], 2), dropoutKey: 3 });
    return { loss: r.loss, grads: Float32Array.from(m.lora!.grads) };
  };
  const a = await run(false);
  const c = await run(true);
  t.equal(c.loss, a.loss, 'same loss');
  t.equal(maxAbsDiff(a.grads, c.grads), 0, `same adapter gradients (max |diff| ${maxAbsDiff(a.grads, c.grads)})`);
});

t.test('dropout masks are keyed: same key same bits, another key other masks; keep rate 1 - p', async (t) => {
  const m = await Model.create(LLAMA, { seed: 3 });
  await m.attachLora({ rank: 4, dropout: 0.25, seed: 5 });
  randomizeB(m, 8);
  const b = batch(LLAMA.vocabSize, [24], 4);
  const l1 = (await m.forward({ ...b, dropoutKey: 1 })).loss;
  await m.backward();
  const g1 = Float32Array.from(m.lora!.grads);
  await m.zeroGrad();
  const l1b = (await m.forward({ ...b, dropoutKey: 1 })).loss;
  await m.backward();
  t.equal(l1b, l1, 'same key: same loss');
  t.equal(maxAbsDiff(g1, m.lora!.grads), 0, 'same key: same gradients');
  const l2 = (await m.forward({ ...b, dropoutKey: 2 })).loss;
  await m.backward();
  t.not(l2, l1, `another key: another loss (${l1} vs ${l2})`);
  await t.rejects(m.forward({ ...b, dropoutKey: -1 }), { code: 'ERR_ARG' });
  // no key: no dropout (evaluation), i.e. the model of dropout 0 with the same adapters
  const nod = await Model.create(LLAMA, { seed: 3 });
  await nod.attachLora({ rank: 4, dropout: 0, seed: 5 });
  randomizeB(nod, 8);
  const eval0 = (await nod.forward(b)).loss;
  const evalD = (await m.forward(b)).loss;
  await m.backward();
  t.equal(evalD, eval0, `without a key dropout is off (${evalD} vs ${eval0})`);

  const mask = (key: number, layer: number, mod: number, count: number, p: number) =>
    (native().loraDropoutMask as (...a: number[]) => Uint8Array)(5, key, layer, mod, count, p);
  const n = 200_000;
  for (const p of [0.1, 0.5]) {
    const k = mask(9, 0, 0, n, p).reduce((a, x) => a + x, 0) / n;
    const sd = Math.sqrt(p * (1 - p) / n);
    t.ok(Math.abs(k - (1 - p)) < 5 * sd, `p ${p}: kept fraction ${k.toFixed(4)} (expected ${1 - p}, 5 sd = ${(5 * sd).toExponential(2)})`);
  }
  const a = mask(9, 0, 0, 4096, 0.5);
  const agree = (x: Uint8Array, y: Uint8Array) => x.reduce((s, v, i) => s + (v === y[i] ? 1 : 0), 0) / x.length;
  t.ok(Math.abs(agree(a, mask(10, 0, 0, 4096, 0.5)) - 0.5) < 0.05, 'another key: independent mask');
  t.ok(Math.abs(agree(a, mask(9, 1, 0, 4096, 0.5)) - 0.5) < 0.05, 'another layer: independent mask');
  t.ok(Math.abs(agree(a, mask(9, 0, 1, 4096, 0.5)) - 0.5) < 0.05, 'another module: independent mask');
  t.equal(agree(a, mask(9, 0, 0, 4096, 0.5)), 1, 'same arguments: same mask');
});

t.test('saveAdapter / loadAdapter: PEFT layout, same token losses in a fresh model, coded errors', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ua-lora-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const m = await Model.create(QWEN, { seed: 6 });
  await m.attachLora({ rank: 4, alpha: 12, dropout: 0.1, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], seed: 3 });
  randomizeB(m, 21);
  await m.saveAdapter(dir, { baseModelNameOrPath: 'some/base' });
  const cfg = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
  t.match(cfg, { peft_type: 'LORA', r: 4, lora_alpha: 12, lora_dropout: 0.1, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], base_model_name_or_path: 'some/base', task_type: 'CAUSAL_LM', bias: 'none', fan_in_fan_out: false, use_rslora: false, use_dora: false }, 'adapter_config.json');
  const h = await readSafetensorsHeader(join(dir, 'adapter_model.safetensors'));
  t.same([...h.tensors.keys()], m.lora!.views.map((v) => v.name), 'adapter_model.safetensors holds the PEFT names');
  t.ok([...h.tensors.values()].every((e) => e.dtype === 'F32'), 'F32 tensors');
  t.equal(h.metadata.format, 'pt', 'format metadata as PEFT writes it');

  const b = batch(QWEN.vocabSize, [16, 7], 8);
  const want = Float32Array.from((await m.forward(b), b.tokenLoss));
  await m.backward();
  const fresh = await Model.create(QWEN, { seed: 6 });
  const l = await fresh.loadAdapter(dir);
  t.match(l, { rank: 4, alpha: 12, dropout: 0.1 });
  t.equal(maxAbsDiff(l.params, m.lora!.params), 0, 'adapter parameters bit for bit');
  const got = Float32Array.from((await fresh.forward(b), b.tokenLoss));
  await fresh.backward();
  t.equal(maxAbsDiff(got, want), 0, 'same token losses after loading');
  // in training mode the masks follow the LoRA seed: the same seed gives the same losses
  const withKey = { ...b, dropoutKey: 4 };
  const wantKeyed = Float32Array.from((await m.forward(withKey), withKey.tokenLoss));
  await m.backward();
  const seeded = await Model.create(QWEN, { seed: 6 });
  await seeded.loadAdapter(dir, { seed: 3 });
  const gotKeyed = Float32Array.from((await seeded.forward(withKey), withKey.tokenLoss));
  await seeded.backward();
  t.equal(maxAbsDiff(gotKeyed, wantKeyed), 0, 'same dropout-key token losses when loaded with the same seed');

  // into already-attached adapters: the settings must match
  const same = await Model.create(QWEN, { seed: 6 });
  await same.attachLora({ rank: 4, alpha: 12, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] });
  await same.loadAdapter(dir);
  t.equal(maxAbsDiff(same.lora!.params, m.lora!.params), 0, 'loads into matching attached adapters');
  const other = await Model.create(QWEN, { seed: 6 });
  await other.attachLora({ rank: 2, alpha: 12, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] });
  await t.rejects(other.loadAdapter(dir), { code: 'ERR_CONFIG', message: /r 4 vs 2/ });
  // a base model of another width: shapes disagree
  const wide = await Model.create({ ...QWEN, hiddenSize: 48 }, { seed: 1 });
  await t.rejects(wide.loadAdapter(dir), { code: 'ERR_SAFETENSORS', message: /shape/ });
  // a missing tensor
  const partial = await mkdtemp(join(tmpdir(), 'ua-lora-'));
  t.teardown(() => rm(partial, { recursive: true, force: true }));
  await writeFile(join(partial, 'adapter_config.json'), JSON.stringify({ ...cfg, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj'] }));
  await writeFile(join(partial, 'adapter_model.safetensors'), await readFile(join(dir, 'adapter_model.safetensors')));
  await t.rejects((await Model.create(QWEN)).loadAdapter(partial), { code: 'ERR_SAFETENSORS', message: /missing tensor .*up_proj/ });
  await writeFile(join(partial, 'adapter_config.json'), JSON.stringify({ ...cfg, use_dora: true }));
  await t.rejects((await Model.create(QWEN)).loadAdapter(partial), { code: 'ERR_CONFIG', message: /use_dora/ });
  await t.rejects((await Model.create(QWEN)).loadAdapter(join(partial, 'nope')), { code: 'ERR_FILE' });
});
