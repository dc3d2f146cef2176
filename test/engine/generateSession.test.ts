// The KV-cache inference session (native/src/model/llama_infer.h) against the independent fp64
// HF decoder (helpers/hfDecoder.ts): the logits of a prompt prefilled in one call (chunks of 256
// tokens past the first, so both attention paths run), then of tokens appended one at a time and
// several at a time, equal the fp64 logits of a full forward at every position, within 1e-5 of
// the largest logit, for every model family and rope type the engine runs (GQA, Qwen2 biases
// with tied embeddings, Qwen3's q/k norm, Mistral's sliding window, llama3 and yarn rope, and
// dynamic rope past max_position_embeddings, whose frequencies follow the sequence length so the
// cache is recomputed). LoRA adapters: the session's logits equal the fp64 decoder over the
// merged weights W + (alpha / r) B A, and switching them off (or attaching them after the cache
// was filled) recomputes the cache. The cached-attention kernel alone equals the fp64 attention
// rows of the full sequence. Bad input is refused with coded errors.
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig } from '../../src/engine/modelConfig.js';
import { InferSession } from '../../src/engine/generate/index.js';
import { native } from '../../src/engine/native.js';
import { hfDecoder } from './helpers/hfDecoder.js';
import { makeCase, maxAbs, maxDiff, reference } from './helpers/attentionReference.js';
import { lcg } from '../helpers/packedBatch.js';

const TOL = 1e-5;
const BASE = {
  vocab_size: 48, hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, head_dim: 16, rms_norm_eps: 1e-5, initializer_range: 0.2,
};

type Hf = Record<string, unknown>;

async function randomModel(hf: Hf, seed = 31): Promise<Model> {
  const m = await Model.create(parseModelConfig(hf), { seed });
  // non-trivial norms and biases, so every parameter matters
  for (const v of m.views) {
    if (v.name.endsWith('.bias') || v.name.endsWith('norm.weight')) {
      const p = m.param(v.name);
      for (let i = 0; i < p.length; i++) p[i] = (v.name.endsWith('.bias') ? 0 : 1) + 0.3 * Math.sin(i * 1.7 + v.offset);
    }
  }
  return m;
}

function tokens(n: number, vocab: number, seed: number): number[] {
  const r = lcg(seed);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
}

/** fp64 logits [n, V] of a full forward over `ids` (one document, positions 0..n-1). */
function refLogits(hf: Hf, param: (name: string) => Float32Array | Float64Array | undefined, ids: number[]): Float64Array {
  const n = ids.length;
  return hfDecoder(hf, param, {
    tokens: Int32Array.from(ids),
    labels: new Int32Array(n).fill(-100),
    positions: Int32Array.from({ length: n }, (_, i) => i),
    docLens: [n],
    normalizer: 1,
  }).logits;
}

/** max |a - b| over rows [from, from + rows) of b (a holds those rows only), relative to max |b| there. */
function rowsErr(a: Float32Array, b: Float64Array, from: number, rows: number, V: number): number {
  const ref = b.subarray(from * V, (from + rows) * V);
  return maxDiff(a, ref) / Math.max(maxAbs(ref), 1e-30);
}

const cases: Record<string, { hf: Hf; prompt: number; decode: number }> = {
  'llama, GQA 4/2, head_dim 16 != 32 / 4, prompt of 300 tokens (two prefill chunks)': { hf: { ...BASE, model_type: 'llama' }, prompt: 300, decode: 6 },
  'llama 3.1 rope (x8 from 64)': { hf: { ...BASE, model_type: 'llama', max_position_embeddings: 512, rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64 } }, prompt: 90, decode: 6 },
  'qwen2.5: q/k/v biases, tied embeddings, yarn x4 from 32': { hf: { ...BASE, model_type: 'qwen2', tie_word_embeddings: true, rope_theta: 1000000, max_position_embeddings: 256, rope_scaling: { type: 'yarn', factor: 4.0, original_max_position_embeddings: 32 } }, prompt: 70, decode: 6 },
  'qwen3: q/k norm, attention_bias': { hf: { ...BASE, model_type: 'qwen3', attention_bias: true, rope_theta: 1000000 }, prompt: 40, decode: 6 },
  'mistral: sliding window 24 (the cache is read inside the window only)': { hf: { ...BASE, model_type: 'mistral', sliding_window: 24 }, prompt: 50, decode: 8 },
  'qwen2: sliding window 16 from layer 1 (max_window_layers 1)': { hf: { ...BASE, model_type: 'qwen2', use_sliding_window: true, sliding_window: 16, max_window_layers: 1 }, prompt: 40, decode: 6 },
};

for (const [label, c] of Object.entries(cases)) {
  t.test(label, async (t) => {
    const m = await randomModel(c.hf);
    const V = m.config.vocabSize;
    const param = (name: string) => (m.views.some((v) => v.name === name) ? m.param(name) : undefined);
    const ids = tokens(c.prompt + c.decode + 3, V, 7);
    const ref = refLogits(c.hf, param, ids);
    const s = new InferSession(m);
    const pre = await s.append(ids.slice(0, c.prompt), { allLogits: true });
    const e0 = rowsErr(pre, ref, 0, c.prompt, V);
    t.ok(e0 < TOL, `prefill of ${c.prompt} tokens, every position: max |logit - fp64| / max |logit| ${e0.toExponential(2)} < ${TOL}`);
    let worst = 0;
    for (let i = c.prompt; i < c.prompt + c.decode; i++) worst = Math.max(worst, rowsErr(await s.append([ids[i]!]), ref, i, 1, V));
    t.ok(worst < TOL, `${c.decode} tokens appended one at a time: worst relative diff ${worst.toExponential(2)} < ${TOL}`);
    const k = c.prompt + c.decode;
    const three = await s.append(ids.slice(k, k + 3), { allLogits: true });
    const e3 = rowsErr(three, ref, k, 3, V);
    t.ok(e3 < TOL, `three tokens in one append after the cache: ${e3.toExponential(2)} < ${TOL}`);
    t.equal(s.length, ids.length, 'the session holds every token');
    t.same([...s.tokens()], ids, 'tokens() is the sequence');
    // truncate and continue: the same logits as the first time at that position
    s.truncate(c.prompt);
    const again = await s.append([ids[c.prompt]!]);
    const et = rowsErr(again, ref, c.prompt, 1, V);
    t.ok(et < TOL, `after truncate(${c.prompt}) the next token's logits are those of position ${c.prompt}: ${et.toExponential(2)}`);
    t.ok(s.cacheBytes > 0, `cacheBytes ${s.cacheBytes}`);
    s.close();
    m.close();
  });
}

t.test('dynamic rope x2 from 64: past max_position_embeddings every step recomputes with the new frequencies', async (t) => {
  const hf = { ...BASE, model_type: 'llama', max_position_embeddings: 64, rope_scaling: { rope_type: 'dynamic', factor: 2.0 } };
  const m = await randomModel(hf);
  const V = m.config.vocabSize;
  const param = (name: string) => (m.views.some((v) => v.name === name) ? m.param(name) : undefined);
  const ids = tokens(70, V, 9);
  const s = new InferSession(m);
  await s.append(ids.slice(0, 60));
  let worst = 0;
  for (let len = 61; len <= 70; len++) {
    const got = await s.append([ids[len - 1]!]);
    // the full forward over the first `len` tokens: its base depends on len once len > 64
    const ref = refLogits(hf, param, ids.slice(0, len));
    worst = Math.max(worst, rowsErr(got, ref, len - 1, 1, V));
  }
  t.ok(worst < TOL, `lengths 61..70 across max_position_embeddings 64: worst ${worst.toExponential(2)} < ${TOL}`);
  // a recompute that ignored the length would differ: the table at 70 is not the table at 64
  const plain = { ...hf, rope_scaling: null };
  const a = refLogits(hf, param, ids), b = refLogits(plain, param, ids);
  t.ok(rowsErr(Float32Array.from(a.subarray(69 * V, 70 * V)), b, 69, 1, V) > 100 * TOL, 'the dynamic base changes the last logits (the case exercises it)');
  m.close();
});

t.test('LoRA: the session computes base + adapters (fp64 reference over the merged weights), and an adapter switch recomputes the cache', async (t) => {
  const hf = { ...BASE, model_type: 'qwen2' };
  const m = await randomModel(hf);
  const V = m.config.vocabSize;
  const ids = tokens(30, V, 11);
  const s = new InferSession(m);
  await s.append(ids.slice(0, 20)); // cached before the adapters exist
  const l = await m.attachLora({ rank: 4, alpha: 6, targets: 'all', seed: 5 });
  const r = lcg(3);
  for (let i = 0; i < l.params.length; i++) l.params[i] = (r() * 2 - 1) * 0.3; // B != 0: the adapters matter
  // fp64 merged weights W + (alpha / r) B A
  const scale = l.alpha / l.rank;
  const merged = new Map<string, Float64Array>();
  for (const v of m.views) merged.set(v.name, Float64Array.from(m.param(v.name)));
  for (const v of l.views) {
    const mm = /^base_model\.model\.(.*)\.lora_A\.weight$/.exec(v.name);
    if (!mm) continue;
    const A = l.params.subarray(v.offset, v.offset + v.numel);
    const bv = l.views.find((x) => x.name === v.name.replace('lora_A', 'lora_B'))!;
    const B = l.params.subarray(bv.offset, bv.offset + bv.numel);
    const name = `${mm[1]}.weight`;
    const [out, inn] = m.view(name).shape as [number, number];
    const w = merged.get(name)!;
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inn; i++) {
        let acc = 0;
        for (let k = 0; k < l.rank; k++) acc += B[o * l.rank + k]! * A[k * inn + i]!;
        w[o * inn + i] += scale * acc;
      }
  }
  const ref = refLogits(hf, (name) => merged.get(name), ids);
  const got = await s.append(ids.slice(20), { allLogits: true });
  const e = rowsErr(got, ref, 20, 10, V);
  t.ok(e < TOL, `adapters attached after the cache was filled: the cache is recomputed with them, logits within ${e.toExponential(2)} < ${TOL} of fp64 base + adapters`);
  const base = refLogits(hf, (name) => (m.views.some((v) => v.name === name) ? m.param(name) : undefined), ids);
  const on = rowsErr(got.subarray(9 * V), base, 29, 1, V);
  t.ok(on > 100 * TOL, `the adapters change the logits (by ${on.toExponential(2)} relative): the case exercises them`);
  m.setAdaptersEnabled(false);
  s.truncate(29);
  const off = await s.append([ids[29]!]);
  const eb = rowsErr(off, base, 29, 1, V);
  t.ok(eb < TOL, `adapters disabled: the cache is recomputed, the base model's logits (${eb.toExponential(2)} < ${TOL})`);
  s.close();
  m.close();
});

t.test('attentionCachedForward equals the fp64 attention rows of the whole sequence (GQA, windows)', async (t) => {
  for (const [s, past, window] of [[40, 0, 0], [40, 33, 0], [64, 63, 0], [50, 20, 7], [50, 45, 1]] as const) {
    const sh = { s, H: 4, Hkv: 2, d: 16, causal: true, window };
    const c = makeCase(sh, s + past + window, 1.5);
    const ref = reference(c).out;
    const n = s - past;
    const out = new Float32Array(n * 4 * 16);
    await native().attentionCachedForward(out, c.q.subarray(past * 64), c.k, c.v, n, past, 4, 2, 16, window, 0);
    const e = maxDiff(out, ref.subarray(past * 64)) / maxAbs(ref);
    t.ok(e < 1e-6, `s ${s}, past ${past}, window ${window}: max relative diff ${e.toExponential(2)} < 1e-6`);
  }
});

t.test('bad input: coded errors', async (t) => {
  const m = await randomModel({ ...BASE, model_type: 'llama' });
  const s = new InferSession(m);
  await t.rejects(s.append([48]), { code: 'ERR_ARG' }, 'a token id >= vocab_size');
  await t.rejects(s.append([]), { code: 'ERR_SHAPE' }, 'no token');
  t.throws(() => s.truncate(1), { code: 'ERR_ARG' }, 'truncate past the cached length');
  const p = s.append([1, 2, 3]);
  await t.rejects(s.append([4]), { code: 'ERR_STATE' }, 'a second call while one runs');
  await t.rejects(m.forward({ tokens: Int32Array.of(1, 2), labels: Int32Array.of(2, -100) }), { code: 'ERR_STATE' }, 'the model is busy while the session runs');
  await p;
  t.equal(s.length, 3);
  t.throws(() => new (native().InferSession)({} as never), { code: 'ERR_ARG' }, 'a session needs a native Model');
  s.close();
  t.throws(() => s.length, { code: 'ERR_STATE' }, 'a closed session');
  m.close();
});
