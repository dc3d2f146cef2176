/**
 * One training step of the model in examples/models/small on one sequence, one rank, in fp32 or
 * bf16 (`--bf16`; REFERENCE §6), or both side by side (`--compare-precision`): the forward +
 * backward (tokens/s; model FLOP/s per REFERENCE §4, without the input embedding, the figure with
 * it printed beside, labelled; ratio_to_peak against the measured peak of the precision the step
 * runs in: the fp32 FMA peak or the bf16 dot-product peak, probed on every thread before and after
 * the steps, the higher of the two), a per-phase breakdown (GEMMs, attention, LM head,
 * element-wise, communication, optimizer, other), then the optimizer step as the trainer runs it
 * (gradient statistics, the default policy's plan, the plan and AdamW in the Optimizer's one
 * native call; timed on its own), and the native calls (worker hops) of the whole step, by
 * binding, beside what the per-tensor calls would have been for the same plan. The sgemm 2048^3
 * rate stays as a second reference (mfu_vs_gemm), never the limit. Peak RSS.
 * Must never count the warm-up step (it allocates the activation buffers) or fold the optimizer
 * into the forward + backward figures.
 */
import { join } from 'node:path';
import { Model } from '../src/engine/model/index.js';
import { readModelConfig, type ModelConfig } from '../src/engine/modelConfig.js';
import { packageRoot } from '../src/util/packageRoot.js';
import { nativeCallCounts, nativeCallsSince } from '../src/engine/nativeCalls.js';
import { sgemmRate } from '../src/engine/ops/matmul.js';
import { gradStats, type PlanEffects } from '../src/engine/ops/optim.js';
import { measurePeak, type PeakRate } from '../src/engine/ops/peak.js';
import { configureThreads } from '../src/engine/threads.js';
import { defaultPolicyConfig } from '../src/statecharts/policyConfig.js';
import { PolicyRunner } from '../src/statecharts/policyRunner.js';
import type { PolicyPlan } from '../src/statecharts/trainingPolicy.js';
import { spansOf } from '../src/train/loop/applyPlan.js';
import { Optimizer } from '../src/train/loop/Optimizer.js';
import { formatPhases, modelFlopsPerToken, phasesOf, type Phases, type Precision } from './stepFigures.js';
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

interface StepRun {
  precision: Precision;
  seconds: number;
  warmSeconds: number;
  optimizerSeconds: number;
  loss: number;
  profile: Record<string, number>;
  calls: Record<string, number> & { total: number };
  perTensor: number;
  activationBytes: number;
  params: number;
}

/** Deterministic pseudo-random tokens; labels shifted by one; one document. */
function sequence(cfg: ModelConfig, s: number) {
  let x = 12345;
  const tokens = Int32Array.from({ length: s }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x % cfg.vocabSize;
  });
  const labels = Int32Array.from(tokens, (_, i) => (i + 1 < s ? tokens[i + 1]! : -100));
  return { tokens, labels, normalizer: s - 1 };
}

async function runSteps(cfg: ModelConfig, precision: Precision, s: number, steps: number, checkpointing: boolean): Promise<StepRun> {
  const model = await Model.create(cfg, { seed: 1, checkpointing, bf16: precision === 'bf16' });
  const input = sequence(cfg, s);
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
  const warmSeconds = (performance.now() - w0) / 1e3;
  await optimizerStep(1);
  const run: StepRun = { precision, seconds: Infinity, warmSeconds, optimizerSeconds: Infinity, loss: 0, profile: {}, calls: { total: 0 }, perTensor: 0, activationBytes: 0, params: model.numParams };
  for (let i = 0; i < steps; i++) {
    const before = nativeCallCounts();
    await model.zeroGrad();
    model.setProfiling(true); // resets the counters
    const t0 = performance.now();
    run.loss = (await model.forwardBackward(input)).loss;
    const dt = (performance.now() - t0) / 1e3;
    if (dt < run.seconds) run.profile = model.profile(); // the profile of the best step
    run.seconds = Math.min(run.seconds, dt);
    const t1 = performance.now();
    const { plan, fx } = await optimizerStep(i + 2);
    run.optimizerSeconds = Math.min(run.optimizerSeconds, (performance.now() - t1) / 1e3);
    run.calls = nativeCallsSince(before);
    run.perTensor = perTensorCalls(run.calls, plan, fx, model.trainable.views.length);
  }
  run.activationBytes = model.activationBytes;
  model.close();
  return run;
}

const higher = (a: PeakRate, b: PeakRate) => (a.gflops >= b.gflops ? a : b);

export const stepBench: Benchmark = {
  options: {
    config: { type: 'string' },
    seq: { type: 'string', default: '4096' },
    steps: { type: 'string', default: '2' },
    checkpointing: { type: 'boolean', default: false },
    threads: { type: 'string' },
    // > 1: the step split over that many local rank processes (Ulysses), next to sp = 1 (bench/stepSp.ts)
    sp: { type: 'string', default: '1' },
    bf16: { type: 'boolean', default: false },
    'compare-precision': { type: 'boolean', default: false },
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
    const configPath = typeof opts.config === 'string' ? opts.config : join(packageRoot(), 'examples', 'models', 'small', 'config.json');
    const s = Number(opts.seq);
    const steps = Math.max(1, Number(opts.steps));
    if (!Number.isInteger(s) || s < 1) throw new Error(`--seq must be a positive integer, got ${opts.seq}`);
    const compare = opts['compare-precision'] === true;
    const precisions: Precision[] = compare ? ['fp32', 'bf16'] : [opts.bf16 === true ? 'bf16' : 'fp32'];
    if (sp > 1) {
      if (compare) throw new Error('--compare-precision runs one process; use it without --sp (or run --sp N with and without --bf16)');
      const threads = opts.threads ? Number(opts.threads) : undefined;
      return runStepSp({ config: configPath, seq: s, steps, sp, checkpointing: opts.checkpointing === true, threads, bf16: precisions[0] === 'bf16' }, log);
    }
    const threads = configureThreads({ threads: opts.threads ? Number(opts.threads) : undefined });
    const cfg = await readModelConfig(configPath);
    const checkpointing = opts.checkpointing === true;

    // The machine may be shared: the peaks are probed before and after the steps and the higher of
    // the two is the limit (as is the sgemm reference), so a load change can only make a ratio
    // look worse, never better.
    const peakBefore = { fp32: await measurePeak('fp32', threads), bf16: await measurePeak('bf16', threads) };
    const gemmBefore = await sgemmRate(2048);
    const runs: StepRun[] = [];
    for (const p of precisions) runs.push(await runSteps(cfg, p, s, steps, checkpointing));
    const gemmAfter = await sgemmRate(2048);
    const peakAfter = { fp32: await measurePeak('fp32', threads), bf16: await measurePeak('bf16', threads) };
    const peak = { fp32: higher(peakBefore.fp32, peakAfter.fp32), bf16: higher(peakBefore.bf16, peakAfter.bf16) };
    const gemm = gemmBefore.gflops >= gemmAfter.gflops ? gemmBefore : gemmAfter;
    const peakRss = process.resourceUsage().maxRSS * 1024;
    const params = runs[0]!.params;
    const flops = modelFlopsPerToken(cfg, params, s);

    log(`step: ${configPath}, s=${s}, ${(params / 1e6).toFixed(2)}M params (${(flops.productParams / 1e6).toFixed(2)}M in products, input embedding excluded), ${threads} threads, checkpointing ${checkpointing ? 'on' : 'off'}`);
    log(`  peaks: fp32 FMA ${peak.fp32.gflops.toFixed(1)} GFLOP/s (before ${peakBefore.fp32.gflops.toFixed(1)}, after ${peakAfter.fp32.gflops.toFixed(1)}), ` +
      (peak.bf16.available ? `bf16 dot-product ${peak.bf16.gflops.toFixed(1)} GFLOP/s (before ${peakBefore.bf16.gflops.toFixed(1)}, after ${peakAfter.bf16.gflops.toFixed(1)})` : 'bf16 dot-product n/a (no AVX512-BF16: bf16 steps are compared with the fp32 peak)') +
      `; sgemm 2048^3 ${gemm.gflops.toFixed(1)} GFLOP/s (before ${gemmBefore.gflops.toFixed(1)}, after ${gemmAfter.gflops.toFixed(1)})`);
    const figures = runs.map((r) => {
      // Without AVX512-BF16 a bf16 step runs at fp32 rates: its limit is then the fp32 peak.
      const limit = r.precision === 'bf16' && peak.bf16.available ? peak.bf16 : peak.fp32;
      const modelGflops = (flops.perToken * s) / r.seconds / 1e9;
      const phases: Phases = phasesOf(r.profile, r.seconds, r.optimizerSeconds);
      const parts = Object.entries(r.profile).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
      const { total, ...byBinding } = r.calls;
      log(`  [${r.precision}] step ${r.seconds.toFixed(3)} s (best of ${steps}; warm-up ${r.warmSeconds.toFixed(3)} s), loss ${r.loss.toFixed(4)}`);
      log(`    ${(s / r.seconds).toFixed(0)} tokens/s, model ${modelGflops.toFixed(1)} GFLOP/s = ${(modelGflops / limit.gflops).toFixed(3)} of the ${limit === peak.bf16 ? 'bf16' : 'fp32'} peak ` +
        `(with the input embedding counted: ${((flops.withEmbedding * s) / r.seconds / 1e9).toFixed(1)} GFLOP/s); mfu_vs_gemm ${(modelGflops / gemm.gflops).toFixed(3)}`);
      log(`    phases: ${formatPhases(phases)}`);
      log(`    time by part: ${parts.map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(', ')}`);
      log(`    optimizer step (statistics, plan, AdamW) ${r.optimizerSeconds.toFixed(3)} s; activations ${(r.activationBytes / 2 ** 20).toFixed(0)} MiB`);
      log(`    native calls per step: ${total} (${Object.entries(byBinding).map(([k, v]) => `${k} ${v}`).join(', ')}); per-tensor calls would be ${r.perTensor} (${(r.perTensor / total).toFixed(1)}x)`);
      return {
        precision: r.precision,
        tokens_per_s: s / r.seconds,
        model_gflops: modelGflops,
        model_gflops_with_embedding: (flops.withEmbedding * s) / r.seconds / 1e9,
        peak_gflops: limit.gflops,
        ratio_to_peak: modelGflops / limit.gflops,
        mfu_vs_gemm: modelGflops / gemm.gflops,
        step_seconds: r.seconds,
        warmup_seconds: r.warmSeconds,
        optimizer_seconds: r.optimizerSeconds,
        loss: r.loss,
        phases_seconds: phases,
        profile_seconds: r.profile,
        activation_bytes: r.activationBytes,
        native_calls_per_step: { ...r.calls, per_tensor_path: r.perTensor },
      };
    });
    const last = figures[figures.length - 1]!;
    const result: Record<string, unknown> & { bench: string } = {
      bench: 'step',
      s,
      params,
      product_params: flops.productParams,
      threads,
      checkpointing,
      ...last,
      gemm_gflops: gemm.gflops,
      peak_fp32_gflops: peak.fp32.gflops,
      peak_bf16_gflops: peak.bf16.available ? peak.bf16.gflops : null,
      peak_rss_bytes: peakRss,
    };
    if (compare) {
      const [f32, b16] = figures as [typeof last, typeof last];
      const speedup = b16.tokens_per_s / f32.tokens_per_s;
      log(`  fp32 ${f32.tokens_per_s.toFixed(0)} tokens/s | bf16 ${b16.tokens_per_s.toFixed(0)} tokens/s = ${speedup.toFixed(2)} x fp32 (losses ${f32.loss.toFixed(4)} / ${b16.loss.toFixed(4)})`);
      result.precisions = { fp32: f32, bf16: b16 };
      result.bf16_speedup = speedup;
    }
    log(`  peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
    return result;
  },
};
