// A checkpoint written by the Trainer reloads with Model.fromPretrained and gives the same logits
// as the model that was trained, bit for bit. The engine never materializes logits, so the full
// log-softmax rows are reconstructed exactly: one forward per vocabulary id v with every label
// set to v, its per-token loss is -log p(v | prefix) at every position. Equal log-softmax rows
// are equal logits up to the per-row constant softmax removes. Also checked: the checkpoint's
// model.safetensors holds the HF tensor names, shapes and F32, and its config.json is the HF
// form of the trained model's config. Run for a Llama (untied head, no biases) and a Qwen2-style
// config (tied embeddings, q/k/v biases), since the two save different tensor sets, and for the
// families of issue 16 (Llama 3.1 rope scaling, Qwen2.5 yarn, Qwen3 with its q/k norm tensors,
// Mistral's sliding window), whose configs must survive the round trip too.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Model } from '../../src/engine/model/index.js';
import { parseModelConfig, toHfConfig, type ModelConfig } from '../../src/engine/modelConfig.js';
import { readSafetensorsHeader } from '../../src/engine/safetensors.js';
import { singleProcessRuntime } from '../../src/train/ParallelRuntime.js';
import { checkpointDir, verifyCheckpoint } from '../../src/train/checkpoint.js';
import { Trainer } from '../../src/train/loop/index.js';
import { createLogger } from '../../src/util/Logger.js';
import { microConfig, microHfConfig, policy, progressionData, standInData, trainConfig } from './helpers/trainFixtures.js';

const logger = createLogger('silent');

/** microConfig's sizes as a Qwen2: tied embeddings, q/k/v biases, Qwen2.5's rope_theta. */
const qwenMicroConfig = parseModelConfig(
  { ...microHfConfig, model_type: 'qwen2', rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true },
  'qwen-micro',
);

/** -log p(v | tokens[0..t]) for every position t and vocabulary id v: [n * V], row-major. */
async function negLogSoftmax(model: Model, tokens: Int32Array): Promise<Float32Array> {
  const n = tokens.length;
  const V = model.config.vocabSize;
  const out = new Float32Array(n * V);
  const tokenLoss = new Float32Array(n);
  for (let v = 0; v < V; v++) {
    await model.forward({ tokens, labels: new Int32Array(n).fill(v), tokenLoss });
    for (let i = 0; i < n; i++) out[i * V + v] = tokenLoss[i]!;
  }
  return out;
}

function compare(a: Float32Array, b: Float32Array): { first: number; maxDiff: number } {
  let first = -1;
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i]) && first < 0) first = i;
    maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
  }
  return { first, maxDiff };
}

/** The 48-token training sequences run past each family's original context (16) and window (12). */
const familyConfigs: [string, Record<string, unknown>][] = [
  ['llama 3.1 rope scaling', { ...microHfConfig, max_position_embeddings: 128, rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 16 } }],
  ['qwen2.5 yarn', { ...microHfConfig, model_type: 'qwen2', tie_word_embeddings: true, rope_theta: 1000000, max_position_embeddings: 64, rope_scaling: { type: 'yarn', factor: 4.0, original_max_position_embeddings: 16 } }],
  ['qwen3 (q/k norm, tied)', { ...microHfConfig, model_type: 'qwen3', head_dim: 16, tie_word_embeddings: true, rope_theta: 1000000 }],
  ['mistral (sliding window 12)', { ...microHfConfig, model_type: 'mistral', sliding_window: 12 }],
];

const cases: [string, ModelConfig][] = [
  ['llama (untied, no biases)', microConfig],
  ['qwen2 (tied embeddings, q/k/v biases)', qwenMicroConfig],
  ...familyConfigs.map(([name, hf]): [string, ModelConfig] => [name, parseModelConfig(hf, name)]),
];

for (const [name, config] of cases) {
  t.test(`${name}: the trained model and its reloaded checkpoint give bitwise the same logits`, async (t) => {
    const outputDir = t.testdir();
    const model = await Model.create(config, { seed: 4 });
    const initial = Float32Array.from(model.params);
    const items = progressionData({ count: 4, len: 48 });
    const r = await new Trainer({
      model, runtime: singleProcessRuntime(), data: standInData(items), logger, policy: policy(),
      config: trainConfig(outputDir, { max_steps: 3, save_steps: 3, learning_rate: 2e-2 }),
      configHash: 'test',
    }).run();
    t.equal(r.step, 3);
    const dir = checkpointDir(outputDir, 3);
    t.equal(await verifyCheckpoint(dir), undefined, `${dir} is a complete checkpoint whose files match their checksums`);

    // HF layout: names, shapes and dtype of every tensor, nothing else.
    const header = await readSafetensorsHeader(join(dir, 'model.safetensors'));
    const expected = model.views.map((v) => [v.name, v.shape] as const).sort(([a], [b]) => a.localeCompare(b));
    const found = [...header.tensors.entries()].map(([k, e]) => [k, e.shape] as const).sort(([a], [b]) => a.localeCompare(b));
    t.same(found, expected, 'model.safetensors holds exactly the model tensors under their HF names and shapes');
    t.ok([...header.tensors.values()].every((e) => e.dtype === 'F32'), 'every tensor is F32');
    t.ok(header.tensors.has('model.embed_tokens.weight') && header.tensors.has('model.norm.weight') && header.tensors.has('model.layers.1.mlp.down_proj.weight'));
    t.equal(header.tensors.has('lm_head.weight'), !config.tieWordEmbeddings, 'lm_head.weight present exactly when embeddings are untied');
    t.equal(header.tensors.has('model.layers.0.self_attn.k_proj.bias'), config.qkvBias, 'k_proj.bias present exactly when the config has q/k/v biases');
    t.equal(header.tensors.has('model.layers.1.self_attn.q_norm.weight'), config.qkNorm, 'q_norm.weight present exactly for qwen3');
    const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    t.same(json, JSON.parse(JSON.stringify(toHfConfig(model.config))), 'config.json is the HF form of the trained config');
    const { hf: _a, ...reparsed } = parseModelConfig(json, 'checkpoint config.json');
    const { hf: _b, ...original } = config;
    t.same(reparsed, original, 'config.json parses back to the same model config');

    const loaded = await Model.fromPretrained(dir);
    const p = compare(loaded.params, model.params);
    t.equal(p.first, -1, `reloaded parameters are bitwise the trained ones (first difference at ${p.first}, max |diff| ${p.maxDiff})`);
    // the final weights are also in output_dir itself, as LLaMA-Factory leaves them
    const final = await Model.fromPretrained(outputDir);
    t.equal(compare(final.params, model.params).first, -1, 'output_dir holds the final model (HF layout), bitwise the trained weights');
    final.close();
    const moved = compare(initial, model.params).maxDiff;
    t.ok(moved > 1e-3, `training changed the weights (max |diff| from the initial weights ${moved})`);

    const tokens = progressionData({ count: 1, len: 24, seed: 3 })[0]!.tokens;
    const V = config.vocabSize;
    const trained = await negLogSoftmax(model, tokens);
    const reloaded = await negLogSoftmax(loaded, tokens);
    const l = compare(reloaded, trained);
    t.equal(l.first, -1, `log-softmax rows bitwise equal over ${tokens.length} positions x ${V} ids (first difference at ${l.first}, max |diff| ${l.maxDiff})`);
    // The rows are whole distributions (every id was scored): sum_v p(v) = 1.
    let worstMass = 0;
    for (let i = 0; i < tokens.length; i++) {
      let mass = 0;
      for (let v = 0; v < V; v++) mass += Math.exp(-trained[i * V + v]!);
      worstMass = Math.max(worstMass, Math.abs(mass - 1));
    }
    t.ok(worstMass < 1e-5, `each row sums to probability 1 (max |sum - 1| ${worstMass.toExponential(2)})`);
    // The comparison can see training: the initial weights give other rows.
    const fresh = await Model.create(config, { seed: 4 });
    const before = compare(await negLogSoftmax(fresh, tokens), trained).maxDiff;
    t.ok(before > 1e-3, `the initial model's log-probabilities differ from the trained ones (max |diff| ${before})`);
    for (const m of [model, loaded, fresh]) m.close();
  });
}
