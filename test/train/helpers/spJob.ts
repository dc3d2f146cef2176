// Runs a training job through the coordinator with `sp` local rank processes (sequence-parallel
// degree sp, one data-parallel replica) and returns its result and metrics.jsonl rows in step
// order: the runner of the sp 1 vs sp 2 equivalence tests. Never leaves a rank behind (the
// coordinator stops every process it started, also on failure).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadJobConfig } from '../../../src/config/loadJobConfig.js';
import { Coordinator } from '../../../src/actors/Coordinator.js';
import { LocalLauncher } from '../../../src/actors/launchers/LocalLauncher.js';
import { cliEntry } from '../../../src/cli/entryPath.js';
import { createLogger } from '../../../src/util/Logger.js';

/** `yaml`: the job's lines without output_dir and sequence_parallel_size (added here). */
export async function runSpJob(root: string, name: string, sp: number, yaml: string[]) {
  const dir = join(root, name);
  const text = [...yaml, `output_dir: ${dir}`, `sequence_parallel_size: ${sp}`].join('\n');
  const job = loadJobConfig({ configPath: `${name}.yaml`, configText: text, env: {}, worldSize: sp });
  const config = {
    ...job.config,
    cluster: { ...job.config.cluster, heartbeat_interval_s: 0.5, heartbeat_miss_limit: 6, max_restarts: 0, shutdown_grace_s: 1, rendezvous_timeout_s: 60, step_timeout_s: 120, collective_timeout_s: 60 },
  };
  const logger = createLogger('warn');
  const coord = new Coordinator({ config, hosts: [{ host: 'localhost', slots: sp }], outputDir: dir, launcher: new LocalLauncher(cliEntry(), logger), logger, workload: 'train', rankEnv: { ULYSSES_THREADS: '1', ULYSSES_LOG_LEVEL: 'warn' } });
  const result = await coord.run();
  const metrics = existsSync(join(dir, 'metrics.jsonl')) ? readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];
  // the coordinator appends rows without serializing the writes: under load they can land out of order
  metrics.sort((a, b) => a.step - b.step);
  return { result, metrics };
}
