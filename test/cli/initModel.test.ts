// `ulysses-actors init-model` through the real CLI: the directory it writes loads with
// Model.fromPretrained and holds exactly the weights of Model.create(config, { seed }) (bit for
// bit, HF names, F32); a model given by name, by config.json and by directory all work; --force
// replaces a stale sharded index; bad input exits 2 with a message naming the problem and writes
// nothing. examples/make_random_checkpoint.sh writes one such directory per example config.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Model } from '../../src/engine/model/index.js';
import { readModelConfig, toHfConfig } from '../../src/engine/modelConfig.js';
import { readSafetensorsHeader } from '../../src/engine/safetensors.js';
import { cleanEnv, runCli } from '../helpers/cli.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const models = join(root, 'examples/models');

/** Index of the first differing element (-1: none) and the largest absolute difference. */
function compare(a: Float32Array, b: Float32Array): { first: number; maxDiff: number } {
  let first = -1;
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && first < 0) first = i;
    maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
  }
  return { first, maxDiff };
}

async function expectSameAsCreate(t: Test, dir: string, configFile: string, seed: number) {
  const config = await readModelConfig(configFile);
  const ref = await Model.create(config, { seed });
  const loaded = await Model.fromPretrained(dir);
  t.same(loaded.views.map((v) => [v.name, v.shape]), ref.views.map((v) => [v.name, v.shape]), 'same tensors and shapes');
  t.equal(loaded.params.length, ref.params.length);
  const c = compare(loaded.params, ref.params);
  t.equal(c.first, -1, `weights bitwise equal to Model.create(config, { seed: ${seed} }) (first difference at ${c.first}, max |diff| ${c.maxDiff})`);
  const header = await readSafetensorsHeader(join(dir, 'model.safetensors'));
  const names = [...header.tensors.keys()].sort();
  t.same(names, ref.views.map((v) => v.name).sort(), 'model.safetensors holds exactly the HF-named tensors');
  t.ok([...header.tensors.values()].every((e) => e.dtype === 'F32'), 'every tensor is F32');
  t.same(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), JSON.parse(JSON.stringify(toHfConfig(config))), 'config.json is the HF form of the input config');
  ref.close();
  loaded.close();
}

t.test('by name and by directory: the written directory loads with the seeded weights (by config.json: the script test below)', async (t) => {
  const out = t.testdir();
  const byName = runCli(['init-model', 'llama3-mini', '--out', join(out, 'a'), '--seed', '7']);
  t.equal(byName.status, 0, byName.stderr);
  t.match(byName.stdout, /wrote .*a: config\.json and model\.safetensors \(llama, \d+ parameters, F32/);
  await expectSameAsCreate(t, join(out, 'a'), join(models, 'llama3-mini/config.json'), 7);

  // A directory holding config.json (e.g. an HF model's config and tokenizer without weights).
  const dir = join(out, 'c');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), readFileSync(join(models, 'tiny/config.json')));
  const byDir = runCli(['init-model', dir, '--out', join(out, 'd'), '--seed', '3']);
  t.equal(byDir.status, 0, byDir.stderr);
  await expectSameAsCreate(t, join(out, 'd'), join(models, 'tiny/config.json'), 3);
});

t.test('--force writes into a non-empty directory, drops a stale sharded index and keeps other files', async (t) => {
  const dir = join(t.testdir(), 'm');
  mkdirSync(dir);
  writeFileSync(join(dir, 'tokenizer.json'), '{}');
  writeFileSync(join(dir, 'model-00001-of-00002.safetensors'), 'stale');
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'model.embed_tokens.weight': 'model-00001-of-00002.safetensors' } }));
  const refused = runCli(['init-model', 'tiny', '--out', dir]);
  t.equal(refused.status, 2, 'a non-empty directory without --force is bad input');
  t.match(refused.stderr, /exists and is not empty; give --force/);
  t.notOk(existsSync(join(dir, 'model.safetensors')), 'nothing written when refused');
  const forced = runCli(['init-model', 'tiny', '--out', dir, '--force', '--seed', '5']);
  t.equal(forced.status, 0, forced.stderr);
  t.same(readdirSync(dir).sort(), ['config.json', 'model.safetensors', 'tokenizer.json'], 'the index and its shard are gone; tokenizer.json stays');
  await expectSameAsCreate(t, dir, join(models, 'tiny/config.json'), 5);
});

t.test('bad input exits 2 with a message and writes nothing', async (t) => {
  const out = t.testdir();
  const bad = join(out, 'bad.json');
  writeFileSync(bad, JSON.stringify({ model_type: 'gpt2', vocab_size: 300 }));
  const notDir = join(out, 'file');
  writeFileSync(notDir, 'x');
  const cases: [string, string[], RegExp][] = [
    ['no arguments', ['init-model'], /expected one model config, got 0/],
    ['no --out', ['init-model', 'tiny'], /--out DIR is required/],
    ['unknown name', ['init-model', 'llama9-giant', '--out', join(out, 'x')], /llama9-giant: no such config file.*not an example model name \(.*llama3-mini.*qwen2\.5-mini.*tiny/],
    ['unsupported model type', ['init-model', bad, '--out', join(out, 'x')], /model_type: unsupported model_type "gpt2"/],
    ['negative seed', ['init-model', 'tiny', '--out', join(out, 'x'), '--seed', '-1'], /--seed must be a whole number >= 0, got "-1"/],
    ['unknown option', ['init-model', 'tiny', '--out', join(out, 'x'), '--sed', '1'], /unknown option --sed/],
    ['--out is a file', ['init-model', 'tiny', '--out', notDir], /exists and is not a directory/],
  ];
  for (const [what, args, message] of cases) {
    const r = runCli(args);
    t.equal(r.status, 2, `${what}: exit 2 (got ${r.status}; stderr ${r.stderr.trim()})`);
    t.match(r.stderr, message, `${what}: the message names the problem`);
  }
  t.notOk(existsSync(join(out, 'x')), 'no output directory was created');
  t.equal(readFileSync(notDir, 'utf8'), 'x', 'the file given as --out is untouched');
});

t.test('the example mini configs keep the real architectures\' features at a CPU size', async (t) => {
  const llama = await readModelConfig(join(models, 'llama3-mini/config.json'));
  t.match(llama, { modelType: 'llama', ropeTheta: 500000, tieWordEmbeddings: false, qkvBias: false, oBias: false, hiddenSize: 256, numHiddenLayers: 4 }, 'Llama 3: rope_theta 500000, untied, no biases');
  t.ok(llama.numKeyValueHeads < llama.numAttentionHeads, `GQA: ${llama.numAttentionHeads} query heads share ${llama.numKeyValueHeads} KV heads`);
  const qwen = await readModelConfig(join(models, 'qwen2.5-mini/config.json'));
  t.match(qwen, { modelType: 'qwen2', ropeTheta: 1000000, tieWordEmbeddings: true, qkvBias: true, hiddenSize: 256, numHiddenLayers: 4 }, 'Qwen2.5: rope_theta 1e6, tied, q/k/v biases');
  const llama31 = await readModelConfig(join(models, 'llama3.1-mini/config.json'));
  t.match(llama31, { modelType: 'llama', ropeTheta: 500000, rope: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 256 } }, 'Llama 3.1: the llama3 rope_scaling block (original context scaled to 256)');
  const yarn = await readModelConfig(join(models, 'qwen2.5-yarn-mini/config.json'));
  t.match(yarn, { modelType: 'qwen2', qkvBias: true, tieWordEmbeddings: true, rope: { type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 256 } }, 'Qwen2.5 long context: yarn x4');
  const qwen3 = await readModelConfig(join(models, 'qwen3-mini/config.json'));
  t.match(qwen3, { modelType: 'qwen3', qkNorm: true, qkvBias: false, tieWordEmbeddings: true, headDim: 64 }, 'Qwen3: q/k norm, no biases, tied');
  t.not(qwen3.headDim, qwen3.hiddenSize / qwen3.numAttentionHeads, 'Qwen3: head_dim differs from hidden / heads');
  const mistral = await readModelConfig(join(models, 'mistral-mini/config.json'));
  t.match(mistral, { modelType: 'mistral', slidingWindow: 128, qkvBias: false, tieWordEmbeddings: false }, 'Mistral: sliding window 128');
  t.ok(mistral.layerWindows.every((w) => w === 128), 'every Mistral layer slides');
  for (const c of [llama, qwen, llama31, yarn, qwen3, mistral]) t.ok(c.vocabSize >= 259 && c.vocabSize <= 1024, `vocab ${c.vocabSize}: the byte tokenizer's bytes and BOS/EOS/PAD fit, and it stays small`);
});

/** The script through sh, which drops the NODE_OPTIONS tap re-adds to every spawn (see test/helpers/cli.ts). */
function runScript(args: string[]) {
  return spawnSync('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$@"', 'sh', 'bash', join(root, 'examples/make_random_checkpoint.sh'), ...args], { encoding: 'utf8', env: cleanEnv(), timeout: 120_000 });
}

t.test('examples/make_random_checkpoint.sh writes a loadable directory for every example model config', async (t) => {
  const out = join(t.testdir(), 'ck');
  const names = readdirSync(models).filter((n) => existsSync(join(models, n, 'config.json'))).sort();
  const r = runScript([out, '--seed', '2']);
  t.equal(r.status, 0, r.stderr);
  t.same(readdirSync(out).sort(), names, `one directory per examples/models config: ${names.join(', ')}`);
  for (const n of names) {
    const cfg = await readModelConfig(join(out, n, 'config.json'));
    const header = await readSafetensorsHeader(join(out, n, 'model.safetensors'));
    const numel = [...header.tensors.values()].reduce((a, e) => a + e.shape.reduce((x, y) => x * y, 1), 0);
    const embed = header.tensors.get('model.embed_tokens.weight');
    t.same(embed?.shape, [cfg.vocabSize, cfg.hiddenSize], `${n}: embed_tokens is [vocab, hidden] (${numel} parameters in ${header.tensors.size} F32 tensors)`);
    t.ok([...header.tensors.values()].every((e) => e.dtype === 'F32'), `${n}: F32`);
  }
  // The small ones also bit for bit against Model.create (the 56M-parameter `small` only by header, to stay light).
  for (const n of ['tiny', 'llama3-mini', 'qwen2.5-mini']) await expectSameAsCreate(t, join(out, n), join(models, n, 'config.json'), 2);
  const q = await readSafetensorsHeader(join(out, 'qwen2.5-mini/model.safetensors'));
  t.notOk(q.tensors.has('lm_head.weight'), 'tied embeddings (Qwen2.5 small sizes): no lm_head tensor, as in HF');
  t.ok(q.tensors.has('model.layers.0.self_attn.q_proj.bias'), 'Qwen2 q/k/v biases are written');
  const again = runScript([out]);
  t.equal(again.status, 2, 'a second run into the same directory is refused (exit 2) without --force');
  const usage = runScript([]);
  t.equal(usage.status, 2);
  t.match(usage.stderr, /usage: bash examples\/make_random_checkpoint\.sh OUT_DIR/);
});
