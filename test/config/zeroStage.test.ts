// zero_stage from the job or from the DeepSpeed JSON's zero_optimization.stage, stage 3
// (LLaMA-Factory's ds_z3_config.json) included; a stage DeepSpeed does not have and a job value
// that disagrees with the JSON are problems; every training stage and LoRA take every ZeRO stage.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadJobConfig } from '../../src/config/index.js';
import { problemsOf } from './helpers/problemsOf.js';

const z3 = fileURLToPath(new URL('./fixtures/llamafactory/examples/deepspeed/ds_z3_config.json', import.meta.url));

t.test('zero_stage: default 0, the job key, and the DeepSpeed stage', async (t) => {
  t.equal(loadJobConfig({ configPath: 'j.yaml', configText: 'stage: pt\n', env: {} }).config.zero_stage, 0, 'default 0');
  t.equal(loadJobConfig({ configPath: 'j.yaml', configText: 'zero_stage: 1\n', env: {} }).config.zero_stage, 1, 'own key');
  const full = 'stage: sft\nfinetuning_type: full\n';
  const job = loadJobConfig({ configPath: 'j.yaml', configText: `${full}deepspeed: ${z3}\n`, env: {} });
  t.equal(loadJobConfig({ configPath: 'j.yaml', configText: 'zero_stage: 2\n', env: {} }).config.zero_stage, 2, 'own key: stage 2');
  t.equal(loadJobConfig({ configPath: 'j.yaml', configText: `${full}zero_stage: 3\n`, env: {} }).config.zero_stage, 3, 'own key: stage 3');
  t.equal(job.config.zero_stage, 3, 'ds_z3_config.json: stage 3');
  t.notOk(job.ignored.some((i) => i.key === 'deepspeed.zero_optimization.stage'), 'the stage itself is not listed as ignored');
  t.ok(job.ignored.some((i) => i.key === 'deepspeed.zero_optimization' && /0-3/.test(i.reason)), 'the other ZeRO settings are listed as ignored');
  const same = loadJobConfig({ configPath: 'j.yaml', configText: `${full}deepspeed: ${z3}\nzero_stage: 3\n`, env: {} });
  t.equal(same.config.zero_stage, 3, 'the job and the JSON agree');
  const ps = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: `${full}deepspeed: ${z3}\nzero_stage: 0\n`, env: {} }));
  t.ok(ps.some((p) => /zero_stage/.test(p.key + p.message) && /disagrees/.test(p.message)), 'a job value that disagrees with the JSON is a problem, as for the other mapped keys');
});

t.test('bad stages are problems naming the key', async (t) => {
  const dir = t.testdir();
  const ds = join(dir, 'ds.json');
  writeFileSync(ds, JSON.stringify({ zero_optimization: { stage: 4 } }));
  const ps = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: `deepspeed: ${ds}\n`, env: {} }));
  t.ok(ps.some((p) => /zero_optimization\.stage/.test(p.key) && /0, 1, 2 or 3/.test(p.message)), 'stage 4 in the JSON');
  const job = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: 'zero_stage: 4\n', env: {} }));
  t.same(job.map((p) => p.key), ['zero_stage'], 'zero_stage 4 in the job');
});

t.test('every stage takes every ZeRO stage: LoRA and stage rm at 2 and 3, dpo, kto and evaluation at 3', async (t) => {
  const zero = (text: string) => loadJobConfig({ configPath: 'j.yaml', configText: text, env: {} }).config.zero_stage;
  for (const z of [2, 3]) {
    t.equal(zero(`stage: sft\nfinetuning_type: lora\nzero_stage: ${z}\n`), z, `LoRA at zero_stage ${z}`);
    t.equal(zero(`stage: rm\nfinetuning_type: full\nzero_stage: ${z}\n`), z, `stage rm at zero_stage ${z}`);
    t.equal(zero(`stage: rm\nfinetuning_type: lora\nzero_stage: ${z}\n`), z, `stage rm with LoRA at zero_stage ${z}`);
  }
  for (const stage of ['dpo', 'kto']) {
    const text = `stage: ${stage}\nfinetuning_type: full\nzero_stage: 3\nval_size: 0.1\neval_strategy: steps\ndo_eval: true\n`;
    t.equal(zero(text), 3, `stage ${stage} with evaluation`);
  }
  t.equal(zero(`stage: sft\ndeepspeed: ${z3}\n`), 3, 'ds_z3_config.json with LLaMA-Factory\'s default finetuning_type lora');
  t.equal(zero(`stage: rm\ndeepspeed: ${z3}\n`), 3, 'ds_z3_config.json with stage rm');
});
