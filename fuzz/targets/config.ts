/**
 * Fuzz target `config`: a YAML job file through the whole resolution of config/loadJobConfig.ts
 * (YAML parse, unknown/ignored/unsupported keys with "did you mean", coercion and range checks,
 * the DeepSpeed JSON it names, cross-field checks, convict's safety net, the typed JobSpec). The
 * job file sits in a scratch folder beside a valid, a conflicting and a broken DeepSpeed JSON,
 * so `deepspeed: ds.json` resolves. Only a ConfigError with at least one problem is a documented
 * refusal; an accepted job must carry a source for every key it resolved.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/ConfigError.js';
import { loadJobConfig } from '../../src/config/loadJobConfig.js';
import { LEAVES } from '../../src/config/schema.js';
import { check, expectOnly, scratchDir } from './harness.js';

export const refused = (e: unknown) => e instanceof ConfigError && e.problems.length > 0;

/** DeepSpeed JSONs a fuzzed job may name: a valid one, one that disagrees with the job, a broken one. */
export function writeDeepSpeedFiles(dir: string): void {
  writeFileSync(join(dir, 'ds.json'), JSON.stringify({ train_batch_size: 'auto', train_micro_batch_size_per_gpu: 'auto', sequence_parallel_size: 2, bf16: { enabled: 'auto' }, zero_optimization: { stage: 0 } }));
  writeFileSync(join(dir, 'ds_conflict.json'), JSON.stringify({ train_micro_batch_size_per_gpu: 4, gradient_accumulation_steps: 16, train_batch_size: 7 }));
  writeFileSync(join(dir, 'ds_broken.json'), '{ "sequence_parallel_size": ');
}

export function fuzz(data: Buffer): void {
  const dir = scratchDir('config', writeDeepSpeedFiles);
  const job = expectOnly(() => loadJobConfig({ configPath: join(dir, 'job.yaml'), configText: data.toString('utf8'), env: {}, worldSize: 4 }), refused);
  if (!job) return;
  for (const l of LEAVES) check(typeof job.sources[l.path] === 'string', `accepted job has no source for ${l.path}`);
}
