// modelFamilyReport: the line check-config / up print for a job's model, and its problems as
// config problems (key, value, fix, the config.json as source), for a model named as an example,
// a directory, and one that cannot be found (left to modelParallelProblems).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatProblem } from '../../src/config/ConfigError.js';
import { modelFamilyReport } from '../../src/train/modelFamilyReport.js';

t.test('example models by name', async (t) => {
  t.same(modelFamilyReport('llama3.1-mini'), { description: 'llama, head_dim 32, rope llama3 x8 from 256 (low_freq_factor 1, high_freq_factor 4), theta 5e5', problems: [] });
  t.same(modelFamilyReport('mistral-mini').description, 'mistral, head_dim 32, rope default, theta 1e4, sliding window 128');
});

t.test('a config with unsupported keys: every problem names its key and the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ua-family-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = { model_type: 'llama', vocab_size: 64, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, rope_scaling: { rope_type: 'longrope', factor: 2 }, hidden_act: 'gelu' };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  const r = modelFamilyReport(dir);
  t.equal(r.description, null);
  t.same(r.problems.map((p) => p.key), ['hidden_act', 'rope_scaling.rope_type']);
  const lines = r.problems.map(formatProblem);
  t.match(lines[1], new RegExp(`^${join(dir, 'config.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: rope_scaling\\.rope_type: unsupported rope type .*\\(got "longrope"\\)`), lines[1]);
});

t.test('a model that cannot be found gives no problem here', async (t) => {
  t.same(modelFamilyReport('no/such/model'), { description: null, problems: [] });
});
