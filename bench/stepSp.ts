/**
 * `bench step --sp N`: the training step of `bench step` on one sequence, split over N local rank
 * processes with Ulysses attention, next to --sp 1 on the same sequence (also a fresh process, so
 * peak RSS compares like with like). Reports tokens/s, the communication share of the step (time
 * inside the attention all-to-alls / step time; the gradient all-reduce separately) and per-rank
 * peak RSS with its ratio to sp = 1, and the per-phase breakdown of the slowest rank's step.
 * `--bf16` runs both in bf16 (the all-to-alls then carry bf16). Must never run the two
 * configurations at the same time (they would share the cores) nor count the warm-up step.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatPhases, phasesOf } from './stepFigures.js';
import type { BenchResult } from './types.js';

interface RankResult {
  rank: number;
  threads: number;
  localTokens: number;
  warmSeconds: number;
  stepSeconds: number;
  reduceSeconds: number;
  commSeconds: number;
  allToAlls: number;
  bytes: number;
  loss: number;
  profile: Record<string, number>;
  activationBytes: number;
  ulyssesBufferBytes: number;
  peakRssBytes: number;
  error?: { code?: string; message: string };
}

export interface StepSpOptions {
  config: string;
  seq: number;
  steps: number;
  sp: number;
  checkpointing: boolean;
  /** threads per rank (default: cores / ranks) */
  threads?: number;
  bf16: boolean;
}

function runGroup(o: StepSpOptions, sp: number): Promise<RankResult[]> {
  const script = fileURLToPath(new URL('./stepSpRank.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'ua-bench-step-'));
  const threads = o.threads ?? Math.max(1, Math.floor(availableParallelism() / sp));
  const results: RankResult[] = [];
  const children = Array.from({ length: sp }, (_, rank) => {
    const arg = { rank, sp, dir, config: o.config, seq: o.seq, steps: o.steps, checkpointing: o.checkpointing, threads, bf16: o.bf16 };
    return spawn(process.execPath, [script, JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  });
  return new Promise<RankResult[]>((resolve, reject) => {
    let left = sp;
    for (const [rank, child] of children.entries()) {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', (code) => {
        const m = /^result (.*)$/m.exec(out);
        if (m) results[rank] = JSON.parse(m[1]!) as RankResult;
        const failed = !m || results[rank]!.error || code !== 0;
        if (failed) {
          for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGKILL');
          rmSync(dir, { recursive: true, force: true });
          reject(new Error(`bench step --sp ${sp}: rank ${rank} failed (exit ${code}): ${m ? JSON.stringify(results[rank]!.error) : out.slice(-500)}`));
          return;
        }
        if (--left === 0) {
          rmSync(dir, { recursive: true, force: true });
          resolve(results);
        }
      });
    }
  });
}

const mib = (b: number) => (b / 2 ** 20).toFixed(0);

export async function runStepSp(o: StepSpOptions, log: (line: string) => void): Promise<BenchResult> {
  const load0 = loadavg()[0]!;
  const base = (await runGroup(o, 1))[0]!;
  const ranks = await runGroup(o, o.sp);
  const load1 = loadavg()[0]!;
  const step = Math.max(...ranks.map((r) => r.stepSeconds));
  const comm = Math.max(...ranks.map((r) => r.commSeconds));
  const reduce = Math.max(...ranks.map((r) => r.reduceSeconds));
  const rss = Math.max(...ranks.map((r) => r.peakRssBytes));
  const slowest = ranks.reduce((a, r) => (r.stepSeconds > a.stepSeconds ? r : a));
  // The step here has no optimizer; its gradient all-reduce counts as communication.
  const phases = phasesOf(slowest.profile, slowest.stepSeconds - slowest.reduceSeconds, 0, slowest.reduceSeconds);
  const figures = {
    tokens_per_s_sp1: o.seq / base.stepSeconds,
    tokens_per_s: o.seq / step,
    speedup: base.stepSeconds / step,
    comm_share: comm / step,
    allreduce_share: reduce / step,
    peak_rss_bytes_sp1: base.peakRssBytes,
    peak_rss_bytes_per_rank: ranks.map((r) => r.peakRssBytes),
    rss_ratio_to_sp1: rss / base.peakRssBytes,
  };
  log(`step --sp ${o.sp}${o.bf16 ? ' (bf16)' : ''}: ${o.config}, s=${o.seq}, checkpointing ${o.checkpointing ? 'on' : 'off'}, best of ${o.steps} step(s), threads per rank: sp=1 ${base.threads}, sp=${o.sp} ${ranks[0]!.threads}; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)} on ${availableParallelism()} cores`);
  log(`  sp=1: step ${base.stepSeconds.toFixed(3)} s, ${figures.tokens_per_s_sp1.toFixed(0)} tokens/s, loss ${base.loss.toFixed(4)}, peak RSS ${mib(base.peakRssBytes)} MiB (activations ${mib(base.activationBytes)} MiB)`);
  log(`  sp=${o.sp}: step ${step.toFixed(3)} s, ${figures.tokens_per_s.toFixed(0)} tokens/s (x${figures.speedup.toFixed(2)}), loss ${ranks[0]!.loss.toFixed(4)}`);
  log(`    all-to-alls ${comm.toFixed(3)} s = ${(100 * figures.comm_share).toFixed(1)}% of the step (${ranks[0]!.allToAlls} calls, ${mib(ranks[0]!.bytes)} MiB sent per rank); gradient all-reduce ${reduce.toFixed(3)} s = ${(100 * figures.allreduce_share).toFixed(1)}%`);
  log(`    peak RSS per rank ${ranks.map((r) => mib(r.peakRssBytes)).join(', ')} MiB = ${figures.rss_ratio_to_sp1.toFixed(3)} x sp=1 (activations ${mib(ranks[0]!.activationBytes)} MiB, Ulysses buffers ${mib(ranks[0]!.ulyssesBufferBytes)} MiB)`);
  log(`    phases (rank ${slowest.rank}): ${formatPhases(phases)}`);
  return { bench: 'step', sp: o.sp, s: o.seq, checkpointing: o.checkpointing, precision: o.bf16 ? 'bf16' : 'fp32', ...figures, phases_seconds: phases, sp1: base, ranks, load_average: [load0, load1] };
}
