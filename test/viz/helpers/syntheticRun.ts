/**
 * Writes a synthetic finished run (events.ndjson + metrics.jsonl) the way the coordinator does:
 * two hosts, ranks in hostfile order, a warmup, policy transitions on every rank, an injected
 * fault with a restart from the last checkpoint (the steps after it run again), checkpoints and
 * a late stage. Sized by the number of event lines, so the
 * visualizer can be tested at 100,000 events. Deterministic; touches only the given directory.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SyntheticRun {
  events: number;
  transitions: number;
  steps: number;
  /** rows in metrics.jsonl: more than `steps`, since the steps after the checkpoint ran twice */
  metricsRows: number;
  /** the checkpoint step the job resumed from after the fault */
  resumedAt: number;
  world: number;
  /** the policy state of every rank at the end */
  finalState: string;
}

/** The global policy state of a step (all replicas agree). */
function stateOf(step: number, steps: number, warmup: number): string {
  if (step <= warmup) return 'warmup';
  if (step > 0.9 * steps) return 'late-stage';
  return ['normal', 'normal', 'vanishing-intervention', 'normal', 'explode-clip', 'normal', 'vanishing-intervention'][Math.floor(step / 40) % 7]!;
}

/** At least `opts.events` event lines: the step count grows until the run is long enough. */
export async function writeSyntheticRun(dir: string, opts: { events: number; world?: number }): Promise<SyntheticRun> {
  const world = opts.world ?? 8;
  let steps = Math.max(60, Math.floor(opts.events / (1 + (world * 6) / 280)));
  for (;;) {
    const run = generate(world, steps);
    if (run.ev.length >= opts.events) {
      await writeFile(join(dir, 'events.ndjson'), run.ev.join('\n') + '\n');
      await writeFile(join(dir, 'metrics.jsonl'), run.metrics.join('\n') + '\n');
      return { events: run.ev.length, transitions: run.transitions, steps, metricsRows: run.metrics.length, resumedAt: run.resumedAt, world, finalState: run.state };
    }
    steps += Math.ceil((opts.events - run.ev.length) / (1 + (world * 6) / 280)) + 1;
  }
}

function generate(world: number, steps: number) {
  const hosts = [
    { host: 'node-a', slots: Math.ceil(world / 2) },
    { host: 'node-b', slots: Math.floor(world / 2) },
  ];
  const warmup = Math.min(200, Math.floor(steps / 10));
  const ev: string[] = [];
  const metrics: string[] = [];
  const t0 = Date.UTC(2026, 0, 1);
  let t = 0;
  const emit = (type: string, fields: Record<string, unknown> = {}) => ev.push(JSON.stringify({ type, time: new Date(t0 + t).toISOString(), t, ...fields }));
  emit('job.state', { state: 'starting', attempt: 0 });
  emit('job.started', { world, hosts, url: 'tcp://127.0.0.1:1', bound: 'tcp://127.0.0.1:1', jobId: 'synthetic' });
  hosts.forEach((h, hostIndex) => emit('agent.joined', { host: h.host, hostIndex, pid: 100 + hostIndex }));
  const spawnAll = (inc: number) => {
    for (let r = 0; r < world; r++) emit('rank.spawn', { rank: r, incarnation: inc, host: hosts[r < hosts[0]!.slots ? 0 : 1]!.host });
    for (let r = 0; r < world; r++) emit('rank.joined', { rank: r, incarnation: inc, pid: 1000 + inc * 100 + r });
  };
  spawnAll(0);
  emit('job.state', { state: 'running', attempt: 0 });
  let transitions = 0;
  let state = 'warmup';
  let restarts = 0;
  const faultStep = Math.floor(steps / 2);
  let faulted = false;
  let step = 1;
  for (; step <= steps; step++) {
    t += 10; // time runs on when steps run again
    const next = stateOf(step, steps, warmup);
    if (next !== state) {
      for (let r = 0; r < world; r++) {
        emit('rank.policy.transition', { rank: r, step, from: state, to: next });
        transitions++;
      }
      state = next;
    }
    const loss = 3 * Math.exp(-step / (steps / 3)) + 0.5 + 0.05 * Math.sin(step);
    const gradMean = state === 'vanishing-intervention' ? 1e-9 : state === 'explode-clip' ? 50 : 1e-3 * (1 + 0.5 * Math.sin(step / 7));
    emit('job.step', { step, loss, policy_state: state });
    metrics.push(
      JSON.stringify({
        step, loss, tokens: 4096 * world, lr: 1e-4 * Math.min(1, step / warmup), grad_mean: gradMean, grad_norm: gradMean * 900,
        max_abs_grad: gradMean * 40, nonfinite: 0, policy_state: state, interventions: state === 'vanishing-intervention' ? 1 : 0,
        step_ms: 120 + (step % 13), tokens_per_s: (4096 * world * 1000) / (120 + (step % 13)), restarts,
      }),
    );
    if (step % 500 === 0) emit('checkpoint.committed', { rank: 0, step, path: `checkpoint-${step}`, checksum: 'x' });
    if (step === faultStep && !faulted) {
      faulted = true;
      emit('chaos.kill', { rank: 3 % world, signal: 'SIGKILL', what: `kill rank ${3 % world}` });
      emit('job.rank.failed', { rank: 3 % world, incarnation: 0, reason: 'killed by SIGKILL', detectedBy: 'agent' });
      restarts++;
      emit('job.restarted', { attempt: 1, cause: `rank ${3 % world}`, reason: 'killed by SIGKILL', restarted: world });
      spawnAll(1);
      // like the real job: every rank resumes from the last checkpoint (policy state included)
      // and the steps after it run again
      const resume = Math.floor(step / 500) * 500;
      state = resume === 0 ? 'warmup' : stateOf(resume, steps, warmup);
      step = resume;
    }
  }
  for (let r = 0; r < world; r++) emit('rank.done', { rank: r, step: step - 1, finalHash: 'h' });
  emit('job.state', { state: 'succeeded', attempt: 1 });
  return { ev, metrics, transitions, state, resumedAt: Math.floor(faultStep / 500) * 500 };
}
