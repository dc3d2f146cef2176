// Runs a training job through the coordinator with `sp` local rank processes (sequence-parallel
// degree sp, one data-parallel replica) and returns its result and metrics.jsonl rows in step
// order: the runner of the sp 1 vs sp 2 equivalence tests. Never leaves a rank behind (the
// coordinator stops every process it started, also on failure).
import type { Test } from 'tap';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadJobConfig } from '../../../src/config/loadJobConfig.js';
import { jobSpecOf } from '../../../src/config/JobSpec.js';
import { Coordinator } from '../../../src/actors/coordinator/index.js';
import { LocalLauncher } from '../../../src/actors/launchers/LocalLauncher.js';
import { cliEntry } from '../../../src/util/packageRoot.js';
import { createLogger } from '../../../src/util/Logger.js';

/** `yaml`: the job's lines without output_dir and sequence_parallel_size (added here). */
async function runSpJob(root: string, name: string, sp: number, yaml: string[]) {
  const dir = join(root, name);
  const text = [...yaml, `output_dir: ${dir}`, `sequence_parallel_size: ${sp}`].join('\n');
  const job = loadJobConfig({ configPath: `${name}.yaml`, configText: text, env: {}, worldSize: sp });
  const spec = jobSpecOf({
    ...job.config,
    cluster: { ...job.config.cluster, heartbeat_interval_s: 0.5, heartbeat_miss_limit: 6, max_restarts: 0, shutdown_grace_s: 1, rendezvous_timeout_s: 60, step_timeout_s: 120, collective_timeout_s: 60 },
  });
  const logger = createLogger('warn');
  const coord = new Coordinator({ job: spec, hosts: [{ host: 'localhost', slots: sp }], launcher: new LocalLauncher(cliEntry(), logger), logger, workload: 'train', rankEnv: { ULYSSES_THREADS: '1', ULYSSES_LOG_LEVEL: 'warn' } });
  const result = await coord.run();
  const metrics = existsSync(join(dir, 'metrics.jsonl')) ? readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];
  // the coordinator appends rows without serializing the writes: under load they can land out of order
  metrics.sort((a, b) => a.step - b.step);
  return { result, metrics };
}

/**
 * Writes the equivalence tests' model (a small GQA Llama: 2 kv heads split over 2 ranks) to
 * root/model/config.json (random weights from the job's seed) and returns the directory.
 */
export function writeSpModel(root: string): string {
  const dir = join(root, 'model');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    model_type: 'llama', vocab_size: 260, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, head_dim: 8, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, initializer_range: 0.05,
  }));
  return dir;
}

/**
 * The same job at sp 1 and at sp 2 (`yaml` as for runSpJob, with max_steps `steps` and a
 * metrics row per step); checks that both succeeded and logged every step, and returns both.
 */
export async function runSp1AndSp2(t: Test, root: string, yaml: string[], steps: number) {
  const one = await runSpJob(root, 'sp1', 1, yaml);
  const two = await runSpJob(root, 'sp2', 2, yaml);
  const want = Array.from({ length: steps }, (_, i) => i + 1);
  t.equal(one.result.ok, true, String(one.result.reason));
  t.equal(two.result.ok, true, String(two.result.reason));
  t.same(one.metrics.map((m) => m.step), want);
  t.same(two.metrics.map((m) => m.step), want);
  return { one, two };
}
