// The model's whole gradient against central finite differences: a few coordinates of EVERY
// tensor, for the shipped tiny Llama config (GQA 8/4) and a qwen2-style config (q/k/v biases,
// tied embeddings). The loss is accumulated in double by the fused LM head; the activations are
// fp32, so eps is large (1e-2 on weights of std ~0.02-0.1) and the tolerance is relative to
// the largest gradient of the tensor.
import t from 'tap';
import { Model } from '../../src/engine/Model.js';
import { parseModelConfig, readModelConfig, type ModelConfig } from '../../src/engine/modelConfig.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Batch {
  tokens: Int32Array;
  labels: Int32Array;
  positions: Int32Array;
  docLens: Int32Array;
  normalizer: number;
}

// Two packed documents with a few ignored labels; positions restart per document.
function makeBatch(vocab: number, lens: number[], seed: number): Batch {
  const r = rng(seed);
  const n = lens.reduce((a, b) => a + b, 0);
  const tokens = Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
  const labels = new Int32Array(n);
  const positions = new Int32Array(n);
  let o = 0;
  for (const len of lens) {
    for (let i = 0; i < len; i++) {
      positions[o + i] = i;
      labels[o + i] = i + 1 < len ? tokens[o + i + 1]! : -100;
    }
    o += len;
  }
  labels[2] = -100;
  const normalizer = labels.reduce((a, x) => a + (x >= 0 ? 1 : 0), 0) + 3; // as if other ranks held 3 more
  return { tokens, labels, positions, docLens: Int32Array.from(lens), normalizer };
}

async function fdCheck(t: Tap.Test, model: Model, batch: Batch, perTensor: number, eps: number, rtol: number, atol: number) {
  await model.zeroGrad();
  await model.forwardBackward(batch);
  const r = rng(7);
  let worst = 0;
  let checked = 0;
  for (const v of model.views) {
    const p = model.param(v.name);
    const g = model.grad(v.name);
    let gmax = 0;
    let imax = 0;
    for (let i = 0; i < g.length; i++) if (Math.abs(g[i]!) > gmax) { gmax = Math.abs(g[i]!); imax = i; }
    const coords = new Set<number>([imax]);
    while (coords.size < perTensor) coords.add(Math.floor(r() * g.length));
    const lines: string[] = [];
    let ok = true;
    for (const i of coords) {
      const old = p[i]!;
      p[i] = old + eps;
      const lp = (await model.forward(batch)).loss;
      p[i] = old - eps;
      const lm = (await model.forward(batch)).loss;
      p[i] = old;
      const fd = (lp - lm) / (2 * eps);
      const diff = Math.abs(fd - g[i]!);
      const tol = atol + rtol * gmax;
      worst = Math.max(worst, diff / tol);
      if (diff > tol) ok = false;
      lines.push(`[${i}] analytic ${g[i]!.toExponential(4)} fd ${fd.toExponential(4)} |diff| ${diff.toExponential(2)}`);
      checked++;
    }
    t.ok(ok, `${v.name} (max |g| ${gmax.toExponential(2)}, tol ${(atol + rtol * gmax).toExponential(2)}): ${lines.join('; ')}`);
  }
  t.comment(`checked ${checked} coordinates; worst |diff|/tol = ${worst.toFixed(3)}`);
}

t.test('tiny llama (examples/models/tiny): gradient of every tensor matches finite differences', async (t) => {
  const cfg = await readModelConfig(new URL('../../examples/models/tiny/config.json', import.meta.url).pathname);
  // A larger init range makes gradients large against fp32 rounding noise in the loss.
  const model = await Model.create({ ...cfg, initializerRange: 0.08 }, { seed: 11 });
  t.equal(model.views.length, 1 + 9 * 4 + 2, 'tensor count (embed, 9 per layer, norm, lm_head)');
  await fdCheck(t, model, makeBatch(cfg.vocabSize, [13, 11], 3), 3, 1e-2, 5e-3, 2e-5);
});

t.test('qwen2-style config (q/k/v biases, tied embeddings): gradients match finite differences', async (t) => {
  const cfg: ModelConfig = parseModelConfig({
    model_type: 'qwen2', vocab_size: 80, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 1000000, rms_norm_eps: 1e-6,
    tie_word_embeddings: true, initializer_range: 0.1,
  });
  const model = await Model.create(cfg, { seed: 5 });
  const names = model.views.map((v) => v.name);
  t.ok(names.includes('model.layers.1.self_attn.k_proj.bias'), 'has q/k/v biases');
  t.notOk(names.includes('lm_head.weight'), 'tied: no lm_head.weight');
  t.notOk(names.includes('model.layers.0.self_attn.o_proj.bias'), 'no o_proj bias');
  // Non-zero biases and norm weights, so their effect on the loss is not degenerate.
  const r = rng(9);
  for (const v of model.views) {
    if (v.name.endsWith('.bias') || v.name.endsWith('norm.weight')) {
      const p = model.param(v.name);
      for (let i = 0; i < p.length; i++) p[i] = (v.name.endsWith('.bias') ? 0 : 1) + (r() - 0.5) * 0.2;
    }
  }
  await fdCheck(t, model, makeBatch(cfg.vocabSize, [9, 12], 4), 3, 1e-2, 5e-3, 2e-5);
});

t.test('llama with attention_bias (q/k/v/o biases): gradients match finite differences', async (t) => {
  const cfg = parseModelConfig({
    model_type: 'llama', vocab_size: 48, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1,
    num_attention_heads: 4, num_key_value_heads: 4, attention_bias: true, initializer_range: 0.1,
  });
  const model = await Model.create(cfg, { seed: 2 });
  t.ok(model.views.some((v) => v.name === 'model.layers.0.self_attn.o_proj.bias'), 'has o_proj bias');
  const r = rng(3);
  for (const v of model.views) {
    if (v.name.endsWith('.bias')) {
      const p = model.param(v.name);
      for (let i = 0; i < p.length; i++) p[i] = (r() - 0.5) * 0.2;
    }
  }
  await fdCheck(t, model, makeBatch(cfg.vocabSize, [16], 6), 3, 1e-2, 5e-3, 2e-5);
});
