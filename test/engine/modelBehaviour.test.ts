// Model behaviour beyond the gradient check: activation checkpointing is bitwise neutral,
// packed documents equal separate runs, runs are deterministic, per-token losses and weights
// are consistent, and bad inputs / bad states give coded errors (never a crash).
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig, type ModelConfig } from '../../src/engine/modelConfig.js';

const cfg: ModelConfig = parseModelConfig({
  model_type: 'llama', vocab_size: 128, hidden_size: 64, intermediate_size: 176, num_hidden_layers: 3,
  num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 10000, rms_norm_eps: 1e-5, initializer_range: 0.05,
});

function tokensOf(n: number, seed: number, vocab = cfg.vocabSize): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (i * 31 + seed * 17 + ((i * i) % 7)) % vocab);
}

function shifted(tokens: Int32Array): Int32Array {
  return Int32Array.from(tokens, (_, i) => (i + 1 < tokens.length ? tokens[i + 1]! : -100));
}

function bitwiseEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

function maxDiff(a: Float32Array, b: Float32Array | Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

t.test('activation checkpointing gives bitwise the same loss and gradients', async (t) => {
  const a = await Model.create(cfg, { seed: 3 });
  const b = await Model.create(cfg, { seed: 3, checkpointing: true });
  t.ok(bitwiseEqual(a.params, b.params), 'same seed: bitwise equal parameters');
  const tokens = tokensOf(70, 1);
  const input = { tokens, labels: shifted(tokens), docLens: Int32Array.from([30, 40]), normalizer: 100 };
  const ra = await a.forwardBackward(input);
  const rb = await b.forwardBackward(input);
  t.equal(rb.loss, ra.loss, `loss ${ra.loss} equal`);
  t.ok(bitwiseEqual(a.grads, b.grads), `gradients bitwise equal (max |diff| ${maxDiff(a.grads, b.grads)})`);
  t.ok(b.activationBytes < a.activationBytes, `checkpointing stores less: ${b.activationBytes} < ${a.activationBytes} bytes`);
});

t.test('two runs are bitwise identical (determinism)', async (t) => {
  const m = await Model.create(cfg, { seed: 8 });
  const tokens = tokensOf(50, 2);
  const input = { tokens, labels: shifted(tokens) };
  const r1 = await m.forwardBackward(input);
  const g1 = Float32Array.from(m.grads);
  await m.zeroGrad();
  const r2 = await m.forwardBackward(input);
  t.equal(r2.loss, r1.loss, 'same loss');
  t.ok(bitwiseEqual(m.grads, g1), `same gradients (max |diff| ${maxDiff(m.grads, g1)})`);
  const other = await Model.create(cfg, { seed: 9 });
  t.notOk(bitwiseEqual(other.params, m.params), 'a different seed gives different weights');
});

t.test('a packed two-document sequence equals the two documents run separately', async (t) => {
  const m = await Model.create(cfg, { seed: 4 });
  const A = tokensOf(23, 5), B = tokensOf(31, 6);
  const lA = shifted(A), lB = shifted(B);
  const normalizer = 60; // shared global normalizer
  // Positions: global ids of a longer stream (document B starts at 1000) to exercise RoPE offsets.
  const pA = Int32Array.from({ length: A.length }, (_, i) => i);
  const pB = Int32Array.from({ length: B.length }, (_, i) => 1000 + i);
  const tlA = new Float32Array(A.length), tlB = new Float32Array(B.length);
  const rA = await m.forwardBackward({ tokens: A, labels: lA, positions: pA, normalizer, tokenLoss: tlA });
  const rB = await m.forwardBackward({ tokens: B, labels: lB, positions: pB, normalizer, tokenLoss: tlB });
  const gSep = Float32Array.from(m.grads);
  await m.zeroGrad();
  const tokens = new Int32Array([...A, ...B]);
  const labels = new Int32Array([...lA, ...lB]);
  const positions = new Int32Array([...pA, ...pB]);
  const tl = new Float32Array(tokens.length);
  const r = await m.forwardBackward({ tokens, labels, positions, docLens: Int32Array.from([A.length, B.length]), normalizer, tokenLoss: tl });
  const lossDiff = Math.abs(r.loss - (rA.loss + rB.loss));
  t.ok(lossDiff < 1e-6, `loss ${r.loss} vs ${rA.loss} + ${rB.loss}: |diff| ${lossDiff.toExponential(2)} < 1e-6`);
  t.equal(r.valid, rA.valid + rB.valid, 'valid counts add up');
  const tlDiff = maxDiff(tl, new Float32Array([...tlA, ...tlB]));
  t.ok(tlDiff < 1e-5, `per-token losses match: max |diff| ${tlDiff.toExponential(2)} < 1e-5`);
  let gmax = 0;
  for (const g of gSep) gmax = Math.max(gmax, Math.abs(g));
  const gDiff = maxDiff(m.grads, gSep);
  t.ok(gDiff < 1e-5 * Math.max(1, gmax), `gradients match: max |diff| ${gDiff.toExponential(2)} (max |g| ${gmax.toExponential(2)})`);

  // Without the boundary, document B would attend to A: the loss must differ.
  const rJoined = await m.forward({ tokens, labels, positions, normalizer });
  t.ok(Math.abs(rJoined.loss - r.loss) > 1e-4, `ignoring doc boundaries changes the loss (${rJoined.loss} vs ${r.loss})`);
});

t.test('padding (a negative doc length, labels -100) does not change the loss or gradients', async (t) => {
  const m = await Model.create(cfg, { seed: 12 });
  const A = tokensOf(20, 3);
  const lA = shifted(A);
  const rA = await m.forwardBackward({ tokens: A, labels: lA, normalizer: 19 });
  const gA = Float32Array.from(m.grads);
  await m.zeroGrad();
  const tokens = new Int32Array([...A, 0, 0, 0, 0, 0, 0]);
  const labels = new Int32Array([...lA, -100, -100, -100, -100, -100, -100]);
  const positions = Int32Array.from({ length: 26 }, (_, i) => (i < 20 ? i : 0));
  const r = await m.forwardBackward({ tokens, labels, positions, docLens: Int32Array.from([20, -6]), normalizer: 19 });
  t.ok(Math.abs(r.loss - rA.loss) < 1e-6, `loss ${r.loss} vs ${rA.loss}`);
  t.equal(r.valid, rA.valid, 'padding adds no valid token');
  // The padding tokens' embedding rows get no gradient: attention ignores them and their labels are -100.
  const d = maxDiff(m.grads, gA);
  t.ok(d < 1e-6, `gradients match: max |diff| ${d.toExponential(2)}`);
});

t.test('per-token losses and token weights are consistent with the loss', async (t) => {
  const m = await Model.create(cfg, { seed: 6 });
  const tokens = tokensOf(40, 7);
  const labels = shifted(tokens);
  labels[5] = -100;
  const tl = new Float32Array(40);
  const r = await m.forward({ tokens, labels, normalizer: 50, tokenLoss: tl });
  t.equal(r.valid, 38, 'valid tokens exclude -100 labels');
  t.equal(tl[5], 0, 'ignored token has loss 0');
  let s = 0;
  for (const x of tl) s += x;
  t.ok(Math.abs(s / 50 - r.loss) < 1e-5, `sum(tokenLoss)/normalizer ${s / 50} equals loss ${r.loss}`);
  await m.backward();
  const gDefault = Float32Array.from(m.grads);
  await m.zeroGrad();
  await m.forward({ tokens, labels, normalizer: 50 });
  const w = Float32Array.from(labels, (x) => (x >= 0 ? 1 / 50 : 0));
  await m.backward(w);
  const d = maxDiff(m.grads, gDefault);
  t.ok(d < 1e-7, `explicit weights 1/normalizer equal the default: max |diff| ${d.toExponential(2)}`);
});

t.test('bad inputs and states give coded errors', async (t) => {
  const m = await Model.create(cfg, { seed: 1 });
  const tokens = tokensOf(16, 1);
  const labels = shifted(tokens);
  await t.rejects(m.backward(), { code: 'ERR_STATE' }, 'backward without forward');
  const bad = Int32Array.from(tokens);
  bad[3] = cfg.vocabSize;
  await t.rejects(m.forward({ tokens: bad, labels }), { code: 'ERR_ARG', message: /tokens\[3\]/ }, 'token id >= vocab');
  bad[3] = -1;
  await t.rejects(m.forward({ tokens: bad, labels }), { code: 'ERR_ARG' }, 'negative token id');
  const badLabels = Int32Array.from(labels);
  badLabels[0] = 500;
  await t.rejects(m.forward({ tokens, labels: badLabels }), { code: 'ERR_ARG', message: /labels\[0\]/ }, 'label >= vocab');
  await t.rejects(m.forward({ tokens, labels: labels.subarray(0, 15) }), { code: 'ERR_SHAPE' }, 'labels length mismatch');
  await t.rejects(m.forward({ tokens, labels, positions: new Int32Array(3) }), { code: 'ERR_SHAPE' }, 'positions length mismatch');
  await t.rejects(m.forward({ tokens, labels, docLens: Int32Array.from([5, 5]) }), { code: 'ERR_SHAPE', message: /sum to 10/ }, 'doc_lens not summing to n');
  await t.rejects(m.forward({ tokens, labels, normalizer: 0 }), { code: 'ERR_ARG' }, 'normalizer 0');
  await t.rejects(m.forward({ tokens, labels, normalizer: -2 }), { code: 'ERR_ARG' }, 'normalizer < 0');
  await t.rejects(m.forward({ tokens, labels, normalizer: NaN }), { code: 'ERR_ARG' }, 'normalizer NaN');
  await t.rejects(m.forward({ tokens: new Float32Array(16) as unknown as Int32Array, labels }), { code: 'ERR_DTYPE' }, 'float tokens');
  await t.rejects(m.forward({ tokens: new Int32Array(0), labels: new Int32Array(0) }), { code: 'ERR_SHAPE' }, 'empty sequence');
  await t.rejects(m.forward({ tokens, labels: new Int32Array(16).fill(-100) }), { code: 'ERR_ARG' }, 'no valid label, no normalizer');

  // Raw binding: the native layer validates too.
  const raw = (m as unknown as { handle: { forward: (...a: unknown[]) => Promise<unknown> } }).handle;
  t.throws(() => raw.forward(bad, labels, new Int32Array(16), null, 1, null), { code: 'ERR_ARG' }, 'native: bad token id');
  t.throws(() => raw.forward(tokens, labels, new Int32Array(16), Int32Array.from([3]), 1, null), { code: 'ERR_SHAPE' }, 'native: doc_lens sum');

  // Concurrent calls on one model.
  const p1 = m.forward({ tokens, labels });
  await t.rejects(m.forward({ tokens, labels }), { code: 'ERR_STATE' }, 'second concurrent forward');
  await p1;
  const p2 = m.backward();
  await t.rejects(m.zeroGrad(), { code: 'ERR_STATE' }, 'zeroGrad while backward runs');
  await p2;
  await t.rejects(m.backward(), { code: 'ERR_STATE' }, 'a second backward needs a new forward');

  // Still usable after all that.
  const r = await m.forward({ tokens, labels });
  t.ok(Number.isFinite(r.loss), `model still works (loss ${r.loss})`);
  m.close();
  m.close();
  await t.rejects(m.forward({ tokens, labels }), { code: 'ERR_STATE' }, 'closed model');
});

t.test('invalid configs are refused with ERR_CONFIG naming the key', async (t) => {
  const base = { model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4 };
  t.throws(() => parseModelConfig({ ...base, num_key_value_heads: 3 }), { code: 'ERR_CONFIG', message: /num_key_value_heads.*divisible/ });
  t.throws(() => parseModelConfig({ ...base, model_type: 'gpt2' }), { code: 'ERR_CONFIG', message: /model_type.*unsupported/ });
  const { vocab_size: _v, ...noVocab } = base;
  t.throws(() => parseModelConfig(noVocab), { code: 'ERR_CONFIG', message: /vocab_size: missing key/ });
  t.throws(() => parseModelConfig({ ...base, hidden_size: -4 }), { code: 'ERR_CONFIG', message: /hidden_size/ });
  t.throws(() => parseModelConfig({ ...base, rope_scaling: { rope_type: 'llama3' } }), { code: 'ERR_CONFIG', message: /rope_scaling/ });
  t.throws(() => parseModelConfig({ ...base, hidden_act: 'gelu' }), { code: 'ERR_CONFIG', message: /hidden_act/ });
  t.throws(() => parseModelConfig([]), { code: 'ERR_CONFIG' });
  const c = parseModelConfig(base);
  t.equal(c.numKeyValueHeads, 4, 'num_key_value_heads defaults to num_attention_heads');
  t.equal(c.headDim, 8, 'head_dim defaults to hidden / heads');
  t.equal(c.qkvBias, false, 'llama: no biases by default');
  const l = parseModelConfig({ ...base, attention_bias: true });
  t.ok(l.qkvBias && l.oBias, 'llama attention_bias: q/k/v/o biases');
  const m = await Model.create(l);
  t.ok(m.views.some((v) => v.name === 'model.layers.0.self_attn.o_proj.bias'), 'o_proj bias view exists');
  // The native layer refuses an inconsistent object too.
  await t.rejects(Model.create({ ...c, numKeyValueHeads: 3 }), { code: 'ERR_CONFIG', message: /num_key_value_heads/ });
});

t.test('views: HF order, 64-byte aligned, covering the flat buffer', async (t) => {
  const m = await Model.create(cfg, { seed: 2 });
  const names = m.views.map((v) => v.name);
  t.same(names.slice(0, 11), [
    'model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight', 'model.layers.0.self_attn.q_proj.weight',
    'model.layers.0.self_attn.k_proj.weight', 'model.layers.0.self_attn.v_proj.weight', 'model.layers.0.self_attn.o_proj.weight',
    'model.layers.0.post_attention_layernorm.weight', 'model.layers.0.mlp.gate_proj.weight', 'model.layers.0.mlp.up_proj.weight',
    'model.layers.0.mlp.down_proj.weight', 'model.layers.1.input_layernorm.weight',
  ]);
  t.same(names.slice(-2), ['model.norm.weight', 'lm_head.weight']);
  t.ok(m.views.every((v) => v.offset % 16 === 0), 'every view starts on a 64-byte boundary');
  t.equal(m.params.byteOffset % 64, 0, 'flat buffer aligned');
  t.equal(m.numParams, m.views.reduce((a, v) => a + v.numel, 0), 'numParams sums the views');
  t.same(m.view('model.layers.2.self_attn.k_proj.weight').shape, [2 * 16, 64], 'k_proj is [Hkv*d, D]');
  // Initialization: norms are ones, weights have std ~ initializer_range.
  t.ok(m.param('model.norm.weight').every((x) => x === 1), 'norm weights are 1');
  const w = m.param('model.layers.1.mlp.up_proj.weight');
  let s2 = 0;
  for (const x of w) s2 += x * x;
  const std = Math.sqrt(s2 / w.length);
  t.ok(Math.abs(std - 0.05) < 0.005, `weight std ${std.toFixed(4)} ~ 0.05`);
  t.ok(m.grads.every((x) => x === 0), 'gradients start at zero');
});
