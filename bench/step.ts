/**
 * One training step of the model in examples/models/small on one sequence, one rank: the
 * forward + backward (tokens/s, model FLOP/s per REFERENCE §4: per token 6*params +
 * 12*layers*H*d*s/2, mfu_vs_gemm against the sgemm 2048^3 rate measured in the same run), then the
 * optimizer step as the trainer runs it (gradient statistics, the default policy's plan, the
 * plan and AdamW in the Optimizer's one native call; timed on its own), and the native calls
 * (worker hops) of the whole step, by binding, beside what the per-tensor calls would have been
 * for the same plan. Peak RSS. Must never count the warm-up step (it allocates the activation
 * buffers) or fold the optimizer into the forward + backward figures.
 */
import { join } from 'node:path';
import { Model } from '../src/engine/model/index.js';
import { readModelConfig } from '../src/engine/modelConfig.js';
import { packageRoot } from '../src/util/packageRoot.js';
import { nativeCallCounts, nativeCallsSince } from '../src/engine/nativeCalls.js';
import { sgemmRate } from '../src/engine/ops/matmul.js';
import { gradStats, type PlanEffects } from '../src/engine/ops/optim.js';
import { configureThreads } from '../src/engine/threads.js';
import { defaultPolicyConfig } from '../src/statecharts/policyConfig.js';
import { PolicyRunner } from '../src/statecharts/policyRunner.js';
import type { PolicyPlan } from '../src/statecharts/trainingPolicy.js';
import { spansOf } from '../src/train/loop/applyPlan.js';
import { Optimizer } from '../src/train/loop/Optimizer.js';
import type { Benchmark } from './types.js';
import { runStepSp } from './stepSp.js';
import { runStepCuda } from './stepCuda.js';

/**
 * The worker hops the same step took before the fused optimizer call: one per tensor and operation
 * of the plan (noise, scale, centralize), a second gradStats when the plan changed the gradients
 * before its clip, the clip, and one AdamW call per tensor; the rest of the step as measured.
 */
function perTensorCalls(measured: Record<string, number>, plan: PolicyPlan, fx: PlanEffects, tensors: number): number {
  const changed = fx.noised > 0 || fx.scaled > 0 || fx.centralized > 0 || plan.noiseStd > 0;
  const planCalls = fx.noised + fx.scaled + fx.centralized + (plan.clipNorm > 0 ? 1 + (changed ? 1 : 0) : 0);
  return measured.total! - (measured.optimizerStep ?? 0) + planCalls + tensors;
}

export const stepBench: Benchmark = {
  options: {
    config: { type: 'string' },
    seq: { type: 'string', default: '4096' },
    steps: { type: 'string', default: '2' },
    checkpointing: { type: 'boolean', default: false },
    threads: { type: 'string' },
    // > 1: the step split over that many local rank processes (Ulysses), next to sp = 1 (bench/stepSp.ts)
    sp: { type: 'string', default: '1' },
    // cpu, or cuda: the step on the CUDA model against the card's measured bf16 GEMM rate (bench/stepCuda.ts)
    device: { type: 'string', default: 'cpu' },
  },
  async run(opts, log) {
    const device = opts.device ?? 'cpu';
    if (device !== 'cpu' && device !== 'cuda') throw new Error(`--device must be cpu or cuda, got ${String(device)}`);
    if (device === 'cuda') {
      const config = typeof opts.config === 'string' ? opts.config : join(packageRoot(), 'examples', 'models', 'small', 'config.json');
      return runStepCuda({ config, seq: Number(opts.seq), steps: Math.max(1, Number(opts.steps)), checkpointing: opts.checkpointing === true }, log);
    }
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
    // The trainer's optimizer side with the default policy and HF's max_grad_norm 1.0: a 'normal'
    // step (centralize the linear weights, clip) at a tiny LR, so the weights barely move.
    const optimizer = new Optimizer(model.trainable, { weight_decay: 0.01, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8 });
    const policy = new PolicyRunner(defaultPolicyConfig);
    const spans = spansOf(model.trainable);
    const optimizerStep = async (step: number) => {
      const stats = await gradStats(model.trainable.grads, spans);
      const { plan } = policy.step({ step, totalSteps: 1000, warmupSteps: 0, maxGradNorm: 1, seed: 42, stats });
      return { plan, fx: await optimizer.step(plan, stats, 1e-6) };
    };

    model.setProfiling(true);
    const w0 = performance.now();
    await model.forwardBackward(input); // warm-up: allocates activations, faults pages in
    const warm = (performance.now() - w0) / 1e3;
    await optimizerStep(1);
    // The machine may be shared: measure sgemm before and after the timed steps and divide by the
    // faster of the two, so a load change can only make mfu_vs_gemm look worse, never better.
    const gemmBefore = await sgemmRate(2048);
    let best = Infinity;
    let bestOptimizer = Infinity;
    let loss = 0;
    let profile: Record<string, number> = {};
    let calls: Record<string, number> & { total: number } = { total: 0 };
    let perTensor = 0;
    for (let i = 0; i < steps; i++) {
      const before = nativeCallCounts();
      await model.zeroGrad();
      model.setProfiling(true); // resets the counters
      const t0 = performance.now();
      loss = (await model.forwardBackward(input)).loss;
      const dt = (performance.now() - t0) / 1e3;
      if (dt < best) profile = model.profile(); // the profile of the best step
      best = Math.min(best, dt);
      const t1 = performance.now();
      const { plan, fx } = await optimizerStep(i + 2);
      bestOptimizer = Math.min(bestOptimizer, (performance.now() - t1) / 1e3);
      calls = nativeCallsSince(before);
      perTensor = perTensorCalls(calls, plan, fx, model.trainable.views.length);
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
    log(`  optimizer step (statistics, plan, AdamW) ${bestOptimizer.toFixed(3)} s`);
    const { total, ...byBinding } = calls;
    log(`  native calls per step: ${total} (${Object.entries(byBinding).map(([k, v]) => `${k} ${v}`).join(', ')}); per-tensor calls would be ${perTensor} (${(perTensor / total).toFixed(1)}x)`);
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
      optimizer_seconds: bestOptimizer,
      profile_seconds: profile,
      native_calls_per_step: { ...calls, per_tensor_path: perTensor },
    };
  },
};
