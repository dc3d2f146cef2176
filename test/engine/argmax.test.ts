// Model.forward's tokenArgmax: each position's highest-logit id, checked against the full
// log-softmax rows rebuilt from token losses (one forward per vocabulary id), locally and with
// the same result whatever labels are given.
import t from 'tap';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig } from '../../src/engine/modelConfig.js';

const config = parseModelConfig({
  model_type: 'llama', vocab_size: 48, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, head_dim: 8, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, initializer_range: 0.2,
}, 'argmax');

t.test('tokenArgmax is the argmax of every row of the log-softmax', async (t) => {
  const model = await Model.create(config, { seed: 3 });
  const n = 20;
  const tokens = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % 48);
  const labels = Int32Array.from({ length: n }, (_, i) => (i % 5 === 0 ? -100 : (i * 11) % 48));
  const argmax = new Int32Array(n).fill(-1);
  await model.forward({ tokens, labels, tokenArgmax: argmax, normalizer: 1 });
  // rows rebuilt: log p(v) = -token_loss with every label set to v
  const best = new Int32Array(n), bestLogp = new Float64Array(n).fill(-Infinity);
  for (let v = 0; v < 48; v++) {
    const tl = new Float32Array(n);
    await model.forward({ tokens, labels: new Int32Array(n).fill(v), tokenLoss: tl, normalizer: 1 });
    for (let i = 0; i < n; i++) if (-tl[i]! > bestLogp[i]!) { bestLogp[i] = -tl[i]!; best[i] = v; }
  }
  t.same([...argmax], [...best], 'same ids as the rebuilt rows');
  t.ok(new Set(argmax).size > 3, `the rows disagree on their argmax (${new Set(argmax).size} distinct ids): the check is not trivial`);
  const again = new Int32Array(n);
  await model.forward({ tokens, labels: new Int32Array(n).fill(-100), tokenArgmax: again, normalizer: 1 });
  t.same([...again], [...argmax], 'labels (even all ignored) do not change the argmax');
  await t.rejects(model.forward({ tokens, labels, tokenArgmax: new Int32Array(n - 1) }), { code: 'ERR_SHAPE' }, 'wrong length refused');
});
