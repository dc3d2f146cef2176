// Tiled MLP (kernels/mlp_tiled.h) against the untiled layer pass: the loss, the per-token losses
// and every gradient outside the MLP weights are bitwise equal (each row's products are the same
// reductions); the gate/up/down weight gradients sum over tokens tile by tile, so they equal the
// untiled ones up to summation order (1e-6 relative to the tensor's largest gradient). The tiled
// gradients are also checked against finite differences, and the activation arena shrinks by the
// saved [n, intermediate] blocks.
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig, type ModelConfig } from '../../src/engine/modelConfig.js';
import { fdTensors } from './helpers/fdTensors.js';
import { maxDiff, sameBits } from './helpers/numeric.js';

const cfg: ModelConfig = parseModelConfig({
  model_type: 'llama', vocab_size: 96, hidden_size: 32, intermediate_size: 88, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 10000, rms_norm_eps: 1e-5, initializer_range: 0.08,
});

const isMlpWeight = (name: string): boolean => /mlp\.(gate|up|down)_proj\.weight$/.test(name);

function batch(n: number) {
  const tokens = Int32Array.from({ length: n }, (_, i) => (i * 29 + ((i * i) % 11)) % cfg.vocabSize);
  const labels = Int32Array.from(tokens, (_, i) => (i + 1 < n ? tokens[i + 1]! : -100));
  return { tokens, labels, docLens: Int32Array.from([Math.floor(n / 3), n - Math.floor(n / 3)]), normalizer: n + 5 };
}

async function run(o: { tiledMlp?: boolean | number; checkpointing?: boolean }, n: number) {
  const m = await Model.create(cfg, { seed: 21, ...o });
  const tokenLoss = new Float32Array(n);
  const r = await m.forwardBackward({ ...batch(n), tokenLoss });
  return { m, loss: r.loss, tokenLoss };
}

for (const checkpointing of [false, true]) {
  for (const tile of [true, 16, 7] as const) {
    t.test(`tiled MLP (tile ${tile}, checkpointing ${checkpointing}) equals untiled`, async (t) => {
      const n = 90;
      const ref = await run({ checkpointing }, n);
      const til = await run({ checkpointing, tiledMlp: tile }, n);
      const rows = til.m.mlpTile;
      if (tile === true) t.equal(rows, 32, 'from the length: ceil(90 / 32) = 3 tiles of 30 rows, rounded up to 32');
      else t.equal(rows, tile, `tile rows ${tile}`);
      t.equal(ref.m.mlpTile, 0, 'untiled model reports no tile');
      t.equal(til.loss, ref.loss, `loss bitwise equal (${ref.loss})`);
      t.ok(sameBits(til.tokenLoss, ref.tokenLoss), 'per-token losses bitwise equal');
      for (const v of ref.m.views) {
        const a = til.m.grad(v.name), b = ref.m.grad(v.name);
        if (!isMlpWeight(v.name)) {
          t.ok(sameBits(a, b), `${v.name}: gradient bitwise equal (max |diff| ${maxDiff(a, b)})`);
          continue;
        }
        let gmax = 0;
        for (const x of b) gmax = Math.max(gmax, Math.abs(x));
        const rel = maxDiff(a, b) / gmax;
        t.ok(rel <= 1e-6, `${v.name}: gradient within summation order, max |diff| / max |g| = ${rel.toExponential(2)} <= 1e-6`);
      }
      t.ok(til.m.activationBytes < ref.m.activationBytes, `arena ${til.m.activationBytes} < ${ref.m.activationBytes} bytes`);
    });
  }
}

t.test('tiled MLP: gradients match finite differences', async (t) => {
  const m = await Model.create(cfg, { seed: 4, tiledMlp: 8 });
  const b = batch(30);
  await m.forwardBackward(b);
  t.equal(m.mlpTile, 8, '8-row tiles over 30 tokens (the last tile holds 6)');
  const tensors = m.views.filter((v) => v.name.startsWith('model.layers.0.')).map((v) => ({ name: v.name, params: m.param(v.name), grads: m.grad(v.name) }));
  await fdTensors(t, tensors, async () => (await m.forward(b)).loss, { perTensor: 3, eps: 1e-2, rtol: 5e-3, atol: 2e-5, seed: 3 });
});

t.test('arena: the tiled MLP saves no [n, intermediate] blocks', async (t) => {
  const n = 256, I = cfg.intermediateSize, layers = cfg.numHiddenLayers;
  const ref = await run({}, n);
  const til = await run({ tiledMlp: 16 }, n);
  // Untiled: gate + up per layer and three [n, I] scratch blocks; tiled: five [16, I] blocks.
  const saved = (2 * n * I * layers + 3 * n * I - 5 * 16 * I) * 4;
  const diff = ref.m.activationBytes - til.m.activationBytes;
  t.ok(Math.abs(diff - saved) <= 64 * 4 * (2 * layers + 4), `saved ${diff} bytes, expected about ${saved} (alignment padding aside)`);
});

t.test('tiled MLP falls back to untiled where it does not apply, and bad tiles are refused', async (t) => {
  const lora = await Model.create(cfg, { seed: 2, tiledMlp: true });
  await lora.attachLora({ rank: 2, targets: ['gate_proj'] });
  await lora.forwardBackward(batch(40));
  t.equal(lora.mlpTile, 0, 'an adapter on an MLP module: untiled');
  const attnOnly = await Model.create(cfg, { seed: 2, tiledMlp: 16 });
  await attnOnly.attachLora({ rank: 2, targets: ['q_proj', 'v_proj'] });
  const tl = new Float32Array(40);
  const r = await attnOnly.forwardBackward({ ...batch(40), tokenLoss: tl });
  t.equal(attnOnly.mlpTile, 16, 'adapters on attention only: tiled');
  const plain = await Model.create(cfg, { seed: 2 });
  await plain.attachLora({ rank: 2, targets: ['q_proj', 'v_proj'] });
  const tl2 = new Float32Array(40);
  const r2 = await plain.forwardBackward({ ...batch(40), tokenLoss: tl2 });
  t.equal(r.loss, r2.loss, 'frozen base with tiled MLP: same loss as untiled');
  t.ok(sameBits(attnOnly.lora!.grads, plain.lora!.grads), 'adapter gradients bitwise equal');
  const bf = await Model.create(cfg, { seed: 2, tiledMlp: true, bf16: true });
  await bf.forwardBackward(batch(40));
  t.equal(bf.mlpTile, 0, 'bf16 model: untiled');
  const m = await Model.create(cfg, { seed: 2 });
  t.throws(() => m.setMlpTiling(0), /positive integer/, 'tile 0 refused');
  t.throws(() => m.setMlpTiling(2.5), /positive integer/, 'fractional tile refused');
  m.setMlpTiling(true);
  m.setMlpTiling(false);
  await m.forwardBackward(batch(40));
  t.equal(m.mlpTile, 0, 'switched off again: untiled');
});
