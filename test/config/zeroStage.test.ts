// zero_stage from the job or from the DeepSpeed JSON's zero_optimization.stage: stage 3
// (LLaMA-Factory's ds_z3_config.json) runs as stage 2 and says so; a stage DeepSpeed does not have,
// a zero_stage above 2 in the job and a job value that disagrees with the JSON are problems.
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
  const job = loadJobConfig({ configPath: 'j.yaml', configText: `deepspeed: ${z3}\n`, env: {} });
  t.equal(loadJobConfig({ configPath: 'j.yaml', configText: 'zero_stage: 2\n', env: {} }).config.zero_stage, 2, 'own key: stage 2');
  t.equal(job.config.zero_stage, 2, 'ds_z3_config.json: stage 3 runs as stage 2');
  t.ok(job.ignored.some((i) => i.key === 'deepspeed.zero_optimization.stage' && /stage 3 runs as stage 2/.test(i.reason)), 'and says so');
  t.ok(job.ignored.some((i) => i.key === 'deepspeed.zero_optimization'), 'the other ZeRO settings are listed as ignored');
  const same = loadJobConfig({ configPath: 'j.yaml', configText: `deepspeed: ${z3}\nzero_stage: 2\n`, env: {} });
  t.equal(same.config.zero_stage, 2, 'the job and the JSON agree');
  const ps = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: `deepspeed: ${z3}\nzero_stage: 0\n`, env: {} }));
  t.ok(ps.some((p) => /zero_stage/.test(p.key + p.message) && /disagrees/.test(p.message)), 'a job value that disagrees with the JSON is a problem, as for the other mapped keys');
});

t.test('bad stages are problems naming the key', async (t) => {
  const dir = t.testdir();
  const ds = join(dir, 'ds.json');
  writeFileSync(ds, JSON.stringify({ zero_optimization: { stage: 4 } }));
  const ps = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: `deepspeed: ${ds}\n`, env: {} }));
  t.ok(ps.some((p) => /zero_optimization\.stage/.test(p.key) && /0, 1, 2 or 3/.test(p.message)), 'stage 4 in the JSON');
  const job = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: 'zero_stage: 3\n', env: {} }));
  t.same(job.map((p) => p.key), ['zero_stage'], 'zero_stage 3 in the job is refused (not implemented: the JSON maps it to 2)');
});

t.test('stage rm takes zero_stage 0 or 1: ZeRO 2 is refused naming the key', async (t) => {
  t.equal(loadJobConfig({ configPath: 'j.yaml', configText: 'stage: rm\nzero_stage: 1\n', env: {} }).config.zero_stage, 1);
  const ps = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: 'stage: rm\nzero_stage: 2\n', env: {} }));
  t.same(ps.map((p) => p.key), ['zero_stage']);
  t.match(ps[0]!.message, /stage rm runs with zero_stage 0 or 1/);
  const ds = problemsOf(() => loadJobConfig({ configPath: 'j.yaml', configText: `stage: rm\ndeepspeed: ${z3}\n`, env: {} }));
  t.ok(ds.some((p) => p.key === 'zero_stage'), 'also when the DeepSpeed JSON asks for it');
});
