// Runs a training job through the coordinator with `world` local rank processes (fast heartbeats,
// no restarts, one math thread per rank) and returns its result and metrics.jsonl rows in step
// order, and every rank's plan digest per step ("step:rank:digest", sorted). Never leaves a rank behind (the coordinator stops every process it started, also on
// failure).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Coordinator } from '../../../src/actors/coordinator/index.js';
import { LocalLauncher } from '../../../src/actors/launchers/LocalLauncher.js';
import { jobSpecOf } from '../../../src/config/JobSpec.js';
import { loadJobConfig } from '../../../src/config/loadJobConfig.js';
import type { Frame } from '../../../src/transport/FrameCodec.js';
import { cliEntry } from '../../../src/util/packageRoot.js';
import { createLogger } from '../../../src/util/Logger.js';

/** `yaml`: the whole job file, output_dir included. */
export async function runCoordinatedJob(name: string, yaml: string, world: number) {
  const job = loadJobConfig({ configPath: `${name}.yaml`, configText: yaml, env: {}, worldSize: world });
  const spec = jobSpecOf({
    ...job.config,
    cluster: { ...job.config.cluster, heartbeat_interval_s: 0.5, heartbeat_miss_limit: 6, max_restarts: 0, shutdown_grace_s: 1, rendezvous_timeout_s: 60, step_timeout_s: 120, collective_timeout_s: 60 },
  });
  const logger = createLogger('warn');
  const digests: string[] = [];
  const onFrame = (f: Frame) => {
    if (f.type === 'rank.step.done') digests.push(`${f.body.step}:${f.sender}:${f.body.planDigest}`);
  };
  const coord = new Coordinator({ job: spec, hosts: [{ host: 'localhost', slots: world }], launcher: new LocalLauncher(cliEntry(), logger), logger, workload: 'train', rankEnv: { ULYSSES_THREADS: '1', ULYSSES_LOG_LEVEL: 'warn' }, onFrame });
  const result = await coord.run();
  const file = join(job.config.output_dir, 'metrics.jsonl');
  const metrics = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];
  // the coordinator appends rows without serializing the writes: under load they can land out of order
  metrics.sort((a, b) => a.step - b.step);
  return { result, metrics, planDigests: digests.sort() };
}
