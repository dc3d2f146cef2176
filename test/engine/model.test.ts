// The model's whole gradient against central finite differences: a few coordinates of EVERY
// tensor, for the shipped tiny Llama config (GQA 8/4) and a qwen2-style config (q/k/v biases,
// tied embeddings). The loss is accumulated in double by the fused LM head; the activations are
// fp32, so eps is large (1e-2 on weights of std ~0.02-0.1) and the tolerance is relative to
// the largest gradient of the tensor.
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig, readModelConfig, type ModelConfig } from '../../src/engine/modelConfig.js';
import { lcg as rng, packedDocs, type PackedDocs } from '../helpers/packedBatch.js';
import { fdTensors } from './helpers/fdTensors.js';

type Batch = PackedDocs & { normalizer: number };

// Two packed documents with a few ignored labels; positions restart per document.
function makeBatch(vocab: number, lens: number[], seed: number): Batch {
  const docs = packedDocs(vocab, lens, seed);
  docs.labels[2] = -100;
  const normalizer = docs.labels.reduce((a, x) => a + (x >= 0 ? 1 : 0), 0) + 3; // as if other ranks held 3 more
  return { ...docs, normalizer };
}

async function fdCheck(t: Tap.Test, model: Model, batch: Batch, perTensor: number, eps: number, rtol: number, atol: number) {
  await model.zeroGrad();
  await model.forwardBackward(batch);
  const tensors = model.views.map((v) => ({ name: v.name, params: model.param(v.name), grads: model.grad(v.name) }));
  const { worst, checked } = await fdTensors(t, tensors, async () => (await model.forward(batch)).loss, { perTensor, eps, rtol, atol, seed: 7 });
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
