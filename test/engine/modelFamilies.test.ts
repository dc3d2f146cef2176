// The model families and rope types of issue 16 against an independent fp64 re-implementation of
// the HF decoder with its own backward (helpers/hfDecoder.ts, which reads the raw config.json with
// HF's defaults): per-token losses (-log softmax of the logits at the label, every position) and
// the loss within 1e-5 relative, and EVERY parameter gradient within 1e-5 of the tensor's largest
// reference gradient, on packed documents whose positions run past original_max_position_embeddings
// / max_position_embeddings (so every scaled frequency band is exercised), with per-layer sliding
// windows, Qwen3's q/k norm (also under activation checkpointing, which recomputes it), head_dim
// different from hidden / heads, and for `dynamic` a short and a long sequence (the base depends
// on the length). Each case also checks that the rope or window matters for this input: the
// reference with the plain default differs, so a model ignoring it would fail.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig } from '../../src/engine/modelConfig.js';
import { hfDecoder, type RefInput } from './helpers/hfDecoder.js';
import { packedDocs } from '../helpers/packedBatch.js';

const TOL = 1e-5;

const BASE = {
  vocab_size: 48, hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, head_dim: 16, rms_norm_eps: 1e-5, initializer_range: 0.2,
};

interface Case {
  hf: Record<string, unknown>;
  /** document lengths and the position each document starts at */
  docs: [number, number][];
  checkpointing?: boolean;
  /** keys whose removal must change the loss (the feature under test is active) */
  matters?: string[];
}

const cases: Record<string, Case> = {
  'llama 3.1 rope (x8 from 64, low 1, high 4), head_dim 16 != 32 / 4': {
    hf: { ...BASE, model_type: 'llama', rope_theta: 10000, max_position_embeddings: 512, rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64 } },
    docs: [[70, 0], [90, 150]],
    matters: ['rope_scaling'],
  },
  'llama 3.1 rope under activation checkpointing': {
    hf: { ...BASE, model_type: 'llama', rope_theta: 10000, max_position_embeddings: 512, rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64 } },
    docs: [[100, 0], [60, 0]],
    checkpointing: true,
  },
  'llama linear rope x4 (older "type" key), attention_bias': {
    hf: { ...BASE, model_type: 'llama', attention_bias: true, rope_scaling: { type: 'linear', factor: 4 } },
    docs: [[160, 10]],
    matters: ['rope_scaling'],
  },
  'llama dynamic rope x2, short sequence (length <= max_position_embeddings: plain base)': {
    hf: { ...BASE, model_type: 'llama', max_position_embeddings: 128, rope_scaling: { rope_type: 'dynamic', factor: 2.0 } },
    docs: [[50, 0], [70, 40]],
  },
  'llama dynamic rope x2, long sequence (length 300 > 128: the base grows)': {
    hf: { ...BASE, model_type: 'llama', max_position_embeddings: 128, rope_scaling: { rope_type: 'dynamic', factor: 2.0 } },
    docs: [[60, 0], [100, 200]],
    matters: ['rope_scaling'],
  },
  'qwen2.5 yarn x4 from 64 (q/k/v biases, tied, default attention factor)': {
    hf: { ...BASE, model_type: 'qwen2', tie_word_embeddings: true, rope_theta: 1000000, max_position_embeddings: 256, rope_scaling: { type: 'yarn', factor: 4.0, original_max_position_embeddings: 64 } },
    docs: [[90, 0], [70, 100]],
    matters: ['rope_scaling'],
  },
  'yarn x2.5 with beta 16/2, untruncated, mscale/mscale_all_dim': {
    hf: { ...BASE, model_type: 'qwen2', rope_theta: 10000, max_position_embeddings: 96, rope_scaling: { rope_type: 'yarn', factor: 2.5, beta_fast: 16, beta_slow: 2, truncate: false, mscale: 1.2, mscale_all_dim: 0.8 } },
    docs: [[160, 0]],
    matters: ['rope_scaling'],
  },
  'yarn with an explicit attention_factor': {
    hf: { ...BASE, model_type: 'llama', max_position_embeddings: 64, rope_scaling: { rope_type: 'yarn', factor: 3.0, attention_factor: 0.8 } },
    docs: [[80, 30], [80, 0]],
    matters: ['rope_scaling'],
  },
  'qwen3 (q/k norm, head_dim 16, tied, theta 1e6)': {
    hf: { ...BASE, model_type: 'qwen3', tie_word_embeddings: true, rope_theta: 1000000 },
    docs: [[64, 0], [65, 0], [31, 0]],
  },
  'qwen3 under activation checkpointing, with attention_bias and yarn': {
    hf: { ...BASE, model_type: 'qwen3', attention_bias: true, rope_theta: 1000000, max_position_embeddings: 128, rope_scaling: { rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 32 } },
    docs: [[100, 0], [60, 500]],
    checkpointing: true,
    matters: ['rope_scaling'],
  },
  'mistral, sliding window 24 on every layer': {
    hf: { ...BASE, model_type: 'mistral', sliding_window: 24, rope_theta: 1000000 },
    docs: [[130, 0], [30, 0]],
    matters: ['sliding_window'],
  },
  'qwen2 use_sliding_window, window 40 from layer 1 (max_window_layers 1)': {
    hf: { ...BASE, model_type: 'qwen2', use_sliding_window: true, sliding_window: 40, max_window_layers: 1 },
    docs: [[160, 0]],
    matters: ['use_sliding_window'],
  },
  'qwen3 with layer_types (window 33 on layer 0 only)': {
    hf: { ...BASE, model_type: 'qwen3', use_sliding_window: true, sliding_window: 33, layer_types: ['sliding_attention', 'full_attention'] },
    docs: [[100, 0], [60, 7]],
    matters: ['use_sliding_window'],
  },
};

// The example mini configs themselves (their rope blocks, head_dim, q/k norm and window), cut to
// one layer to keep the fp64 reference quick, on 210 packed tokens whose positions reach 319:
// past original_max_position_embeddings 256 (llama3.1-mini, qwen2.5-yarn-mini) and the window 128
// (mistral-mini).
for (const name of ['llama3.1-mini', 'qwen2.5-yarn-mini', 'qwen3-mini', 'mistral-mini']) {
  const hf = { ...JSON.parse(readFileSync(`examples/models/${name}/config.json`, 'utf8')), num_hidden_layers: 1, initializer_range: 0.1 };
  cases[`examples/models/${name} (one layer), 210 tokens`] = { hf, docs: [[150, 0], [60, 260]], matters: name === 'qwen3-mini' ? [] : [name === 'mistral-mini' ? 'sliding_window' : 'rope_scaling'] };
}

function input(c: Case, vocab: number): RefInput & { docLensI32: Int32Array } {
  const lens = c.docs.map(([len]) => len);
  const b = packedDocs(vocab, lens, 97);
  let o = 0;
  for (const [len, start] of c.docs) {
    for (let i = 0; i < len; i++) b.positions[o + i] = start + i;
    o += len;
  }
  for (let i = 5; i < b.labels.length; i += 13) b.labels[i] = -100;
  const normalizer = b.labels.reduce((a, l) => a + (l >= 0 ? 1 : 0), 0) + 3;
  return { tokens: b.tokens, labels: b.labels, positions: b.positions, docLens: lens, docLensI32: b.docLens, normalizer };
}

for (const [label, c] of Object.entries(cases)) {
  t.test(label, async (t) => {
    const config = parseModelConfig(c.hf, label);
    const m = await Model.create(config, { seed: 23, checkpointing: !!c.checkpointing });
    // Non-trivial norms and biases, so every parameter matters.
    for (const v of m.views) {
      if (v.name.endsWith('.bias') || v.name.endsWith('norm.weight')) {
        const p = m.param(v.name);
        for (let i = 0; i < p.length; i++) p[i] = (v.name.endsWith('.bias') ? 0 : 1) + 0.3 * Math.sin(i * 1.7 + v.offset);
      }
    }
    const x = input(c, config.vocabSize);
    const tokenLoss = new Float32Array(x.tokens.length);
    await m.zeroGrad();
    const r = await m.forward({ tokens: x.tokens, labels: x.labels, positions: x.positions, docLens: x.docLensI32, normalizer: x.normalizer, tokenLoss });
    await m.backward();
    const ref = hfDecoder(c.hf, (name) => (m.views.some((v) => v.name === name) ? m.param(name) : undefined), x);

    const lossErr = Math.abs(r.loss - ref.loss) / Math.abs(ref.loss);
    t.ok(lossErr < TOL, `loss ${r.loss} vs fp64 reference ${ref.loss}: relative diff ${lossErr.toExponential(2)} < ${TOL}`);
    let tl = 0;
    for (let i = 0; i < tokenLoss.length; i++) tl = Math.max(tl, Math.abs(tokenLoss[i]! - ref.tokenLoss[i]!) / Math.max(1, ref.tokenLoss[i]!));
    t.ok(tl < TOL, `per-token -log p(label) over ${tokenLoss.length} positions: max relative diff ${tl.toExponential(2)} < ${TOL}`);

    const names = m.views.map((v) => v.name);
    t.same([...ref.grads.keys()].sort(), [...names].sort(), 'the reference reads exactly the model\'s tensors');
    let worst = 0;
    let worstName = '';
    for (const name of names) {
      const g = m.grad(name), gr = ref.grads.get(name)!;
      let diff = 0, mx = 0;
      for (let i = 0; i < g.length; i++) {
        diff = Math.max(diff, Math.abs(g[i]! - gr[i]!));
        mx = Math.max(mx, Math.abs(gr[i]!));
      }
      const e = diff / Math.max(mx, 1e-30);
      if (!(e <= worst)) {
        worst = e;
        worstName = name;
      }
    }
    t.ok(worst < TOL, `every gradient (${names.length} tensors): max |g - g_ref| / max |g_ref| worst ${worstName} ${worst.toExponential(2)} < ${TOL}`);
    for (const key of c.matters ?? []) {
      const { [key]: _drop, ...plain } = c.hf;
      const other = hfDecoder(plain, (name) => (m.views.some((v) => v.name === name) ? m.param(name) : undefined), x);
      const d = Math.abs(other.loss - ref.loss);
      // Ten times the loss tolerance at least: the comparison above would catch a model ignoring it.
      t.ok(d > 10 * TOL * ref.loss, `without ${key} the reference loss moves by ${d.toExponential(2)}: the case exercises it`);
    }
    m.close();
  });
}

t.test('qwen3 defaults: head_dim 128 when absent, no biases; q_norm / k_norm are [head_dim] HF tensors', async (t) => {
  const c = parseModelConfig({ ...BASE, head_dim: undefined, hidden_size: 64, model_type: 'qwen3' });
  t.equal(c.headDim, 128, 'Qwen3Config default head_dim 128, not hidden / heads');
  t.equal(c.qkvBias, false);
  t.equal(c.oBias, false);
  const m = await Model.create(c);
  t.same(m.view('model.layers.1.self_attn.q_norm.weight').shape, [128]);
  t.same(m.view('model.layers.0.self_attn.k_norm.weight').shape, [128]);
  t.same(m.view('model.layers.0.self_attn.q_proj.weight').shape, [4 * 128, 64], 'q_proj [H * head_dim, hidden]');
  t.ok(m.param('model.layers.0.self_attn.q_norm.weight').every((x) => x === 1), 'norms start at 1');
  t.notOk(m.views.some((v) => v.name.endsWith('.bias')), 'no biases');
  m.close();
});
