// Stage kto's keys: LLaMA-Factory's own KTO example resolves (kto_chosen_weight and
// kto_rejected_weight with LLaMA-Factory's defaults, pref_beta and pref_ftx read by kto), and keys
// that would do nothing with the stage are problems naming the fix.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadJobConfig } from '../../src/config/loadJobConfig.js';
import { problemsOf } from './helpers/problemsOf.js';

const lfKto = readFileSync(fileURLToPath(new URL('./fixtures/llamafactory/examples/train_lora/llama3_lora_kto.yaml', import.meta.url)), 'utf8');
const load = (text: string) => loadJobConfig({ configPath: 'j.yaml', configText: text, env: {} });

t.test('LLaMA-Factory\'s KTO example resolves, with the weights and pref_ftx', async (t) => {
  const c = load(lfKto).config;
  t.same([c.stage, c.pref_beta, c.kto_chosen_weight, c.kto_rejected_weight, c.pref_ftx, c.preprocessing_batch_size], ['kto', 0.1, 1, 1, 0, 1000], 'LLaMA-Factory\'s defaults');
  t.equal(load(lfKto + 'preprocessing_batch_size: 64\n').config.preprocessing_batch_size, 64, 'preprocessing_batch_size sets the KL pairing batches');
  const w = load(lfKto + 'kto_chosen_weight: 1.33\nkto_rejected_weight: 0.5\npref_ftx: 0.2\n').config;
  t.same([w.kto_chosen_weight, w.kto_rejected_weight, w.pref_ftx], [1.33, 0.5, 0.2]);
});

t.test('keys that would do nothing, or out of range, are problems naming the fix', async (t) => {
  const one = (text: string) => {
    const ps = problemsOf(() => load(text));
    t.equal(ps.length, 1, ps.map((p) => `${p.key}: ${p.message}`).join('; '));
    return ps[0]!;
  };
  let p = one('dataset: a\nstage: dpo\nkto_chosen_weight: 2\n');
  t.match([p.key, p.message, p.fix], ['kto_chosen_weight', /only has an effect with stage: kto \(it is dpo\)/, /stage: kto/]);
  p = one(lfKto + 'pref_loss: orpo\n');
  t.match([p.key, p.message], ['pref_loss', /only has an effect with stage: dpo \(it is kto/]);
  p = one(lfKto + 'kto_rejected_weight: 0\n');
  t.equal(p.key, 'kto_rejected_weight');
  p = one('dataset: a\nstage: sft\npref_beta: 0.2\n');
  t.match([p.key, p.message], ['pref_beta', /only has an effect with stage: dpo or kto \(it is sft\)/]);
  t.doesNotThrow(() => load('dataset: a\nstage: sft\nkto_chosen_weight: 1\n'), 'the default spelled out changes nothing');
  p = one(lfKto + 'compute_accuracy: true\n');
  t.match([p.key, p.message], ['compute_accuracy', /kto reports eval_rewards\/chosen/]);
});
