// The model's forward against a naive fp64 implementation of the HF Llama/Qwen2 decoder written
// here from REFERENCE §1 (RMSNorm, rotate-half RoPE on global positions, GQA h -> h / (H/Hkv),
// causal attention inside documents, SwiGLU, final norm, LM head or tied embedding, CE with -100).
// The finite-difference test proves the gradient matches the loss; this one proves the loss is
// the right function (a swapped gate/up or a wrong GQA mapping would pass FD but fail here).
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig, type ModelConfig } from '../../src/engine/modelConfig.js';

type Mat = Float64Array; // row-major [rows, cols]

function linear(x: Mat, n: number, inDim: number, W: Float32Array, outDim: number, b?: Float32Array): Mat {
  const y = new Float64Array(n * outDim);
  for (let i = 0; i < n; i++)
    for (let o = 0; o < outDim; o++) {
      let s = b ? b[o]! : 0;
      for (let k = 0; k < inDim; k++) s += x[i * inDim + k]! * W[o * inDim + k]!;
      y[i * outDim + o] = s;
    }
  return y;
}

function rms(x: Mat, n: number, D: number, w: Float32Array, eps: number): Mat {
  const y = new Float64Array(n * D);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let j = 0; j < D; j++) ss += x[i * D + j]! ** 2;
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let j = 0; j < D; j++) y[i * D + j] = x[i * D + j]! * r * w[j]!;
  }
  return y;
}

function rope(x: Mat, n: number, heads: number, d: number, pos: Int32Array, theta: number): void {
  const half = d / 2;
  for (let i = 0; i < n; i++)
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < half; j++) {
        const ang = pos[i]! * theta ** ((-2 * j) / d);
        const o = (i * heads + h) * d;
        const a = x[o + j]!, b = x[o + j + half]!;
        x[o + j] = a * Math.cos(ang) - b * Math.sin(ang);
        x[o + j + half] = b * Math.cos(ang) + a * Math.sin(ang);
      }
}

function referenceLoss(m: Model, c: ModelConfig, tokens: Int32Array, labels: Int32Array, pos: Int32Array, docLens: number[], normalizer: number) {
  const n = tokens.length, D = c.hiddenSize, H = c.numAttentionHeads, Hkv = c.numKeyValueHeads, d = c.headDim, I = c.intermediateSize;
  const P = (name: string) => m.param(name);
  const opt = (name: string) => (m.views.some((v) => v.name === name) ? m.param(name) : undefined);
  const doc = new Int32Array(n);
  let o = 0;
  docLens.forEach((len, k) => { for (let i = 0; i < len; i++) doc[o + i] = k; o += len; });
  const E = P('model.embed_tokens.weight');
  let x = new Float64Array(n * D);
  for (let i = 0; i < n; i++) for (let j = 0; j < D; j++) x[i * D + j] = E[tokens[i]! * D + j]!;
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    const xn = rms(x, n, D, P(p + 'input_layernorm.weight'), c.rmsNormEps);
    const q = linear(xn, n, D, P(p + 'self_attn.q_proj.weight'), H * d, opt(p + 'self_attn.q_proj.bias'));
    const k = linear(xn, n, D, P(p + 'self_attn.k_proj.weight'), Hkv * d, opt(p + 'self_attn.k_proj.bias'));
    const v = linear(xn, n, D, P(p + 'self_attn.v_proj.weight'), Hkv * d, opt(p + 'self_attn.v_proj.bias'));
    rope(q, n, H, d, pos, c.ropeTheta);
    rope(k, n, Hkv, d, pos, c.ropeTheta);
    const att = new Float64Array(n * H * d);
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / Hkv));
      for (let i = 0; i < n; i++) {
        const sc: number[] = [];
        const js: number[] = [];
        for (let j = 0; j <= i; j++) {
          if (doc[j] !== doc[i]) continue;
          let s = 0;
          for (let e = 0; e < d; e++) s += q[(i * H + h) * d + e]! * k[(j * Hkv + kh) * d + e]!;
          sc.push(s / Math.sqrt(d));
          js.push(j);
        }
        const mx = Math.max(...sc);
        const w = sc.map((s) => Math.exp(s - mx));
        const z = w.reduce((a, b) => a + b, 0);
        for (let e = 0; e < d; e++) {
          let s = 0;
          js.forEach((j, idx) => { s += (w[idx]! / z) * v[(j * Hkv + kh) * d + e]!; });
          att[(i * H + h) * d + e] = s;
        }
      }
    }
    const ao = linear(att, n, H * d, P(p + 'self_attn.o_proj.weight'), D, opt(p + 'self_attn.o_proj.bias'));
    const hres = x.map((val, i) => val + ao[i]!);
    const xn2 = rms(hres, n, D, P(p + 'post_attention_layernorm.weight'), c.rmsNormEps);
    const gate = linear(xn2, n, D, P(p + 'mlp.gate_proj.weight'), I);
    const up = linear(xn2, n, D, P(p + 'mlp.up_proj.weight'), I);
    const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
    const down = linear(act, n, I, P(p + 'mlp.down_proj.weight'), D);
    x = hres.map((val, i) => val + down[i]!);
  }
  const hn = rms(x, n, D, P('model.norm.weight'), c.rmsNormEps);
  const logits = linear(hn, n, D, c.tieWordEmbeddings ? E : P('lm_head.weight'), c.vocabSize);
  const tokenLoss = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    if (labels[i]! < 0) continue;
    const row = logits.subarray(i * c.vocabSize, (i + 1) * c.vocabSize);
    const mx = Math.max(...row);
    let z = 0;
    for (const v of row) z += Math.exp(v - mx);
    tokenLoss[i] = mx + Math.log(z) - row[labels[i]!]!;
    sum += tokenLoss[i]!;
  }
  return { loss: sum / normalizer, tokenLoss };
}

const cases: Record<string, Record<string, unknown>> = {
  'llama (GQA 4/2, attention_bias, untied)': {
    model_type: 'llama', vocab_size: 40, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 10000, rms_norm_eps: 1e-5, attention_bias: true, initializer_range: 0.2,
  },
  'qwen2 (GQA 4/1, q/k/v biases, tied)': {
    model_type: 'qwen2', vocab_size: 40, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 1, rope_theta: 1000000, rms_norm_eps: 1e-6, tie_word_embeddings: true, initializer_range: 0.2,
  },
};

for (const [label, hf] of Object.entries(cases)) {
  t.test(`forward matches a naive fp64 HF reference: ${label}`, async (t) => {
    const c = parseModelConfig(hf);
    const m = await Model.create(c, { seed: 31 });
    // Non-trivial norms and biases so every parameter matters.
    for (const v of m.views) {
      if (v.name.endsWith('.bias') || v.name.endsWith('norm.weight')) {
        const p = m.param(v.name);
        for (let i = 0; i < p.length; i++) p[i] = (v.name.endsWith('.bias') ? 0 : 1) + 0.3 * Math.sin(i * 1.7 + v.offset);
      }
    }
    const n = 21;
    const docLens = [8, 13];
    const tokens = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % c.vocabSize);
    const labels = Int32Array.from({ length: n }, (_, i) => (i % 5 === 4 ? -100 : (i * 11 + 1) % c.vocabSize));
    const positions = Int32Array.from({ length: n }, (_, i) => (i < 8 ? 100 + i : 500 + i));
    const normalizer = 25;
    const tl = new Float32Array(n);
    const r = await m.forward({ tokens, labels, positions, docLens: Int32Array.from(docLens), normalizer, tokenLoss: tl });
    const ref = referenceLoss(m, c, tokens, labels, positions, docLens, normalizer);
    const d = Math.abs(r.loss - ref.loss);
    t.ok(d < 1e-5 * Math.max(1, ref.loss), `loss ${r.loss} vs fp64 reference ${ref.loss}: |diff| ${d.toExponential(2)}`);
    let maxTl = 0;
    for (let i = 0; i < n; i++) maxTl = Math.max(maxTl, Math.abs(tl[i]! - ref.tokenLoss[i]!));
    t.ok(maxTl < 2e-5, `per-token losses: max |diff| ${maxTl.toExponential(2)} < 2e-5`);
  });
}
