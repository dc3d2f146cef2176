// The pref_loss family of stage dpo: LLaMA-Factory's own DPO example with each pref_loss resolves
// (pref_ftx, simpo_gamma and dpo_label_smoothing are schema keys with LLaMA-Factory's defaults),
// and keys that would do nothing with the chosen loss or stage are problems naming the fix.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadJobConfig } from '../../src/config/loadJobConfig.js';
import { problemsOf } from './helpers/problemsOf.js';

const lfDpo = readFileSync(fileURLToPath(new URL('./fixtures/llamafactory/examples/train_lora/llama3_lora_dpo.yaml', import.meta.url)), 'utf8');
const load = (text: string) => loadJobConfig({ configPath: 'j.yaml', configText: text, env: {} });

t.test('LLaMA-Factory\'s DPO example resolves with every pref_loss and the extras', async (t) => {
  const d = load(lfDpo).config;
  t.same([d.pref_loss, d.pref_ftx, d.simpo_gamma, d.dpo_label_smoothing], ['sigmoid', 0, 0.5, 0], 'LLaMA-Factory\'s defaults');
  for (const loss of ['sigmoid', 'orpo', 'simpo', 'ipo', 'hinge']) {
    const c = load(lfDpo.replace(/^pref_loss: .*$/m, `pref_loss: ${loss}`) + 'pref_ftx: 0.25\n').config;
    t.same([c.pref_loss, c.pref_ftx], [loss, 0.25], `pref_loss ${loss} with pref_ftx`);
  }
  t.equal(load(lfDpo.replace(/^pref_loss: .*$/m, 'pref_loss: simpo') + 'simpo_gamma: 1.4\n').config.simpo_gamma, 1.4);
  t.equal(load(lfDpo + 'dpo_label_smoothing: 0.1\n').config.dpo_label_smoothing, 0.1);
});

t.test('extras that would do nothing, or out of range, are problems naming the fix', async (t) => {
  const one = (text: string) => {
    const ps = problemsOf(() => load(text));
    t.equal(ps.length, 1, ps.map((p) => `${p.key}: ${p.message}`).join('; '));
    return ps[0]!;
  };
  let p = one(lfDpo + 'simpo_gamma: 1.0\n');
  t.match([p.key, p.message, p.fix], ['simpo_gamma', /only has an effect with pref_loss: simpo/, /pref_loss: simpo/]);
  p = one(lfDpo.replace(/^pref_loss: .*$/m, 'pref_loss: orpo') + 'dpo_label_smoothing: 0.1\n');
  t.match([p.key, p.message], ['dpo_label_smoothing', /only has an effect with pref_loss: sigmoid \(it is orpo\)/]);
  p = one(lfDpo + 'dpo_label_smoothing: 0.7\n');
  t.match([p.key, p.message], ['dpo_label_smoothing', /out of range/]);
  p = one('dataset: a\nstage: sft\npref_ftx: 0.5\n');
  t.match([p.key, p.message], ['pref_ftx', /only has an effect with stage: dpo/]);
  p = one(lfDpo.replace(/^pref_loss: .*$/m, 'pref_loss: kto_pair'));
  t.match([p.key, p.fix], ['pref_loss', /sigmoid, orpo, simpo, ipo, hinge/]);
});
