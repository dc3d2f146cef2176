/**
 * One training step (forward + backward) of the model in examples/models/small on one sequence,
 * one rank: tokens/s, model FLOP/s (REFERENCE §4: per token 6*params + 12*layers*H*d*s/2),
 * mfu_vs_gemm against the sgemm 2048^3 rate measured in the same run, and peak RSS.
 * Must never count the warm-up step (it allocates the activation buffers).
 */
import { join } from 'node:path';
import { Model } from '../src/engine/model/index.js';
import { readModelConfig } from '../src/engine/modelConfig.js';
import { packageRoot } from '../src/engine/native.js';
import { sgemmRate } from '../src/engine/ops/matmul.js';
import { configureThreads } from '../src/engine/threads.js';
import type { Benchmark } from './types.js';
import { runStepSp } from './stepSp.js';

export const stepBench: Benchmark = {
  options: {
    config: { type: 'string' },
    seq: { type: 'string', default: '4096' },
    steps: { type: 'string', default: '2' },
    checkpointing: { type: 'boolean', default: false },
    threads: { type: 'string' },
    // > 1: the step split over that many local rank processes (Ulysses), next to sp = 1 (bench/stepSp.ts)
    sp: { type: 'string', default: '1' },
  },
  async run(opts, log) {
    const sp = Number(opts.sp ?? 1);
    if (!Number.isInteger(sp) || sp < 1) throw new Error(`--sp must be a positive integer, got ${opts.sp}`);
    if (sp > 1) {
      const config = typeof opts.config === 'string' ? opts.config : join(packageRoot(), 'examples', 'models', 'small', 'config.json');
      const threads = opts.threads ? Number(opts.threads) : undefined;
      return runStepSp({ config, seq: Number(opts.seq), steps: Math.max(1, Number(opts.steps)), sp, checkpointing: opts.checkpointing === true, threads }, log);
    }
    const threads = configureThreads({ threads: opts.threads ? Number(opts.threads) : undefined });
    const configPath = typeof opts.config === 'string' ? opts.config : join(packageRoot(), 'examples', 'models', 'small', 'config.json');
    const s = Number(opts.seq);
    const steps = Math.max(1, Number(opts.steps));
    if (!Number.isInteger(s) || s < 1) throw new Error(`--seq must be a positive integer, got ${opts.seq}`);
    const cfg = await readModelConfig(configPath);
    const checkpointing = opts.checkpointing === true;
    const model = await Model.create(cfg, { seed: 1, checkpointing });
    const params = model.numParams;

    // Deterministic pseudo-random tokens; labels shifted by one; one document.
    let x = 12345;
    const tokens = Int32Array.from({ length: s }, () => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % cfg.vocabSize;
    });
    const labels = Int32Array.from(tokens, (_, i) => (i + 1 < s ? tokens[i + 1]! : -100));
    const input = { tokens, labels, normalizer: s - 1 };

    model.setProfiling(true);
    const w0 = performance.now();
    await model.forwardBackward(input); // warm-up: allocates activations, faults pages in
    const warm = (performance.now() - w0) / 1e3;
    // The machine may be shared: measure sgemm before and after the timed steps and divide by the
    // faster of the two, so a load change can only make mfu_vs_gemm look worse, never better.
    const gemmBefore = await sgemmRate(2048);
    let best = Infinity;
    let loss = 0;
    let profile: Record<string, number> = {};
    for (let i = 0; i < steps; i++) {
      await model.zeroGrad();
      model.setProfiling(true); // resets the counters
      const t0 = performance.now();
      loss = (await model.forwardBackward(input)).loss;
      const dt = (performance.now() - t0) / 1e3;
      if (dt < best) profile = model.profile(); // the profile of the best step
      best = Math.min(best, dt);
    }
    const gemmAfter = await sgemmRate(2048);
    const gemm = gemmBefore.gflops >= gemmAfter.gflops ? gemmBefore : gemmAfter;

    const flopsPerToken = 6 * params + (12 * cfg.numHiddenLayers * cfg.numAttentionHeads * cfg.headDim * s) / 2;
    const modelGflops = (flopsPerToken * s) / best / 1e9;
    const tokensPerS = s / best;
    const mfu = modelGflops / gemm.gflops;
    const peakRss = process.resourceUsage().maxRSS * 1024;
    log(`step: ${configPath}, s=${s}, ${(params / 1e6).toFixed(2)}M params, ${threads} threads, checkpointing ${checkpointing ? 'on' : 'off'}`);
    log(`  step ${best.toFixed(3)} s (best of ${steps}; warm-up ${warm.toFixed(3)} s), loss ${loss.toFixed(4)}`);
    log(`  ${tokensPerS.toFixed(0)} tokens/s, model ${modelGflops.toFixed(1)} GFLOP/s, sgemm ${gemm.gflops.toFixed(1)} GFLOP/s (before ${gemmBefore.gflops.toFixed(1)}, after ${gemmAfter.gflops.toFixed(1)}), mfu_vs_gemm ${mfu.toFixed(3)}`);
    const parts = Object.entries(profile).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
    log(`  time by part: ${parts.map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(', ')}`);
    log(`  activations ${(model.activationBytes / 2 ** 20).toFixed(0)} MiB, peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
    return {
      bench: 'step',
      s,
      params,
      threads,
      checkpointing,
      tokens_per_s: tokensPerS,
      model_gflops: modelGflops,
      gemm_gflops: gemm.gflops,
      mfu_vs_gemm: mfu,
      peak_rss_bytes: peakRss,
      step_seconds: best,
      profile_seconds: profile,
    };
  },
};
