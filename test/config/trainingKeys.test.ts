// The keys of LLaMA-Factory that change what is trained: implemented ones resolve (evaluation,
// masking, neat_packing, data order), contradictions are problems naming the key and the fix,
// and the ones not implemented are refused naming the key and what is supported instead, while
// their LLaMA-Factory defaults (0, null, false, adamw_torch) are accepted as not set.
import t from 'tap';
import { loadJobConfig } from '../../src/config/loadJobConfig.js';
import { IGNORED_KEYS, UNSUPPORTED_KEYS } from '../../src/config/ignoredKeys.js';
import { problemsOf } from './helpers/problemsOf.js';

const load = (text: string) => loadJobConfig({ configPath: 'j.yaml', configText: text, env: {} });

t.test('evaluation keys resolve with HF defaults', async (t) => {
  const c = load('dataset: a\nval_size: 0.1\neval_strategy: steps\neval_steps: 50\nper_device_eval_batch_size: 2\ndo_eval: true\ncompute_accuracy: true\n').config;
  t.same([c.val_size, c.eval_strategy, c.eval_steps, c.per_device_eval_batch_size, c.do_eval, c.compute_accuracy], [0.1, 'steps', 50, 2, true, true]);
  const d = load('dataset: a\n').config;
  t.same([d.val_size, d.eval_strategy, d.eval_steps, d.per_device_eval_batch_size, d.do_eval, d.eval_dataset], [0, 'no', null, 8, false, []]);
  t.equal(load('dataset: a\neval_dataset: b,c\neval_strategy: epoch\neval_on_each_dataset: true\n').config.eval_dataset.length, 2);
  t.equal(load('dataset: builtin:passkey\neval_strategy: steps\n').config.eval_strategy, 'steps', 'a built-in task brings its own held-out set');
});

t.test('evaluation without held-out data and other contradictions are problems', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['dataset: a\neval_strategy: steps\n', 'eval_strategy', /needs held-out data/],
    ['dataset: a\ndo_eval: true\n', 'do_eval', /needs held-out data/],
    ['dataset: a\nval_size: 0.1\neval_dataset: b\neval_strategy: steps\n', 'val_size', /cannot be combined with eval_dataset/],
    ['dataset: a\nval_size: 2.5\n', 'val_size', /whole number/],
    ['dataset: a\nval_size: 0.1\neval_steps: 10\n', 'eval_steps', /only has an effect with eval_strategy: steps/],
    ['dataset: a\nstage: pt\ntrain_on_prompt: true\n', 'train_on_prompt', /only has an effect with stage: sft/],
    ['dataset: a\ntrain_on_prompt: true\nmask_history: true\n', 'mask_history', /cannot be combined with train_on_prompt/],
    ['dataset: a\nstage: dpo\nval_size: 0.1\ncompute_accuracy: true\n', 'compute_accuracy', /eval_rewards\/accuracies/],
    ['dataset: a\nval_size: 0.1\neval_on_each_dataset: true\n', 'eval_on_each_dataset', /needs eval_dataset/],
    ['dataset: a\noverwrite_output_dir: true\nresume_from_checkpoint: true\n', 'resume_from_checkpoint', /overwrite_output_dir clears/],
    ['dataset: builtin:passkey\nval_size: 0.1\n', 'val_size', /own held-out examples/],
  ];
  for (const [text, key, re] of cases) {
    const ps = problemsOf(() => load(text));
    t.same(ps.map((p) => p.key), [key], `${JSON.stringify(text)}: one problem on ${key}`);
    t.match(ps[0]?.message ?? '', re);
    t.ok((ps[0]?.fix ?? '').length > 5, `with a fix: ${ps[0]?.fix}`);
  }
});

t.test('neat_packing turns packing on; data_seed and disable_shuffling resolve', async (t) => {
  t.equal(load('dataset: a\nneat_packing: true\n').config.packing, true, 'LLaMA-Factory: neat_packing implies packing');
  t.equal(load('dataset: a\n').config.packing, false, 'sft does not pack by default');
  const c = load('dataset: a\ndata_seed: 7\ndisable_shuffling: true\n').config;
  t.same([c.data_seed, c.disable_shuffling], [7, true]);
});

t.test('keys that would change training are refused by name, with what is supported instead', async (t) => {
  const refused: Record<string, string> = {
    use_dora: 'true', use_rslora: 'true', pissa_init: 'true', loraplus_lr_ratio: '16.0', additional_target: 'embed_tokens',
    quantization_bit: '4', new_special_tokens: '"<a>,<b>"', resize_vocab: 'true', fp16: 'true', pure_bf16: 'true',
    neftune_noise_alpha: '5', shift_attn: 'true', optim: 'sgd',
    load_best_model_at_end: 'true', do_predict: 'true', predict_with_generate: 'true', streaming: 'true', mix_strategy: 'interleave_under',
    evaluation_strategy: 'steps', lr_scheduler_kwargs: '{power: 2}',
  };
  for (const [key, value] of Object.entries(refused)) {
    t.ok(key in UNSUPPORTED_KEYS && !(key in IGNORED_KEYS), `${key} is refused, not ignored`);
    const ps = problemsOf(() => load(`dataset: a\n${key}: ${value}\n`));
    t.equal(ps.length, 1, `${key}: ${value} is one problem`);
    t.equal(ps[0]?.key, key);
    t.match(ps[0]?.message, /not supported here: /);
    t.ok(ps[0]!.message.length > 40, `the reason names what is supported: ${ps[0]?.message}`);
  }
  // LLaMA-Factory's own defaults of those keys train nothing differently
  const ok = load('dataset: a\nneftune_noise_alpha: 0\nuse_dora: false\nquantization_bit: null\noptim: adamw_torch\nmix_strategy: concat\nevaluation_strategy: "no"\n');
  t.same(ok.ignored.map((i) => [i.key, i.reason]), [['neftune_noise_alpha', 'not set'], ['use_dora', 'not set'], ['quantization_bit', 'not set'], ['optim', 'not set'], ['mix_strategy', 'not set'], ['evaluation_strategy', 'not set']]);
  for (const key of ['pref_ftx', 'dpo_label_smoothing', 'simpo_gamma', 'train_on_prompt', 'mask_history', 'val_size', 'eval_dataset', 'plot_loss', 'overwrite_output_dir', 'default_system', 'enable_thinking', 'neat_packing'])
    t.notOk(key in IGNORED_KEYS || key in UNSUPPORTED_KEYS, `${key} acts (a schema key)`);
});
