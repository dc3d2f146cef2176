/**
 * One rank process of `bench memory` (spawned by bench/memory.ts, never run by hand): one whole
 * training step (forward, backward, gradient reduction, statistics, the policy's plan and the
 * AdamW update with the state sharded as ZeRO `zero` over the SP group; at 3 the parameters too,
 * each layer's attention run and MLP matrices or slices gathered in turn) on this rank's shard of one sequence, then its
 * peak RSS and the named parts of its memory, with the parameter + gradient + optimizer bytes it
 * holds beside what stage 0 holds of the same model. Prints one `result <json>` line. Must never
 * call process.exit.
 */
import { readFileSync } from 'node:fs';
import { Model } from '../src/engine/model/index.js';
import { attentionScratchPeakBytes } from '../src/engine/ops/attention.js';
import { readModelConfig } from '../src/engine/modelConfig.js';
import { fileStore } from '../src/engine/stores.js';
import { configureThreads } from '../src/engine/threads.js';
import { PolicyRunner } from '../src/statecharts/policyRunner.js';
import { createParallelRuntime } from '../src/train/createParallelRuntime.js';
import { Optimizer } from '../src/train/loop/Optimizer.js';
import { singleProcessRuntime, type ParallelRuntime } from '../src/train/ParallelRuntime.js';
import { shardModel } from '../src/train/zero/shardModel.js';
import { zeroGroupOf } from '../src/train/zero/ZeroGroup.js';
import { benchSequenceShard } from './benchSequence.js';

interface Args {
  rank: number;
  sp: number;
  dir: string;
  config: string;
  seq: number;
  zero: number;
  tiledMlp: boolean;
  checkpointing: boolean;
  threads: number;
  docTokens: number;
}

const args = JSON.parse(process.argv[2]!) as Args;

async function main() {
  configureThreads({ threads: args.threads });
  const baseRss = process.memoryUsage().rss;
  const rt: ParallelRuntime = args.sp > 1 ? await createParallelRuntime({ rank: args.rank, world: args.sp, sp: args.sp, store: fileStore(args.dir), timeoutMs: 600_000 }) : singleProcessRuntime();
  const cfg = await readModelConfig(args.config);
  const model = await Model.create(cfg, { seed: 1, checkpointing: args.checkpointing, tiledMlp: args.tiledMlp });
  rt.attachModel(model);
  const sh = args.zero === 3 ? await shardModel(model, rt) : null;
  const optimizer = new Optimizer(sh ? { params: sh.params, grads: sh.grads, views: model.views } : model.trainable, { weight_decay: 0, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8 }, zeroGroupOf(rt, args.zero));
  const policy = new PolicyRunner();
  const s = args.seq;
  const input = benchSequenceShard(s, cfg.vocabSize, args.sp, rt.spRank, args.docTokens);
  const t0 = performance.now();
  await model.forwardBackward(input);
  await (optimizer.shardsGradients ? optimizer.reduceGradients() : rt.reduceGradients(model.grads));
  const stats = await optimizer.gradStats();
  const t = policy.step({ step: 1, totalSteps: 10, warmupSteps: 0, maxGradNorm: 1, seed: 1, stats: { gradMean: stats.gradMean, l2Norm: stats.l2Norm, maxAbs: stats.maxAbs, nonfinite: stats.nonfinite } });
  await optimizer.step(t.plan, stats, 1e-4);
  const stepSeconds = (performance.now() - t0) / 1e3;
  const shard = model.shardStats();
  const parameters = sh ? sh.params.byteLength : model.params.byteLength;
  const gradients = sh ? sh.grads.byteLength : optimizer.shardsGradients ? optimizer.partition!.partLength * 4 : model.grads.byteLength;
  const optimizerBytes = optimizer.m.byteLength + optimizer.v.byteLength;
  // stage 3: the pieces gathered at once (weights, bf16 copies, their gradients), at their most
  const gathered = shard ? shard.peakResidentBytes : 0;
  const result = {
    rank: args.rank,
    localTokens: input.tokens.length,
    stepSeconds,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    // parameters + gradients + optimizer (+ stage 3's gathered pieces), and stage 0's of the same model
    stateBytes: parameters + gradients + optimizerBytes + gathered,
    stage0StateBytes: 4 * model.params.byteLength,
    parts: {
      baseline: baseRss,
      parameters,
      // stage 2 keeps only its reduced part; the backward still writes the full-size buffer (listed apart)
      gradients,
      ...(optimizer.shardsGradients && !sh ? { backward_gradient_buffer: model.grads.byteLength } : {}),
      ...(sh ? { gathered } : {}),
      optimizer: optimizerBytes,
      activations: model.activationBytes,
      communication: (model.sequenceParallelStats()?.bufferBytes ?? 0) + (shard?.bufferBytes ?? 0),
      // flash attention's transient scratch at its largest (the backward's packed copies and dQ parts)
      attention_scratch: attentionScratchPeakBytes(),
    },
    // Resident memory after the step, by kind: shared-memory pages (the all-to-all windows, which a
    // peer's pages count in too once touched) are apart from the process's own.
    rssNow: rssByKind(),
  };
  model.close();
  await rt.close();
  process.stdout.write('result ' + JSON.stringify(result) + '\n');
}

function rssByKind(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const m = /^(RssAnon|RssFile|RssShmem):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]!] = Number(m[2]) * 1024;
  }
  return out;
}

main().catch((e: Error & { code?: string }) => process.stdout.write('result ' + JSON.stringify({ error: { code: e.code, message: e.message } }) + '\n'));
