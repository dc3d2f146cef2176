// The model-family line check-config / up print (describeModel), the problems they list for a
// config the engine cannot run exactly as HF (modelConfigProblems: every problem, each naming its
// key), and the rope defaults the parser resolves as transformers does (yarn's attention factor
// and original context, `or` defaults of beta_fast / beta_slow, the transformers 5
// rope_parameters form, per-model-type defaults).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { describeModel, inspectModelConfig } from '../../src/engine/describeModel.js';
import { modelConfigProblems, parseModelConfig, toHfConfig } from '../../src/engine/modelConfig.js';

const SIZES = { vocab_size: 128256, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8 };

const LLAMA31 = { ...SIZES, model_type: 'llama', rope_theta: 500000.0, max_position_embeddings: 131072, rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' } };

t.test('the description line of real configs', async (t) => {
  t.equal(describeModel(parseModelConfig(LLAMA31)), 'llama, head_dim 128, rope llama3 x8 from 8192 (low_freq_factor 1, high_freq_factor 4), theta 5e5');
  t.equal(
    describeModel(parseModelConfig({ ...SIZES, model_type: 'qwen2', rope_theta: 1000000.0, max_position_embeddings: 32768, rope_scaling: { factor: 4.0, original_max_position_embeddings: 32768, type: 'yarn' } })),
    'qwen2, head_dim 128, rope yarn x4 from 32768 (attention factor 1.139, beta 32/1), theta 1e6',
  );
  t.equal(describeModel(parseModelConfig({ ...SIZES, model_type: 'qwen3', head_dim: 128, rope_theta: 1000000, max_window_layers: 36, use_sliding_window: false, sliding_window: null })), 'qwen3 (q/k norm), head_dim 128, rope default, theta 1e6');
  t.equal(describeModel(parseModelConfig({ ...SIZES, model_type: 'mistral', rope_theta: 10000.0, sliding_window: 4096 })), 'mistral, head_dim 128, rope default, theta 1e4, sliding window 4096');
  t.equal(describeModel(parseModelConfig({ ...SIZES, model_type: 'mistral', rope_theta: 1000000.0, sliding_window: null })), 'mistral, head_dim 128, rope default, theta 1e6', 'Mistral v0.2+: no window');
  t.equal(describeModel(parseModelConfig({ ...SIZES, model_type: 'qwen2', use_sliding_window: true, sliding_window: 4096, max_window_layers: 28 })), 'qwen2, head_dim 128, rope default, theta 1e4, sliding window 4096 on layers 28-31');
  t.equal(describeModel(parseModelConfig({ ...SIZES, model_type: 'llama', rope_scaling: { type: 'dynamic', factor: 2.0 } })), 'llama, head_dim 128, rope dynamic x2 above 2048, theta 1e4', 'llama: max_position_embeddings 2048 by default');
  t.equal(describeModel(parseModelConfig({ ...SIZES, model_type: 'llama', rope_scaling: { rope_type: 'linear', factor: 4 } })), 'llama, head_dim 128, rope linear x4, theta 1e4');
});

t.test('the example mini configs', async (t) => {
  const want: Record<string, string> = {
    'llama3.1-mini': 'llama, head_dim 32, rope llama3 x8 from 256 (low_freq_factor 1, high_freq_factor 4), theta 5e5',
    'qwen2.5-yarn-mini': 'qwen2, head_dim 32, rope yarn x4 from 256 (attention factor 1.139, beta 32/1), theta 1e6',
    'qwen3-mini': 'qwen3 (q/k norm), head_dim 64, rope default, theta 1e6',
    'mistral-mini': 'mistral, head_dim 32, rope default, theta 1e4, sliding window 128',
    'llama3-mini': 'llama, head_dim 32, rope default, theta 5e5',
  };
  for (const [name, line] of Object.entries(want)) {
    const json = JSON.parse(readFileSync(`examples/models/${name}/config.json`, 'utf8'));
    t.same(inspectModelConfig(json), { description: line, problems: [] }, `${name}: ${line}`);
  }
});

t.test('every problem is listed, each naming its key', async (t) => {
  const bad = {
    ...SIZES,
    model_type: 'llama',
    mlp_bias: true,
    attention_dropout: 0.1,
    partial_rotary_factor: 0.5,
    rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, extra: 1 },
  };
  const problems = modelConfigProblems(bad);
  t.same(problems.map((p) => p.key).sort(), ['attention_dropout', 'mlp_bias', 'partial_rotary_factor', 'rope_scaling.extra', 'rope_scaling.high_freq_factor'].sort(), JSON.stringify(problems));
  t.match(problems.find((p) => p.key === 'rope_scaling.high_freq_factor')!.message, /missing key \(required by rope_type llama3\)/);
  t.match(problems.find((p) => p.key === 'rope_scaling.extra')!.message, /unknown parameter for rope_type llama3/);
  const r = inspectModelConfig(bad);
  t.equal(r.description, null, 'no description for a config that cannot run');
  t.throws(() => parseModelConfig(bad, 'x.json'), { code: 'ERR_CONFIG', message: /^x\.json: .*mlp_bias.*attention_dropout.*partial_rotary_factor.*rope_scaling\.high_freq_factor/ }, 'parseModelConfig refuses with every problem');

  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['longrope', { rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [2] } }, /rope_scaling\.rope_type: unsupported rope type.*"longrope"/],
    ['type vs rope_type', { rope_scaling: { type: 'yarn', rope_type: 'linear', factor: 2 } }, /rope_scaling\.type: disagrees with rope_type/],
    ['no type', { rope_scaling: { factor: 2 } }, /rope_scaling\.rope_type: missing key/],
    ['factor < 1', { rope_scaling: { rope_type: 'linear', factor: 0.5 } }, /rope_scaling\.factor: expected a number >= 1/],
    ['llama3 high <= low', { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 8192 } }, /rope_scaling\.high_freq_factor: must be greater than low_freq_factor/],
    ['yarn truncate', { rope_scaling: { rope_type: 'yarn', factor: 2, truncate: 'yes' } }, /rope_scaling\.truncate: expected true or false/],
    ['dynamic with a llama3 key', { rope_scaling: { rope_type: 'dynamic', factor: 2, low_freq_factor: 1 } }, /rope_scaling\.low_freq_factor: unknown parameter for rope_type dynamic/],
    ['both rope forms', { rope_scaling: { rope_type: 'linear', factor: 2 }, rope_parameters: { rope_type: 'default', rope_theta: 10000 } }, /rope_parameters: both rope_scaling and rope_parameters/],
    ['per-layer rope parameters', { rope_parameters: { full_attention: { rope_type: 'default' } } }, /rope_parameters: per-layer-type/],
    ['top-level original_max_position_embeddings', { original_max_position_embeddings: 4096 }, /original_max_position_embeddings: a top-level/],
    ['gelu', { hidden_act: 'gelu' }, /hidden_act: unsupported activation/],
  ];
  for (const [what, extra, message] of cases) {
    t.throws(() => parseModelConfig({ ...SIZES, model_type: 'llama', ...extra }), { code: 'ERR_CONFIG', message }, what);
  }
  t.throws(() => parseModelConfig({ ...SIZES, model_type: 'mistral', sliding_window: 0 }), { code: 'ERR_CONFIG', message: /sliding_window: expected a positive integer or null/ });
  t.throws(() => parseModelConfig({ ...SIZES, model_type: 'qwen3', layer_types: ['full_attention'] }), { code: 'ERR_CONFIG', message: /layer_types: expected 32 entries/ });
  t.throws(() => parseModelConfig({ ...SIZES, model_type: 'qwen3', rope_parameters: { rope_type: 'default', rope_theta: 5 }, rope_theta: 6 }), { code: 'ERR_CONFIG', message: /rope_parameters\.rope_theta: disagrees with rope_theta/ });
});

t.test('rope defaults resolved as transformers does', async (t) => {
  const yarn = (rs: Record<string, unknown>, extra: Record<string, unknown> = {}) => parseModelConfig({ ...SIZES, model_type: 'qwen2', max_position_embeddings: 32768, ...extra, rope_scaling: { rope_type: 'yarn', ...rs } }).rope;
  const y = yarn({ factor: 4 });
  t.same(y, { type: 'yarn', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32768, betaFast: 32, betaSlow: 1, truncate: true, attentionFactor: 0.1 * Math.log(4) + 1 }, 'yarn: original context = max_position_embeddings, beta 32/1, attention factor 0.1 ln(factor) + 1');
  t.equal(yarn({ factor: 4, original_max_position_embeddings: 4096 }).originalMaxPositionEmbeddings, 4096);
  t.equal(yarn({ factor: 4, attention_factor: 0.5 }).attentionFactor, 0.5, 'an explicit attention_factor wins');
  t.equal(yarn({ factor: 40, mscale: 1, mscale_all_dim: 0.5 }).attentionFactor, (0.1 * Math.log(40) + 1) / (0.05 * Math.log(40) + 1), 'mscale / mscale_all_dim ratio');
  t.equal(yarn({ factor: 40, mscale: 1 }).attentionFactor, 0.1 * Math.log(40) + 1, 'mscale alone: the plain default');
  t.equal(yarn({ factor: 1 }).attentionFactor, 1, 'factor 1: no magnitude correction');
  const zeros = yarn({ factor: 2, beta_fast: 0, beta_slow: 0 });
  t.same([zeros.betaFast, zeros.betaSlow], [32, 1], 'beta_fast / beta_slow of 0 fall back to 32 / 1 (HF reads them with `or`)');
  t.equal(yarn({ factor: 2, truncate: false }).truncate, false);
  const v5 = parseModelConfig({ ...SIZES, model_type: 'llama', rope_parameters: { rope_type: 'llama3', rope_theta: 500000.0, factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 } });
  t.equal(v5.ropeTheta, 500000, 'transformers 5: rope_theta inside rope_parameters');
  t.equal(v5.rope.type, 'llama3');
  const back = toHfConfig(v5);
  t.same((back.rope_parameters as Record<string, unknown>).rope_theta, 500000, 'saved back with rope_theta in both places');
  const { hf: _a, ...again } = parseModelConfig(back);
  const { hf: _b, ...orig } = v5;
  t.same(again, orig, 'a transformers 5 config round-trips');
  t.equal(parseModelConfig({ ...SIZES, model_type: 'qwen2' }).maxPositionEmbeddings, 32768, 'qwen2 default max_position_embeddings');
  t.equal(parseModelConfig({ ...SIZES, model_type: 'mistral' }).slidingWindow, 4096, 'mistral: sliding_window 4096 when the key is absent');
  t.equal(toHfConfig(parseModelConfig({ ...SIZES, model_type: 'mistral' })).sliding_window, 4096, '... and written out explicitly');
  t.same(parseModelConfig({ ...SIZES, model_type: 'qwen2', sliding_window: 4096, max_window_layers: 2 }).layerWindows, new Array(32).fill(0), 'qwen2: no window without use_sliding_window');
  const l = parseModelConfig({ ...SIZES, model_type: 'qwen3', use_sliding_window: true, sliding_window: 512, layer_types: Array.from({ length: 32 }, (_, i) => (i % 2 ? 'sliding_attention' : 'full_attention')) });
  t.same(l.layerWindows.slice(0, 4), [0, 512, 0, 512], 'layer_types picks the sliding layers');
  t.equal(describeModel(l), 'qwen3 (q/k norm), head_dim 128, rope default, theta 1e4, sliding window 512 on 16 of 32 layers');
});
